//! The files a model comes in and is trained on: safetensors checkpoints,
//! GGUF files (imported, or run as they are), `tokenizer.json`, chat
//! templates and chat JSONL data.

pub mod chat;
pub mod checkpoint;
pub mod data;
pub mod gguf;
pub mod tokenizer;

use crate::nn::model::Model;
use crate::nn::quant::Quantization;
use anyhow::Result;
use candle_core::Device;
use std::path::Path;

/// A model to run, its tokenizer and its chat template, from a checkpoint
/// directory or straight from a GGUF file (no conversion step), its
/// projections stored as `quantization` says.
pub fn load_for_inference(
    path: &Path,
    device: &Device,
    quantization: Quantization,
) -> Result<(Model, tokenizers::Tokenizer, chat::ChatTemplate)> {
    if path.is_file() {
        return gguf::load_for_inference(path, device, quantization);
    }
    let (model, tokenizer) = checkpoint::load_for_inference(path, device, quantization)?;
    Ok((model, tokenizer, chat::ChatTemplate::load(path)?))
}
