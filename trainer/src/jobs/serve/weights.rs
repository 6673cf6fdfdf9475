//! One set of served weights: the model with its tokenizer, chat template
//! and end-of-turn tokens.

use super::prefix::PrefixCache;
use crate::io::chat::ChatTemplate;
use crate::nn::model::Model;
use anyhow::Result;
use std::sync::{Mutex, MutexGuard};

/// One set of weights with its tokenizer and chat template.
pub struct ServedModel {
    pub model: Model,
    pub tokenizer: tokenizers::Tokenizer,
    pub template: ChatTemplate,
    pub eos: Vec<u32>,
    /// Keys and values of earlier prompts' prefixes, for these weights only
    /// (a reload starts an empty one).
    prefix: Mutex<PrefixCache>,
}

impl ServedModel {
    /// The weights with a prefix cache of at most `prefix_cache_bytes`.
    pub fn new(
        model: Model,
        tokenizer: tokenizers::Tokenizer,
        template: ChatTemplate,
        prefix_cache_bytes: usize,
    ) -> Self {
        let eos = model.cfg.eos_token_id.into_iter().collect();
        ServedModel {
            model,
            tokenizer,
            template,
            eos,
            prefix: Mutex::new(PrefixCache::new(prefix_cache_bytes)),
        }
    }

    /// The prefix cache (used by the batching thread).
    pub fn prefix_cache(&self) -> MutexGuard<'_, PrefixCache> {
        self.prefix.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A checkpoint directory's (or a GGUF file's) weights, on `device`,
    /// for inference, quantized as `quantization` says.
    pub fn load(
        path: &std::path::Path,
        device: &candle_core::Device,
        quantization: crate::nn::quant::Quantization,
        prefix_cache_bytes: usize,
    ) -> Result<Self> {
        let (model, tokenizer, template) =
            crate::io::load_for_inference(path, device, quantization)?;
        Ok(ServedModel::new(
            model,
            tokenizer,
            template,
            prefix_cache_bytes,
        ))
    }
}
