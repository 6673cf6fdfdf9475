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

/// Training: weights, gradients, two AdamW moments, the activations kept
/// for the backward pass of a `batch` x `seq` batch, the workspaces of the
/// chunked attention and loss, and the process itself. The activations are
/// 12 x hidden + 3 x intermediate + 7 x key/value width numbers per token and
/// layer, counted from the model's ops (norm outputs, projections and their
/// head layouts, rotary outputs, attention output, residual sums, the gated
/// MLP): an upper bound that measured peaks stay within 15% of
/// (docs/BENCHMARKS.md). bf16 mixed precision needs about as much: its
/// halved activations pay for the bf16 copies of the weights.
pub fn training(cfg: &ModelConfig, batch: usize, seq: usize) -> u64 {
    let tokens = batch * seq;
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let kv = cfg.num_key_value_heads * cfg.head_dim();
    let activations = cfg.num_hidden_layers * tokens * (12 * h + 3 * i + 7 * kv);
    let workspaces = crate::ops::target_log_probs::workspace_elements(tokens, cfg.vocab_size)
        + crate::ops::attention::workspace_elements(batch * cfg.num_attention_heads, seq);
    const PROCESS: u64 = 48 << 20;
    weights(cfg) * 4 + (activations + workspaces) as u64 * 4 + PROCESS
}
