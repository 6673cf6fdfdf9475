//! `leafe-trainer bench`: training throughput as a fraction of the device's
//! dense-matmul peak at the same precision, measured in the same run (with
//! candle's matmul), the step's peak memory next to the memory guard's
//! estimate, and generation speed with and without the KV cache.

use crate::jobs::generate::{GenerateConfig, generate};
use crate::nn::config::{Arch, ModelConfig};
use crate::nn::init::SeededRng;
use crate::nn::memory::TrainingStep;
use crate::nn::model::Model;
use crate::nn::optim::{AdamW, AdamWConfig};
use crate::nn::params::init_params;
use crate::nn::quant::Quantization;
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use std::time::Instant;
use timing::best_seconds;

pub mod breakdown;
mod timing;

/// A random model of the Qwen2-0.5B shape (494M parameters).
pub fn qwen2_05b() -> ModelConfig {
    ModelConfig {
        arch: Arch::Qwen2,
        vocab_size: 151_936,
        hidden_size: 896,
        intermediate_size: 4864,
        num_hidden_layers: 24,
        num_attention_heads: 14,
        num_key_value_heads: 2,
        max_position_embeddings: 4096,
        rope_theta: 1_000_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
        attention_bias: true,
        bos_token_id: None,
        eos_token_id: None,
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainBench {
    pub model: String,
    /// "F32", or "BF16" for mixed precision.
    pub dtype: String,
    /// Layers recomputed in the backward pass (`--grad-checkpoint`).
    pub grad_checkpoint: bool,
    pub parameters: usize,
    pub batch: usize,
    pub seq: usize,
    pub step_s: f64,
    pub tokens_per_s: f64,
    pub step_flops_per_s: f64,
    /// The device's dense matmul peak at the step's precision ([`matmul_peak`]).
    pub matmul_flops_per_s: f64,
    /// step FLOP/s over matmul FLOP/s.
    pub fraction_of_matmul: f64,
    /// Where a step's time goes, in seconds: forward, backward, optimizer.
    pub forward_s: f64,
    pub backward_s: f64,
    pub optimizer_s: f64,
    /// What the memory guard expects a training step to need.
    pub estimated_bytes: u64,
    /// The process's peak resident memory over model set-up and the steps
    /// (CPU only: a GPU's memory is not measured here).
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct GenBench {
    pub model: String,
    /// How the projections were stored (`none`, `q8_0`, `q4k`).
    pub quantization: String,
    /// Tokens/s of prefilling one prompt of [`PREFILL_TOKENS`] tokens (the
    /// work of a long agent prompt).
    pub prefill_tokens_per_s: f64,
    pub tokens: usize,
    pub cached_tokens_per_s: f64,
    pub uncached_tokens_per_s: f64,
    /// (sequences, tokens/s over all of them) of batched decoding, as
    /// `serve` does it for that many concurrent requests.
    pub batched_tokens_per_s: Vec<(usize, f64)>,
}

/// FLOPs of one forward + backward over `tokens` tokens of context `seq`:
/// 6 per parameter per token, plus attention scores and values.
pub fn step_flops(cfg: &ModelConfig, tokens: usize, seq: usize) -> f64 {
    let attention = 12.0 * cfg.num_hidden_layers as f64 * cfg.hidden_size as f64 * seq as f64;
    (6.0 * cfg.parameter_count() as f64 + attention) * tokens as f64
}

/// FLOP/s of one `[m, k] x [k, n]` matmul in `dtype`, best of `reps`.
pub fn matmul_flops(
    m: usize,
    k: usize,
    n: usize,
    reps: usize,
    dtype: DType,
    device: &Device,
) -> Result<f64> {
    let mut rng = SeededRng::new(1);
    let a = rng.normal_tensor(&[m, k], 1.0, dtype, device)?;
    let b = rng.normal_tensor(&[k, n], 1.0, dtype, device)?;
    let best = best_seconds(device, reps, || a.matmul(&b))?;
    Ok(2.0 * (m * k * n) as f64 / best)
}

/// The device's dense matmul FLOP/s in `dtype`: the best of the model's
/// dominant shape (`tokens x hidden -> intermediate`) and square ones large
/// enough to reach the peak (4096 and 8192 on a GPU, 1024 on a CPU).
pub fn matmul_peak(cfg: &ModelConfig, tokens: usize, dtype: DType, device: &Device) -> Result<f64> {
    let squares: &[usize] = if device.is_cpu() {
        &[1024]
    } else {
        &[4096, 8192]
    };
    let mut best = matmul_flops(
        tokens,
        cfg.hidden_size,
        cfg.intermediate_size,
        5,
        dtype,
        device,
    )?;
    for &n in squares {
        best = best.max(matmul_flops(n, n, n, 5, dtype, device)?);
    }
    Ok(best)
}

/// Time `steps` training steps (after one warm-up) on random tokens.
pub fn train_step(
    name: &str,
    cfg: &ModelConfig,
    shape: TrainingStep,
    steps: usize,
    device: &Device,
) -> Result<TrainBench> {
    let TrainingStep {
        batch,
        seq,
        dtype,
        recompute,
    } = shape;
    let estimated_bytes = crate::nn::memory::training(cfg, shape);
    crate::nn::memory::check_on(device, estimated_bytes, "this benchmark")?;
    let measure_peak = device.is_cpu() && crate::nn::memory::reset_peak_rss();
    let params = init_params(cfg, 0, DType::F32, device)?;
    let build =
        || Model::for_training(cfg, &params, None, dtype).map(|m| m.with_recomputation(recompute));
    let mut model = build()?;
    let mut opt = AdamW::new(
        crate::nn::params::named_vars(&params),
        AdamWConfig::default(),
    )?;
    let mut rng = SeededRng::new(2);
    let ids: Vec<u32> = (0..batch * (seq + 1))
        .map(|_| (rng.next_u64() % cfg.vocab_size as u64) as u32)
        .collect();
    let all = Tensor::from_vec(ids, (batch, seq + 1), device)?;
    // Contiguous copies: the embedding gather and the loss need them.
    let inputs = all.narrow(1, 0, seq)?.contiguous()?;
    let targets = all.narrow(1, 1, seq)?.contiguous()?;
    // Every position is trained.
    let rows = Tensor::arange(0u32, (batch * seq) as u32, device)?;
    let row_targets = targets.flatten_all()?;
    // Returns the seconds spent in forward, backward and the optimizer.
    let mut step = |opt: &mut AdamW| -> Result<[f64; 3]> {
        let t = Instant::now();
        let log_probs = model.target_log_probs(&inputs, &rows, &row_targets)?;
        let loss = (log_probs.sum_all()?.neg()? / (batch * seq) as f64)?;
        loss.to_scalar::<f32>()?;
        let forward = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let store = model.backward(&loss)?;
        // A GPU queues the work: wait for it, so that each phase is timed
        // by its own work, not by the launches.
        device.synchronize()?;
        let backward = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let grads: Vec<Option<Tensor>> = opt
            .vars()
            .map(|(_, v)| store.get(v.as_tensor()).cloned())
            .collect();
        opt.apply(&grads, 1e-5, 1.0)?;
        if dtype != DType::F32 {
            model = build()?; // cast the updated weights, as `sft` does
        }
        device.synchronize()?;
        Ok([forward, backward, t.elapsed().as_secs_f64()])
    };
    step(&mut opt)?;
    let mut split = [0.0; 3];
    for _ in 0..steps.max(1) {
        let s = step(&mut opt)?;
        for (acc, x) in split.iter_mut().zip(s) {
            *acc += x / steps.max(1) as f64;
        }
    }
    let peak_rss_bytes = if measure_peak {
        crate::nn::memory::peak_rss_bytes()
    } else {
        None
    };
    let step_s: f64 = split.iter().sum();
    let tokens = batch * seq;
    let step_flops_per_s = step_flops(cfg, tokens, seq) / step_s;
    let matmul = matmul_peak(cfg, tokens, dtype, device)?;
    Ok(TrainBench {
        model: name.into(),
        dtype: format!("{dtype:?}"),
        grad_checkpoint: recompute,
        parameters: cfg.parameter_count(),
        batch,
        seq,
        step_s,
        tokens_per_s: tokens as f64 / step_s,
        step_flops_per_s,
        matmul_flops_per_s: matmul,
        fraction_of_matmul: step_flops_per_s / matmul,
        forward_s: split[0],
        backward_s: split[1],
        optimizer_s: split[2],
        estimated_bytes,
        peak_rss_bytes,
    })
}

/// The prompt length of the prefill benchmark.
pub const PREFILL_TOKENS: usize = 512;

/// Prefill speed, generation speed with and without the KV cache (greedy,
/// no early stop), and of `batches` sequences decoded together; the
/// projections stored as `quantization` says.
pub fn generation(
    name: &str,
    cfg: &ModelConfig,
    prompt_len: usize,
    tokens: usize,
    batches: &[usize],
    quantization: Quantization,
    device: &Device,
) -> Result<GenBench> {
    let params = init_params(cfg, 0, DType::F32, device)?;
    let model = Model::quantized(cfg, &params, quantization)?;
    drop(params);
    let long: Vec<u32> = (0..PREFILL_TOKENS.min(cfg.max_position_embeddings) as u32)
        .map(|i| (i * 7 + 3) % cfg.vocab_size as u32)
        .collect();
    let prefill_s = best_seconds(device, 2, || {
        let (logits, _) = model.prefill_batch(&[&long])?;
        Ok(logits)
    })?;
    let tokenizer = byte_tokenizer()?;
    let prompt: Vec<u32> = (0..prompt_len as u32)
        .map(|i| i % cfg.vocab_size.min(256) as u32)
        .collect();
    let run = |no_cache: bool| -> Result<f64> {
        let t = Instant::now();
        let out = generate(
            &model,
            &tokenizer,
            &prompt,
            &[],
            &GenerateConfig {
                max_tokens: tokens,
                no_cache,
                ..Default::default()
            },
        )?;
        Ok(out.tokens.len() as f64 / t.elapsed().as_secs_f64())
    };
    Ok(GenBench {
        model: name.into(),
        quantization: quantization.as_str().into(),
        prefill_tokens_per_s: long.len() as f64 / prefill_s,
        tokens,
        cached_tokens_per_s: run(false)?,
        uncached_tokens_per_s: run(true)?,
        batched_tokens_per_s: batches
            .iter()
            .map(|&n| Ok((n, batched(&model, prompt_len, tokens, n)?)))
            .collect::<Result<_>>()?,
    })
}

/// Tokens/s of `sequences` greedy generations decoded together, their
/// prompts (all different) prefilled together first, as `serve` does for
/// requests that arrive together.
fn batched(model: &Model, prompt_len: usize, tokens: usize, sequences: usize) -> Result<f64> {
    let vocab = model.cfg.vocab_size.min(256) as u32;
    let started = Instant::now();
    let prompts: Vec<Vec<u32>> = (0..sequences as u32)
        .map(|row| (0..prompt_len as u32).map(|i| (i + row) % vocab).collect())
        .collect();
    let prompts: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let (logits, caches) = model.prefill_batch(&prompts)?;
    let mut next = logits.argmax(1)?.to_vec1::<u32>()?;
    let mut batch = crate::nn::model::KvBatch::new();
    for cache in caches {
        batch.push(cache)?;
    }
    for _ in 1..tokens {
        let logits = model.decode_batch(&next, &mut batch)?;
        next = logits.argmax(1)?.to_vec1::<u32>()?;
    }
    Ok((sequences * tokens) as f64 / started.elapsed().as_secs_f64())
}

/// A tokenizer only for decoding benchmark output (bytes as tokens).
fn byte_tokenizer() -> Result<tokenizers::Tokenizer> {
    let vocab: std::collections::HashMap<String, u32> =
        (0..=255u32).map(|i| (format!("<{i}>"), i)).collect();
    let model = tokenizers::models::wordlevel::WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("<0>".into())
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(tokenizers::Tokenizer::new(model))
}
