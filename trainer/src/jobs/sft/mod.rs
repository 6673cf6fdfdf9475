//! Supervised fine-tuning: assistant-only next-token loss, length-bucketed
//! batches, AdamW with warmup + cosine, gradient accumulation and clipping,
//! checkpoints with optimizer state, `--resume`, a loss log and a loss curve.

mod batch;
mod checkpoint;
mod report;
mod scaling;

pub use batch::{Batch, SetNorm, batch_loss_sum, kl_to_reference_sum, make_batch, masked_nll_sum};
pub use report::{LogEntry, loss_curve_svg};

use crate::io::chat::{ChatTemplate, Example};
use crate::io::data::{self, OnBadLine};
use crate::nn::config::ModelConfig;
use crate::nn::lora::LoraConfig;
use crate::nn::optim::{AdamW, AdamWConfig, learning_rate};
use crate::setting::{BadSetting, check};
use anyhow::{Context, Result, bail};
use batch::epoch_batches;
use candle_core::{DType, Device, Tensor};
use checkpoint::{Weights, latest_checkpoint, save_checkpoint, saved_scaler};
use report::write_log;
use scaling::LossScaler;
use std::path::Path;
use std::time::Instant;

/// Training settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SftConfig {
    pub epochs: usize,
    /// Stop after this many optimizer steps, whatever the epochs say.
    pub max_steps: Option<usize>,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    /// The cosine decays to `lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    /// 0 turns clipping off.
    pub max_grad_norm: f64,
    pub max_len: usize,
    pub seed: u64,
    /// Checkpoint every N optimizer steps (0: only at the end).
    pub save_every: usize,
    pub on_bad_line: OnBadLine,
    /// Accept negative record weights (policy-gradient data).
    pub allow_negative_weights: bool,
    /// Add coef * KL(model || reference) on the trained tokens (a mean over
    /// them), as GRPO does to stay near its starting policy.
    pub kl: Option<KlPenalty>,
    /// Train a LoRA adapter instead of all weights.
    pub lora: Option<LoraConfig>,
    /// The precision of the forward and backward passes: F32, or BF16 for
    /// mixed precision (f32 weights, optimizer state, norms, softmax and
    /// loss; bf16 matmuls). Checkpoints hold the f32 weights either way.
    pub dtype: DType,
    /// Recompute each layer's activations in the backward pass
    /// ([`crate::nn::model::Model::with_recomputation`]): less memory, a longer step.
    pub grad_checkpoint: bool,
    /// The precision of the final model written to `out` (F32 or BF16).
    /// Checkpoints along the way keep f32, so that a resumed run continues
    /// exactly.
    pub save_dtype: DType,
    /// f16: the loss scale to start from (PyTorch's GradScaler starts at
    /// 65536); it adapts from there.
    pub initial_loss_scale: f64,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            epochs: 3,
            max_steps: None,
            batch_size: 4,
            grad_accum: 1,
            lr: 1e-4,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            max_len: 1024,
            seed: 0,
            save_every: 0,
            on_bad_line: OnBadLine::Stop,
            allow_negative_weights: false,
            kl: None,
            lora: None,
            dtype: DType::F32,
            grad_checkpoint: false,
            save_dtype: DType::F32,
            initial_loss_scale: scaling::INITIAL_SCALE,
        }
    }
}

/// A KL penalty towards a reference model.
#[derive(Clone, Debug, PartialEq)]
pub struct KlPenalty {
    /// The reference checkpoint (same tokenizer), e.g. the policy GRPO started from.
    pub reference: std::path::PathBuf,
    pub coef: f64,
}

/// What a training run did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SftReport {
    pub steps: usize,
    pub examples: usize,
    pub skipped_lines: Vec<(usize, String)>,
    pub truncated_examples: usize,
    pub truncated_tokens: usize,
    pub trained_tokens_per_epoch: usize,
    pub final_loss: f64,
    pub tokens_per_s: f64,
    pub resumed_from: Option<usize>,
    /// f16: steps skipped because the scaled gradients overflowed (their
    /// updates were not applied; the loss scale was halved each time).
    pub overflowed_steps: usize,
}

impl SftConfig {
    /// Every setting in its range; the error names the field.
    pub fn validate(&self) -> Result<(), BadSetting> {
        check(self.batch_size >= 1, "batch_size", "must be at least 1")?;
        check(self.grad_accum >= 1, "grad_accum", "must be at least 1")?;
        check(self.epochs >= 1, "epochs", "must be at least 1")?;
        check(
            self.initial_loss_scale >= 1.0 && self.initial_loss_scale.is_finite(),
            "initial_loss_scale",
            "must be a number >= 1",
        )?;
        check(
            self.lr > 0.0 && self.lr.is_finite(),
            "lr",
            "must be a positive number",
        )?;
        check(
            matches!(self.dtype, DType::F32 | DType::BF16 | DType::F16),
            "dtype",
            "must be f32, bf16 or f16",
        )?;
        check(
            matches!(self.save_dtype, DType::F32 | DType::BF16),
            "save_dtype",
            "must be f32 or bf16",
        )?;
        check(self.max_len >= 2, "max_len", "must be at least 2")?;
        if let Some(kl) = &self.kl {
            check(
                kl.coef >= 0.0 && kl.coef.is_finite(),
                "kl.coef",
                "must be a number >= 0",
            )?;
        }
        Ok(())
    }
}

/// Train the model in `model_dir` on `data_path`; write checkpoints and the
/// final model to `out`.
pub fn train(
    model_dir: &Path,
    data_path: &Path,
    out: &Path,
    cfg: &SftConfig,
    device: &Device,
    resume: bool,
    progress: bool,
) -> Result<SftReport> {
    cfg.validate()?;
    let model_cfg = ModelConfig::load(model_dir)?;
    let tokenizer = crate::io::tokenizer::load(model_dir)?;
    let template = ChatTemplate::load(model_dir)?;
    let dataset = data::load_chat_jsonl(
        data_path,
        &template,
        &tokenizer,
        cfg.max_len,
        cfg.on_bad_line,
    )?;
    let negative = dataset.examples.iter().filter(|e| e.weight < 0.0).count();
    if negative > 0 && !cfg.allow_negative_weights {
        bail!(
            "{negative} records have a weight below 0: pass --allow-negative-weights for \
             policy-gradient data (such as `leafe-host export --data grpo`)"
        );
    }
    if let Some(max) = dataset.examples.iter().map(|e| e.ids.len()).max()
        && max > model_cfg.max_position_embeddings
    {
        bail!(
            "examples of {max} tokens exceed the model's max_position_embeddings {}: lower --max-len",
            model_cfg.max_position_embeddings
        );
    }
    let longest = dataset
        .examples
        .iter()
        .map(|e| e.ids.len())
        .max()
        .unwrap_or(1);
    crate::nn::memory::check_on(
        device,
        crate::nn::memory::training(
            &model_cfg,
            crate::nn::memory::TrainingStep {
                batch: cfg.batch_size,
                seq: longest,
                dtype: cfg.dtype,
                recompute: cfg.grad_checkpoint,
            },
        ),
        "training with these settings",
    )?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let resumed = if resume { latest_checkpoint(out) } else { None };
    // What trains: all weights, or a LoRA adapter over frozen weights.
    let weights = Weights::load(
        model_dir,
        &model_cfg,
        cfg.lora.as_ref(),
        cfg.seed,
        resumed.as_ref().map(|(_, p)| p.as_path()),
        device,
    )?;
    let mut model = weights.model(&model_cfg, cfg.dtype, cfg.grad_checkpoint)?;
    let reference = match &cfg.kl {
        Some(kl) => {
            let (reference, _) = crate::io::checkpoint::load_for_inference(
                &kl.reference,
                device,
                crate::nn::quant::Quantization::None,
            )
            .with_context(|| format!("the KL reference {}", kl.reference.display()))?;
            if reference.cfg.vocab_size != model_cfg.vocab_size {
                bail!(
                    "the KL reference has a vocabulary of {} tokens, the model {}: they must share \
                     a tokenizer",
                    reference.cfg.vocab_size,
                    model_cfg.vocab_size
                );
            }
            Some((reference, kl.coef))
        }
        None => None,
    };
    let vars = weights.trainable();
    let mut opt = AdamW::new(
        vars,
        AdamWConfig {
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let mut log: Vec<LogEntry> = Vec::new();
    // f16 gradients need loss scaling (bf16 has f32's range).
    let mut scaler = (cfg.dtype == DType::F16).then(|| {
        resumed
            .as_ref()
            .and_then(|(_, dir)| saved_scaler(dir))
            .unwrap_or(LossScaler::starting_at(cfg.initial_loss_scale))
    });
    if let Some((step, dir)) = &resumed {
        opt.load(&dir.join("optimizer.safetensors"), *step)?;
        let text = std::fs::read_to_string(dir.join("loss_log.jsonl")).unwrap_or_default();
        log = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
    }

    let per_epoch = dataset
        .examples
        .len()
        .div_ceil(cfg.batch_size)
        .div_ceil(cfg.grad_accum);
    let total = cfg
        .max_steps
        .unwrap_or(per_epoch * cfg.epochs)
        .min(per_epoch * cfg.epochs);
    let pad = model_cfg.eos_token_id.unwrap_or(0);
    let bar = progress_bar(total as u64, progress);
    bar.set_position(opt.step as u64);

    let started = Instant::now();
    let mut trained_tokens_run = 0usize;
    'epochs: for epoch in 0..cfg.epochs {
        let batches = epoch_batches(&dataset.examples, cfg.batch_size, cfg.seed, epoch);
        for (group_index, group) in batches.chunks(cfg.grad_accum).enumerate() {
            let global = epoch * per_epoch + group_index;
            if global < opt.step {
                continue; // done before the resume point
            }
            if opt.step >= total {
                break 'epochs;
            }
            let step_started = Instant::now();
            let norm = SetNorm::of(group.iter().flatten().map(|i| &dataset.examples[*i]));
            let batches: Vec<Batch> = group
                .iter()
                .map(|idx| {
                    let exs: Vec<&Example> = idx.iter().map(|i| &dataset.examples[*i]).collect();
                    make_batch(&exs, pad, device, &norm)
                })
                .collect::<Result<_>>()?;
            let tokens: usize = batches.iter().map(|b| b.tokens).sum();
            let mut grads: Vec<Option<Tensor>> = vec![None; opt.vars().count()];
            let mut loss_sum = 0.0;
            for batch in &batches {
                // The mask already divides by each set's tokens in the step.
                let (mut loss, kl) =
                    batch_loss_sum(&model, batch, reference.as_ref().map(|(m, _)| m))?;
                if let (Some(kl), Some((_, coef))) = (kl, &reference) {
                    loss = (loss + (kl * (*coef / tokens.max(1) as f64))?)?;
                }
                loss_sum += f64::from(loss.to_scalar::<f32>()?);
                if let Some(scaler) = &scaler {
                    loss = (loss * scaler.scale)?;
                }
                let store = model.backward(&loss)?;
                for ((_, var), slot) in opt.vars().zip(grads.iter_mut()) {
                    if let Some(g) = store.get(var.as_tensor()) {
                        *slot = Some(match slot.take() {
                            Some(acc) => (acc + g)?,
                            None => g.clone(),
                        });
                    }
                }
            }
            let lr = learning_rate(opt.step, total, cfg.warmup_steps, cfg.lr, cfg.min_lr_ratio);
            let loss_scale = scaler.map(|s| s.scale);
            let (grad_norm, overflow) = match &mut scaler {
                None => (opt.apply(&grads, lr, cfg.max_grad_norm)?, false),
                Some(scaler) => {
                    let norm = opt.apply_scaled(&grads, scaler.scale, lr, cfg.max_grad_norm)?;
                    scaler.update(norm.is_none());
                    (norm.unwrap_or(0.0), norm.is_none())
                }
            };
            if cfg.dtype != DType::F32 {
                // The model holds casts of the weights as they were.
                model = weights.model(&model_cfg, cfg.dtype, cfg.grad_checkpoint)?;
            }
            if !loss_sum.is_finite() {
                bail!(
                    "the loss became {loss_sum} at step {}: lower --lr",
                    opt.step
                );
            }
            trained_tokens_run += batches.iter().map(|b| b.inputs.elem_count()).sum::<usize>();
            let entry = LogEntry {
                step: opt.step,
                loss: loss_sum,
                lr,
                grad_norm,
                tokens,
                tokens_per_s: batches.iter().map(|b| b.inputs.elem_count()).sum::<usize>() as f64
                    / step_started.elapsed().as_secs_f64(),
                loss_scale,
                overflow,
            };
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} {:.0} tok/s",
                entry.loss, lr, entry.tokens_per_s
            ));
            bar.set_position(opt.step as u64);
            log.push(entry);
            if cfg.save_every > 0 && opt.step % cfg.save_every == 0 && opt.step < total {
                save_checkpoint(
                    &out.join(format!("checkpoint-{}", opt.step)),
                    &model_cfg,
                    &weights,
                    model_dir,
                    &opt,
                    &log,
                    scaler.as_ref(),
                )?;
            }
        }
    }
    bar.finish_and_clear();
    weights.save(out, &model_cfg, model_dir, true, cfg.save_dtype)?;
    write_log(out, &log)?;
    std::fs::write(out.join("loss_curve.svg"), loss_curve_svg(&log))?;
    Ok(SftReport {
        steps: opt.step,
        examples: dataset.examples.len(),
        skipped_lines: dataset.skipped.clone(),
        truncated_examples: dataset.truncated,
        truncated_tokens: dataset.truncated_tokens,
        trained_tokens_per_epoch: dataset.trained_tokens(),
        final_loss: log.last().map(|e| e.loss).unwrap_or(f64::NAN),
        tokens_per_s: trained_tokens_run as f64 / started.elapsed().as_secs_f64().max(1e-9),
        resumed_from: resumed.map(|(s, _)| s),
        overflowed_steps: log.iter().filter(|e| e.overflow).count(),
    })
}

fn progress_bar(len: u64, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} steps {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
