//! leafe-trainer: the candle trainer that distils the corrections found by
//! `leafe-host run` into a model by supervised fine-tuning.
//!
//! This crate is an empty member of the workspace until the trainer issue
//! lands; the host does not depend on it.
