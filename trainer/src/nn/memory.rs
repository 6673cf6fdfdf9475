//! A guard against settings that cannot fit: estimate the bytes a job needs
//! and refuse it with a clear message instead of letting the allocator abort
//! the process.

use crate::nn::config::ModelConfig;
use anyhow::{Result, bail};
use candle_core::DType;

/// Bytes of memory available now (Linux `MemAvailable`), if known.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Start measuring this process's peak resident memory afresh (Linux:
/// resets `VmHWM`); false where that is not possible.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// This process's peak resident memory since the start or the last
/// [`reset_peak_rss`] (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuse `what` when it needs more than the memory available.
pub fn check(needed: u64, what: &str) -> Result<()> {
    if let Some(available) = available_bytes()
        && needed > available
    {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        bail!(
            "{what} needs about {:.1} GiB of memory, only {:.1} GiB is available",
            gib(needed),
            gib(available)
        );
    }
    Ok(())
}

/// Refuse `what` when it needs more than `device` has: the memory available
/// on a CPU, the GPU's free memory on CUDA (where a training step's weights,
/// optimizer state and activations live).
pub fn check_on(device: &candle_core::Device, needed: u64, what: &str) -> Result<()> {
    match device {
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(gpu) => {
            let (free, _) = gpu
                .cuda_stream()
                .context()
                .mem_get_info()
                .map_err(|e| anyhow::anyhow!("cannot read the GPU's free memory: {e}"))?;
            if needed > free as u64 {
                let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
                bail!(
                    "{what} needs about {:.1} GiB of GPU memory, only {:.1} GiB is free",
                    gib(needed),
                    gib(free as u64)
                );
            }
            Ok(())
        }
        _ => check(needed, what),
    }
}

/// f32 weights of the model.
pub fn weights(cfg: &ModelConfig) -> u64 {
    cfg.parameter_count() as u64 * 4
}

/// The shape of a training step, as far as memory goes.
#[derive(Clone, Copy, Debug)]
pub struct TrainingStep {
    pub batch: usize,
    pub seq: usize,
    /// The compute dtype: F32, or BF16 for mixed precision.
    pub dtype: DType,
    /// Activation recomputation (`--grad-checkpoint`).
    pub recompute: bool,
}

/// Training: weights, gradients, two AdamW moments, the bf16 copies of the
/// weights under mixed precision, the activations kept for the backward
/// pass, the workspace of the chunked attention or loss, and the process
/// itself. A layer's activations are 12 x hidden + 3 x intermediate + 7 x
/// key/value width numbers per token, counted from the model's ops (norm
/// outputs, projections and their head layouts, rotary outputs, attention
/// output, residual sums, the gated MLP); with `recompute` each layer keeps
/// only its input, and one layer's activations exist at a time, with their
/// gradients. Counted in f32 (bf16 halves some, not all). Measured peaks on
/// a CPU stay within 15% of it (docs/BENCHMARKS.md).
pub fn training(cfg: &ModelConfig, step: TrainingStep) -> u64 {
    let tokens = step.batch * step.seq;
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let kv = cfg.num_key_value_heads * cfg.head_dim();
    let layer = tokens * (12 * h + 3 * i + 7 * kv);
    let activations = match step.recompute {
        false => cfg.num_hidden_layers * layer,
        true => cfg.num_hidden_layers * tokens * h + 2 * layer,
    };
    // The loss runs before or after the layers, never during: the larger
    // of the two workspaces.
    let workspaces = crate::nn::ops::target_log_probs::workspace_elements(tokens, cfg.vocab_size)
        .max(crate::nn::ops::attention::workspace_elements(
            step.batch * cfg.num_attention_heads,
            step.seq,
        ));
    let copies = match step.dtype {
        DType::F32 | DType::F64 => 0,
        _ => cfg.parameter_count() as u64 * step.dtype.size_in_bytes() as u64,
    };
    const PROCESS: u64 = 48 << 20;
    weights(cfg) * 4 + copies + (activations + workspaces) as u64 * 4 + PROCESS
}
