//! `init-tiny`: a tiny randomly initialised Qwen2- or Llama-shaped model and
//! a BPE tokenizer trained on a corpus, saved in Hugging Face format — for
//! tests and demos, without any download.

use crate::io::chat::TRAINABLE_CHATML_TEMPLATE;
use crate::nn::config::{Arch, ModelConfig};
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use std::path::Path;

/// The shape of a tiny model.
#[derive(Clone, Debug, PartialEq)]
pub struct TinySpec {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub max_positions: usize,
    pub seed: u64,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec {
            arch: Arch::Qwen2,
            vocab_size: 512,
            hidden_size: 64,
            intermediate_size: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            max_positions: 1024,
            seed: 0,
        }
    }
}

impl TinySpec {
    /// The model config of this shape, for a vocabulary of `vocab_size`.
    pub fn config(&self, vocab_size: usize, bos: Option<u32>, eos: Option<u32>) -> ModelConfig {
        ModelConfig {
            arch: self.arch,
            vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.layers,
            num_attention_heads: self.heads,
            num_key_value_heads: self.kv_heads,
            max_position_embeddings: self.max_positions,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: self.arch == Arch::Qwen2,
            attention_bias: self.arch == Arch::Qwen2,
            bos_token_id: bos,
            eos_token_id: eos,
        }
    }
}

/// The config of the shape `init-tiny` makes by default, with its full
/// vocabulary and no special tokens: for benchmarks and device checks on
/// random weights.
pub fn tiny_config() -> ModelConfig {
    let spec = TinySpec::default();
    spec.config(spec.vocab_size, None, None)
}

/// Build the tokenizer and the model into `out`; returns the model config.
pub fn init_tiny(corpus: &Path, out: &Path, spec: &TinySpec) -> Result<ModelConfig> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let tokenizer = crate::io::tokenizer::train_bpe(&[corpus], spec.vocab_size, out)?;
    let id = |t: &str| {
        tokenizer
            .token_to_id(t)
            .with_context(|| format!("the tokenizer lacks {t}"))
    };
    let cfg = spec.config(
        tokenizer.get_vocab_size(true),
        Some(id("<|endoftext|>")?),
        Some(id("<|im_end|>")?),
    );
    cfg.validate()?;
    crate::nn::memory::check(crate::nn::memory::weights(&cfg), "this model")?;
    let tokenizer_config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": TRAINABLE_CHATML_TEMPLATE,
        "bos_token": null,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": null,
        "model_max_length": spec.max_positions,
        "clean_up_tokenization_spaces": false,
    });
    std::fs::write(
        out.join("tokenizer_config.json"),
        serde_json::to_vec_pretty(&tokenizer_config)?,
    )?;
    let params = crate::nn::params::init_params(&cfg, spec.seed, DType::F32, &Device::Cpu)?;
    crate::io::checkpoint::save(out, &cfg, &params, out, DType::F32)?;
    Ok(cfg)
}
