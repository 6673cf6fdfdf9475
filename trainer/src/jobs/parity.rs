//! Check a checkpoint against a reference recorded from transformers
//! (`scripts/bench/parity.py`): for each chat prompt, the tokenizer's ids, the
//! last position's top logits and the greedy continuation.

use crate::io::chat::Message;
use crate::jobs::generate::{GenerateConfig, generate};
use crate::nn::model::Model;
use crate::nn::quant::Quantization;
use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One prompt of the fixture, as the script writes it.
#[derive(Deserialize)]
pub struct Reference {
    pub messages: Vec<Message>,
    pub text: String,
    pub ids: Vec<u32>,
    pub top_ids: Vec<u32>,
    pub top_logits: Vec<f32>,
    pub greedy: Vec<u32>,
    pub greedy_text: String,
}

#[derive(Deserialize)]
pub struct Fixture {
    pub gguf_sha256: String,
    pub transformers: String,
    pub new_tokens: usize,
    pub prompts: Vec<Reference>,
}

impl Fixture {
    pub fn load(path: &Path) -> Result<Fixture> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a parity fixture", path.display()))
    }
}

/// How one prompt compares.
#[derive(Debug, Serialize)]
pub struct PromptParity {
    pub prompt_tokens: usize,
    pub text_equal: bool,
    pub ids_equal: bool,
    /// Max |ours - theirs| over the reference's top logits.
    pub max_abs_logit_diff: f32,
    /// The reference's argmax is ours too.
    pub argmax_equal: bool,
    pub greedy_equal: bool,
    pub greedy_text: String,
}

#[derive(Debug, Serialize)]
pub struct Parity {
    pub prompts: Vec<PromptParity>,
    pub max_abs_logit_diff: f32,
}

impl Parity {
    /// Everything equal and logits within `tolerance`.
    pub fn holds(&self, tolerance: f32) -> bool {
        self.max_abs_logit_diff <= tolerance
            && self
                .prompts
                .iter()
                .all(|p| p.text_equal && p.ids_equal && p.argmax_equal && p.greedy_equal)
    }
}

/// Compare the model in `dir` (on `device`, quantized as `quantization`
/// says) with the fixture.
pub fn check(
    dir: &Path,
    fixture: &Fixture,
    device: &Device,
    quantization: Quantization,
) -> Result<Parity> {
    let (model, tokenizer, template) = crate::io::load_for_inference(dir, device, quantization)?;
    let eos: Vec<u32> = model.cfg.eos_token_id.into_iter().collect();
    let mut prompts = Vec::new();
    for r in &fixture.prompts {
        if r.top_ids.len() != r.top_logits.len() || r.top_ids.is_empty() {
            bail!("the fixture's top_ids and top_logits differ in length");
        }
        let text = template.render(&r.messages, true)?;
        let ids = crate::io::tokenizer::ids(&tokenizer, &text)?;
        // Score the reference's ids, so a tokenizer difference shows up as
        // such and not as a logit difference too.
        let logits = last_logits(&model, &r.ids, device)?;
        let max_abs_logit_diff = r
            .top_ids
            .iter()
            .zip(&r.top_logits)
            .map(|(&id, &want)| (logits[id as usize] - want).abs())
            .fold(0.0f32, f32::max);
        let argmax = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32);
        let cfg = GenerateConfig {
            max_tokens: fixture.new_tokens,
            ..GenerateConfig::default()
        };
        let out = generate(&model, &tokenizer, &r.ids, &eos, &cfg)?;
        prompts.push(PromptParity {
            prompt_tokens: r.ids.len(),
            text_equal: text == r.text,
            ids_equal: ids == r.ids,
            max_abs_logit_diff,
            argmax_equal: argmax == Some(r.top_ids[0]),
            greedy_equal: out.tokens == r.greedy,
            greedy_text: out.text,
        });
    }
    let max_abs_logit_diff = prompts
        .iter()
        .map(|p| p.max_abs_logit_diff)
        .fold(0.0, f32::max);
    Ok(Parity {
        prompts,
        max_abs_logit_diff,
    })
}

/// The last position's logits for `ids`, as f32 on the host.
pub fn last_logits(model: &Model, ids: &[u32], device: &Device) -> Result<Vec<f32>> {
    let input = Tensor::new(ids, device)?.unsqueeze(0)?;
    let logits = model.forward(&input)?.squeeze(0)?;
    Ok(logits.get(ids.len() - 1)?.to_dtype(DType::F32)?.to_vec1()?)
}
