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
    /// Cap on prompt + generated tokens (below the model's own
    /// `max_position_embeddings`); bounds the KV cache's memory.
    pub max_context: Option<usize>,
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
            max_context: None,
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

/// Prompt positions run through the model at once: bounds the attention
/// scores of a long prompt (`chunk x context` instead of `context^2`).
pub const PREFILL_CHUNK: usize = 128;

/// Continue `prompt` (token ids). Stops at `eos` ids, a stop string, or `max_tokens`.
pub fn generate(
    model: &Model,
    tokenizer: &tokenizers::Tokenizer,
    prompt: &[u32],
    eos: &[u32],
    cfg: &GenerateConfig,
) -> Result<Generated> {
    generate_streaming(model, tokenizer, prompt, eos, cfg, |_| true)
}

/// The longest prefix of `text[from..]` that can be sent now: not a
/// possible start of a stop string, not a half-decoded character.
fn settled(text: &str, from: usize, hold: usize) -> usize {
    let mut end = text.len().saturating_sub(hold).max(from);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if text[from..end].ends_with('\u{FFFD}') {
        end -= '\u{FFFD}'.len_utf8();
    }
    end.max(from)
}

/// [`generate`], handing the text to `on_text` piece by piece as it becomes
/// final (for streaming). `on_text` returns false to stop early (the
/// client went away).
pub fn generate_streaming(
    model: &Model,
    tokenizer: &tokenizers::Tokenizer,
    prompt: &[u32],
    eos: &[u32],
    cfg: &GenerateConfig,
    mut on_text: impl FnMut(&str) -> bool,
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
    let context = cfg
        .max_context
        .map_or(model.cfg.max_position_embeddings, |c| {
            c.min(model.cfg.max_position_embeddings)
        });
    if prompt.len() >= context {
        return Err(anyhow!(
            "the prompt has {} tokens; the context holds {context}",
            prompt.len()
        ));
    }
    let mut cache = KvCache::new(&model.cfg);
    let mut all: Vec<u32> = prompt.to_vec();
    let mut out: Vec<u32> = Vec::new();
    let decode = |ids: &[u32]| {
        tokenizer
            .decode(ids, true)
            .map_err(|e| anyhow!("cannot decode: {e}"))
    };
    // Bytes of the text already handed to `on_text`, and how much to hold
    // back because it may be the start of a stop string.
    let mut sent = 0;
    let hold = cfg.stop.iter().map(|s| s.len()).max().unwrap_or(1) - 1;
    let mut finish = Finish::Length;
    let mut text = String::new();
    while out.len() < cfg.max_tokens && all.len() < context {
        let logits = if cfg.no_cache {
            let ids = Tensor::new(all.as_slice(), device)?.unsqueeze(0)?;
            model.forward_last(&ids, None)?
        } else if cache.is_empty() {
            let ids = Tensor::new(all.as_slice(), device)?.unsqueeze(0)?;
            model.prefill(&ids, &mut cache, PREFILL_CHUNK)?
        } else {
            let ids = Tensor::new(&[*all.last().expect("never empty")], device)?.unsqueeze(0)?;
            model.forward_last(&ids, Some(&mut cache))?
        };
        let last = logits.squeeze(0)?.to_dtype(DType::F32)?;
        let token = sampler.sample(&last)?;
        if eos.contains(&token) {
            finish = Finish::Stop;
            break;
        }
        out.push(token);
        all.push(token);
        text = decode(&out)?;
        if let Some(cut) = cfg.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
            text.truncate(cut);
            finish = Finish::Stop;
            break;
        }
        let end = settled(&text, sent, hold);
        if end > sent {
            if !on_text(&text[sent..end]) {
                break;
            }
            sent = end;
        }
    }
    if text.len() > sent {
        on_text(&text[sent..]);
    }
    Ok(Generated {
        text,
        tokens: out,
        finish,
    })
}
