//! The files a model comes in and is trained on: safetensors checkpoints,
//! GGUF imports, `tokenizer.json`, chat templates and chat JSONL data.

pub mod chat;
pub mod checkpoint;
pub mod data;
pub mod gguf;
pub mod tokenizer;
