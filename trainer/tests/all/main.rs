//! The trainer's integration tests, one binary (linking candle once).

mod cli;
mod common;
mod gguf;
mod learning;
mod lora;
mod openai_client;
mod prefix;
mod quant;
mod real_model;
mod real_tokenizer;
mod serve;
mod untrusted;
mod weights;
