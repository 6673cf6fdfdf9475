//! The network: the model's shape (`config.json`), its parameters and their
//! seeded initialisation, the ops with their own backward passes (and CUDA
//! kernels), the decoder with its KV caches, LoRA adapters, AdamW, and the
//! memory guard that refuses settings which would not fit.

pub mod config;
pub mod cuda;
pub mod init;
pub mod lora;
pub mod memory;
pub mod model;
pub mod ops;
pub mod optim;
pub mod params;
pub mod quant;
