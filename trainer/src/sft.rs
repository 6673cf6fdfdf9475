//! Supervised fine-tuning: assistant-only next-token loss, length-bucketed
//! batches, AdamW with warmup + cosine, gradient accumulation and clipping,
//! checkpoints with optimizer state, `--resume`, a loss log and a loss curve.

use crate::chat::{ChatTemplate, Example};
use crate::checkpoint;
use crate::config::ModelConfig;
use crate::data::{self, OnBadLine};
use crate::init::SeededRng;
use crate::lora::{self, LoraConfig};
use crate::model::{Adapter, Model, log_softmax_last_dim};
use crate::optim::{AdamW, AdamWConfig, learning_rate};
use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use std::path::{Path, PathBuf};
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
    /// Train a LoRA adapter instead of all weights.
    pub lora: Option<LoraConfig>,
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
            lora: None,
        }
    }
}

/// One logged optimizer step.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub tokens_per_s: f64,
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
}

/// A batch: inputs `[B, T]`, targets `[B, T]` and the loss mask `[B, T]`.
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
    pub mask: Tensor,
    /// Target tokens that count.
    pub tokens: usize,
}

/// Pack examples into one padded batch: position t predicts token t+1.
pub fn make_batch(examples: &[&Example], pad: u32, device: &Device) -> Result<Batch> {
    let t = examples
        .iter()
        .map(|e| e.ids.len() - 1)
        .max()
        .context("empty batch")?;
    let (mut inputs, mut targets, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    let mut tokens = 0;
    for e in examples {
        let n = e.ids.len() - 1;
        for i in 0..t {
            let real = i < n;
            inputs.push(if real { e.ids[i] } else { pad });
            targets.push(if real { e.ids[i + 1] } else { pad });
            let trained = real && e.trained[i + 1];
            tokens += usize::from(trained);
            mask.push(if trained { e.weight } else { 0.0 });
        }
    }
    let b = examples.len();
    Ok(Batch {
        inputs: Tensor::from_vec(inputs, (b, t), device)?,
        targets: Tensor::from_vec(targets, (b, t), device)?,
        mask: Tensor::from_vec(mask, (b, t), device)?,
        tokens,
    })
}

/// Summed negative log-likelihood of `targets` where `mask` is 1.
pub fn masked_nll_sum(
    logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    let logp = log_softmax_last_dim(logits)?;
    let picked = logp.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?;
    (picked * mask.to_dtype(logits.dtype())?)?.sum_all()?.neg()
}

/// Length-bucketed batches: sorted by length, cut into batches, batch order
/// shuffled per epoch from the seed.
fn epoch_batches(
    examples: &[Example],
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|i| (examples[*i].ids.len(), *i));
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(|c| c.to_vec()).collect();
    let mut rng = SeededRng::new(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for i in (1..batches.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        batches.swap(i, j);
    }
    batches
}

fn latest_checkpoint(out: &Path) -> Option<(usize, PathBuf)> {
    std::fs::read_dir(out)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("checkpoint-")?.parse::<usize>().ok()?;
            e.path()
                .join("trainer_state.json")
                .exists()
                .then(|| (step, e.path()))
        })
        .max_by_key(|(s, _)| *s)
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
    if cfg.batch_size == 0 || cfg.grad_accum == 0 || cfg.epochs == 0 {
        bail!("--batch-size, --grad-accum and --epochs must be at least 1");
    }
    if !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
        bail!("--lr must be a positive number");
    }
    let model_cfg = ModelConfig::load(model_dir)?;
    let tokenizer = crate::tokenizer::load(model_dir)?;
    let template = ChatTemplate::load(model_dir)?;
    let dataset = data::load_chat_jsonl(
        data_path,
        &template,
        &tokenizer,
        cfg.max_len,
        cfg.on_bad_line,
    )?;
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
    crate::memory::check(
        crate::memory::training(&model_cfg, cfg.batch_size, longest),
        "training with these settings",
    )?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let resumed = if resume { latest_checkpoint(out) } else { None };
    // What trains: all weights, or a LoRA adapter over frozen weights.
    let weights = Weights::load(
        model_dir,
        &model_cfg,
        cfg,
        resumed.as_ref().map(|(_, p)| p.as_path()),
        device,
    )?;
    let model = weights.model(&model_cfg)?;
    let vars = weights.trainable();
    let mut opt = AdamW::new(
        vars,
        AdamWConfig {
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let mut log: Vec<LogEntry> = Vec::new();
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
            let batches: Vec<Batch> = group
                .iter()
                .map(|idx| {
                    let exs: Vec<&Example> = idx.iter().map(|i| &dataset.examples[*i]).collect();
                    make_batch(&exs, pad, device)
                })
                .collect::<Result<_>>()?;
            let tokens: usize = batches.iter().map(|b| b.tokens).sum();
            let mut grads: Vec<Option<Tensor>> = vec![None; opt.vars().count()];
            let mut loss_sum = 0.0;
            for batch in &batches {
                let logits = model.forward(&batch.inputs, None)?;
                let loss =
                    (masked_nll_sum(&logits, &batch.targets, &batch.mask)? / tokens.max(1) as f64)?;
                loss_sum += f64::from(loss.to_scalar::<f32>()?);
                let store = loss.backward()?;
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
            let grad_norm = opt.apply(&grads, lr, cfg.max_grad_norm)?;
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
                )?;
            }
        }
    }
    bar.finish_and_clear();
    weights.save(out, &model_cfg, model_dir, true)?;
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
    })
}

fn write_log(dir: &Path, log: &[LogEntry]) -> Result<()> {
    let mut text = String::new();
    for e in log {
        text.push_str(&serde_json::to_string(e)?);
        text.push('\n');
    }
    std::fs::write(dir.join("loss_log.jsonl"), text)
        .with_context(|| format!("cannot write the loss log in {}", dir.display()))
}

fn save_checkpoint(
    dir: &Path,
    cfg: &ModelConfig,
    weights: &Weights,
    model_dir: &Path,
    opt: &AdamW,
    log: &[LogEntry],
) -> Result<()> {
    weights.save(dir, cfg, model_dir, false)?;
    opt.save(&dir.join("optimizer.safetensors"))?;
    write_log(dir, log)?;
    // Written last: a checkpoint without it is incomplete and not resumed from.
    std::fs::write(
        dir.join("trainer_state.json"),
        serde_json::to_vec_pretty(&serde_json::json!({ "step": opt.step }))?,
    )?;
    Ok(())
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

/// The loss per step as a small SVG line chart.
pub fn loss_curve_svg(log: &[LogEntry]) -> String {
    let (w, h, pad) = (640.0, 360.0, 48.0);
    let max_loss = log.iter().map(|e| e.loss).fold(0.0f64, f64::max).max(1e-9);
    let last_step = log.last().map(|e| e.step).unwrap_or(1).max(1) as f64;
    let points: Vec<String> = log
        .iter()
        .map(|e| {
            let x = pad + (w - 2.0 * pad) * e.step as f64 / last_step;
            let y = h - pad - (h - 2.0 * pad) * e.loss / max_loss;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="black"/>
<text x="{pad}" y="{t}">loss (max {max_loss:.3})</text><text x="{r}" y="{lbl}" text-anchor="end">step {last_step}</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{pts}"/>
</svg>
"##,
        b = h - pad,
        r = w - pad,
        t = pad - 12.0,
        lbl = h - pad + 20.0,
        pts = points.join(" ")
    )
}

/// The parameters of a run: the full model, or frozen base weights and an adapter.
enum Weights {
    Full(VarMap),
    Lora {
        base: VarMap,
        config: LoraConfig,
        adapter: VarMap,
    },
}

impl Weights {
    /// Full fine-tuning resumes from the checkpoint's weights; LoRA from the
    /// base model plus the checkpoint's adapter.
    fn load(
        model_dir: &Path,
        cfg: &ModelConfig,
        sft: &SftConfig,
        resume: Option<&Path>,
        device: &Device,
    ) -> Result<Weights> {
        match &sft.lora {
            None => {
                let dir = resume.unwrap_or(model_dir);
                Ok(Weights::Full(checkpoint::load_params(
                    dir,
                    cfg,
                    DType::F32,
                    device,
                )?))
            }
            Some(config) => {
                let base = checkpoint::load_params(model_dir, cfg, DType::F32, device)?;
                let adapter = match resume {
                    Some(dir) => lora::load_adapter(&dir.join("adapter"), cfg, device)?.1,
                    None => lora::init(cfg, config, sft.seed, device)?,
                };
                Ok(Weights::Lora {
                    base,
                    config: config.clone(),
                    adapter,
                })
            }
        }
    }

    fn model(&self, cfg: &ModelConfig) -> Result<Model> {
        Ok(match self {
            Weights::Full(params) => Model::new(cfg, params)?,
            Weights::Lora {
                base,
                config,
                adapter,
            } => Model::with_adapter(
                cfg,
                base,
                Some(Adapter {
                    config,
                    params: adapter,
                }),
            )?,
        })
    }

    /// The variables the optimizer updates.
    fn trainable(&self) -> Vec<(String, candle_core::Var)> {
        let map = match self {
            Weights::Full(params) => params,
            Weights::Lora { adapter, .. } => adapter,
        };
        let data = map
            .data()
            .lock()
            .expect("the var map lock is never poisoned");
        data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Save into `dir`: the full model; for LoRA the adapter in `dir/adapter`
    /// and, when `merged`, the merged full model too.
    fn save(&self, dir: &Path, cfg: &ModelConfig, model_dir: &Path, merged: bool) -> Result<()> {
        match self {
            Weights::Full(params) => checkpoint::save(dir, cfg, params, model_dir),
            Weights::Lora {
                base,
                config,
                adapter,
            } => {
                lora::save_adapter(&dir.join("adapter"), config, adapter, model_dir)?;
                if merged {
                    checkpoint::save(
                        dir,
                        cfg,
                        &lora::merge(base, cfg, config, adapter)?,
                        model_dir,
                    )?;
                }
                Ok(())
            }
        }
    }
}
