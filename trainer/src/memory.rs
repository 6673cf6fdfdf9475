//! A guard against settings that cannot fit: estimate the bytes a job needs
//! and refuse it with a clear message instead of letting the allocator abort
//! the process.

use crate::config::ModelConfig;
use anyhow::{Result, bail};

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

/// f32 weights of the model.
pub fn weights(cfg: &ModelConfig) -> u64 {
    cfg.parameter_count() as u64 * 4
}

/// Training: weights, gradients, two AdamW moments, and the activations kept
/// for the backward pass of a `batch` x `seq` batch (a rough upper bound).
/// The attention keeps about six `heads x seq x seq` tensors per layer
/// (scores, scaled, masked, shifted, exponentiated, normalised): at long
/// contexts that term dominates (SmolLM2 at 2,048 tokens: ~27 GB).
pub fn training(cfg: &ModelConfig, batch: usize, seq: usize) -> u64 {
    let (b, t) = (batch as u64, seq as u64);
    let (h, i, v) = (
        cfg.hidden_size as u64,
        cfg.intermediate_size as u64,
        cfg.vocab_size as u64,
    );
    let heads = cfg.num_attention_heads as u64;
    let per_layer = b * t * (12 * h + 4 * i) + 6 * b * heads * t * t;
    let activations = (cfg.num_hidden_layers as u64 * per_layer + 4 * b * t * v) * 4;
    weights(cfg) * 4 + activations
}
