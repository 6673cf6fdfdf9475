//! # leafe-trainer
//!
//! Distils the corrections found by `leafe-host run` into a model by
//! supervised fine-tuning, natively with candle (CPU; CUDA behind the `cuda`
//! feature). Models are Qwen2/Llama decoders in Hugging Face checkpoint format.
//!
//! Four layers, each importing only from the ones below it
//! (`host/tests/all/layers.rs` checks):
//! - [`jobs`]: the work of each command (sft, generate, serve, bench,
//!   check-device, check-parity, init-tiny);
//! - [`io`]: the files a model comes in and is trained on (checkpoints, GGUF,
//!   tokenizers, chat templates, chat JSONL);
//! - [`nn`]: the network: its config, parameters, ops and their CUDA kernels,
//!   the decoder, LoRA, the optimizer, the memory guard;
//! - [`setting`]: the error for a setting out of its range, which every
//!   layer's configs return.

pub mod io;
pub mod jobs;
pub mod nn;
pub mod setting;
