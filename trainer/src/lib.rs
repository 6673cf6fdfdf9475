//! # leafe-trainer
//!
//! Distils the corrections found by `leafe-host run` into a model by
//! supervised fine-tuning, natively with candle (CPU; CUDA behind the `cuda`
//! feature). Models are Qwen2/Llama decoders in Hugging Face checkpoint format.

pub mod bench;
pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod cuda;
pub mod data;
pub mod devicecheck;
pub mod generate;
pub mod gguf;
pub mod init;
pub mod lora;
pub mod memory;
pub mod model;
pub mod ops;
pub mod optim;
pub mod params;
pub mod parity;
pub mod serve;
pub mod sft;
pub mod tiny;
pub mod tokenizer;
