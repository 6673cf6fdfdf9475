//! Text generation with a KV cache: greedy, temperature and top-p sampling
//! with a seed, stop strings and the end-of-turn token.

use crate::model::{KvCache, Model};
use anyhow::{Result, anyhow};
use candle_core::{DType, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

/// Sampling settings (the OpenAI names).
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateConfig {
    pub max_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    pub stop: Vec<String>,
    /// Recompute the whole sequence each step (for benchmarks).
    pub no_cache: bool,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            max_tokens: 128,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: vec![],
            no_cache: false,
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    Stop,
    Length,
}

pub struct Generated {
    pub text: String,
    pub tokens: Vec<u32>,
    pub finish: Finish,
}

/// Continue `prompt` (token ids). Stops at `eos` ids, a stop string, or `max_tokens`.
pub fn generate(
    model: &Model,
    tokenizer: &tokenizers::Tokenizer,
    prompt: &[u32],
    eos: &[u32],
    cfg: &GenerateConfig,
) -> Result<Generated> {
    if prompt.is_empty() {
        return Err(anyhow!("the prompt is empty"));
    }
    let sampling = if cfg.temperature <= 0.0 {
        Sampling::ArgMax
    } else if cfg.top_p < 1.0 {
        Sampling::TopP {
            p: cfg.top_p,
            temperature: cfg.temperature,
        }
    } else {
        Sampling::All {
            temperature: cfg.temperature,
        }
    };
    let mut sampler = LogitsProcessor::from_sampling(cfg.seed, sampling);
    let device = model.device();
    let mut cache = KvCache::new(&model.cfg);
    let mut all: Vec<u32> = prompt.to_vec();
    let mut out: Vec<u32> = Vec::new();
    let mut next_input: Vec<u32> = prompt.to_vec();
    let decode = |ids: &[u32]| {
        tokenizer
            .decode(ids, true)
            .map_err(|e| anyhow!("cannot decode: {e}"))
    };
    while out.len() < cfg.max_tokens {
        if all.len() >= model.cfg.max_position_embeddings {
            break;
        }
        let logits = if cfg.no_cache {
            let ids = Tensor::new(all.as_slice(), device)?.unsqueeze(0)?;
            model.forward(&ids, None)?
        } else {
            let ids = Tensor::new(next_input.as_slice(), device)?.unsqueeze(0)?;
            model.forward(&ids, Some(&mut cache))?
        };
        let last = logits
            .squeeze(0)?
            .get(logits.dim(1)? - 1)?
            .to_dtype(DType::F32)?;
        let token = sampler.sample(&last)?;
        if eos.contains(&token) {
            return Ok(Generated {
                text: decode(&out)?,
                tokens: out,
                finish: Finish::Stop,
            });
        }
        out.push(token);
        all.push(token);
        next_input = vec![token];
        if !cfg.stop.is_empty() {
            let text = decode(&out)?;
            if let Some(cut) = cfg.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
                return Ok(Generated {
                    text: text[..cut].to_string(),
                    tokens: out,
                    finish: Finish::Stop,
                });
            }
        }
    }
    Ok(Generated {
        text: decode(&out)?,
        tokens: out,
        finish: Finish::Length,
    })
}
