//! Text generation with a KV cache: greedy, temperature and top-p sampling
//! with a seed, stop strings and the end-of-turn token.

use crate::nn::model::{KvBatch, Model};
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
    /// Prompt tokens whose keys and values came from the prefix cache.
    pub cached_prompt_tokens: usize,
}

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
    let mut sequence = Decoding::new(model, prompt, eos, cfg)?;
    let device = model.device();
    // Decoding runs as `serve` runs it: a batch, of one.
    let mut batch: Option<KvBatch> = None;
    while sequence.wants_more() {
        let logits = if cfg.no_cache {
            let ids = Tensor::new(sequence.tokens(), device)?.unsqueeze(0)?;
            model.forward_last(&ids)?.squeeze(0)?
        } else if let Some(batch) = batch.as_mut() {
            model
                .decode_batch(&[sequence.last_token()], batch)?
                .squeeze(0)?
        } else {
            let (logits, caches) = model.prefill_batch(&[sequence.tokens()])?;
            let mut one = KvBatch::new();
            for cache in caches {
                one.push(cache)?;
            }
            batch = Some(one);
            logits.squeeze(0)?
        };
        sequence.accept(&logits, tokenizer, &mut on_text)?;
    }
    Ok(sequence.finish(&mut on_text))
}

/// One sequence being decoded: its sampler, the tokens so far, and when to
/// stop (end-of-turn token, stop string, length, context, or the receiver
/// of its text went away). The caller computes the logits: with
/// [`Model::prefill_batch`] for the prompt, then [`Model::decode_batch`].
pub struct Decoding {
    sampler: LogitsProcessor,
    eos: Vec<u32>,
    stop: Vec<String>,
    max_tokens: usize,
    context: usize,
    /// The prompt and the tokens generated.
    all: Vec<u32>,
    out: Vec<u32>,
    text: String,
    /// Bytes of the text already handed on, and how much to hold back
    /// because it may be the start of a stop string.
    sent: usize,
    hold: usize,
    finish: Option<Finish>,
    abandoned: bool,
    cached_prompt_tokens: usize,
}

impl Decoding {
    pub fn new(model: &Model, prompt: &[u32], eos: &[u32], cfg: &GenerateConfig) -> Result<Self> {
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
        Ok(Decoding {
            sampler: LogitsProcessor::from_sampling(cfg.seed, sampling),
            eos: eos.to_vec(),
            stop: cfg.stop.clone(),
            max_tokens: cfg.max_tokens,
            context,
            all: prompt.to_vec(),
            out: Vec::new(),
            text: String::new(),
            sent: 0,
            hold: cfg.stop.iter().map(|s| s.len()).max().unwrap_or(1) - 1,
            finish: None,
            abandoned: false,
            cached_prompt_tokens: 0,
        })
    }

    /// Whether another token should be decoded.
    pub fn wants_more(&self) -> bool {
        self.finish.is_none()
            && !self.abandoned
            && self.out.len() < self.max_tokens
            && self.all.len() < self.context
    }

    /// The prompt and the tokens generated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.all
    }

    /// The token the next step continues from.
    pub fn last_token(&self) -> u32 {
        *self.all.last().expect("a sequence is never empty")
    }

    /// Sample the next token from `logits` (`[vocab]`) and hand on the text
    /// that became final.
    pub fn accept(
        &mut self,
        logits: &Tensor,
        tokenizer: &tokenizers::Tokenizer,
        on_text: &mut impl FnMut(&str) -> bool,
    ) -> Result<()> {
        let token = self.sampler.sample(&logits.to_dtype(DType::F32)?)?;
        if self.eos.contains(&token) {
            self.finish = Some(Finish::Stop);
            return Ok(());
        }
        self.out.push(token);
        self.all.push(token);
        self.text = tokenizer
            .decode(&self.out, true)
            .map_err(|e| anyhow!("cannot decode: {e}"))?;
        if let Some(cut) = self
            .stop
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(cut);
            self.finish = Some(Finish::Stop);
            return Ok(());
        }
        let end = settled(&self.text, self.sent, self.hold);
        if end > self.sent {
            if !on_text(&self.text[self.sent..end]) {
                self.abandoned = true;
                return Ok(());
            }
            self.sent = end;
        }
        Ok(())
    }

    /// Hand on the rest of the text; the result.
    pub fn finish(self, on_text: &mut impl FnMut(&str) -> bool) -> Generated {
        if self.text.len() > self.sent {
            on_text(&self.text[self.sent..]);
        }
        Generated {
            text: self.text,
            tokens: self.out,
            finish: self.finish.unwrap_or(Finish::Length),
            cached_prompt_tokens: self.cached_prompt_tokens,
        }
    }

    /// Say that the prompt's first `tokens` came from the prefix cache.
    pub fn set_cached_prompt_tokens(&mut self, tokens: usize) {
        self.cached_prompt_tokens = tokens;
    }
}
