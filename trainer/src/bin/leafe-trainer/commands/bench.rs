//! `leafe-trainer bench`.

use super::{Ctx, write_json};
use crate::args::{F32OrBf16, QuantizeArg};
use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use leafe_trainer::jobs::bench;
use leafe_trainer::nn::config::ModelConfig;
use leafe_trainer::nn::memory::TrainingStep;
use std::path::PathBuf;

/// `--size`: which random models to measure.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Size {
    Tiny,
    #[value(name = "0.5b")]
    Half,
    Both,
}

#[derive(Args)]
pub struct BenchCmd {
    /// tiny, 0.5b (a Qwen2-0.5B-shaped random model, ~8 GiB to train at 1 x 128), or both.
    #[arg(long, value_enum, default_value = "tiny")]
    size: Size,
    /// Benchmark the shape of this checkpoint instead (its config.json;
    /// the weights are random, which does not change the speed).
    #[arg(long, conflicts_with = "size")]
    model: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Timed training steps (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Tokens generated for the generation benchmark.
    #[arg(long, default_value_t = 32)]
    gen_tokens: usize,
    /// Also decode this many sequences together, as `serve` does for that
    /// many concurrent requests (e.g. 1,8,32: tokens/s over all of them).
    #[arg(long, value_delimiter = ',')]
    gen_batches: Vec<usize>,
    /// How the generation benchmark's model stores its projections (the
    /// training step is always unquantized).
    #[arg(long, value_enum, default_value = "none")]
    quantize: QuantizeArg,
    /// Precision of the training step (bf16: mixed precision, as `sft --dtype bf16`).
    #[arg(long, value_enum, default_value = "f32")]
    dtype: F32OrBf16,
    /// Recompute each layer's activations in the backward pass, as `sft
    /// --grad-checkpoint`.
    #[arg(long)]
    grad_checkpoint: bool,
    /// Also time each of the model's ops on its own at the step's shapes
    /// (forward and backward), times the number of calls in a step:
    /// where the step's time goes (the rest: residual sums, casts, the
    /// embedding, the optimizer; recomputation adds one more forward pass
    /// of the layer ops).
    #[arg(long)]
    ops: bool,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl BenchCmd {
    /// The models to measure, each with its name.
    fn models(&self) -> Result<Vec<(String, ModelConfig)>> {
        let mut models = Vec::new();
        if let Some(dir) = &self.model {
            let name = dir
                .file_name()
                .map_or("model".into(), |n| n.to_string_lossy().into_owned());
            models.push((name, ModelConfig::load(dir)?));
            return Ok(models);
        }
        if self.size != Size::Half {
            models.push(("tiny".into(), leafe_trainer::jobs::tiny::tiny_config()));
        }
        if self.size != Size::Tiny {
            models.push(("qwen2-0.5b-shape".into(), bench::qwen2_05b()));
        }
        Ok(models)
    }

    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        if self.batch == 0 || self.seq == 0 {
            bail!("--batch and --seq must be at least 1");
        }
        let device = &ctx.device;
        let mut report = Vec::new();
        for (name, cfg) in self.models()? {
            let name = name.as_str();
            let step = TrainingStep {
                batch: self.batch,
                seq: self.seq,
                dtype: self.dtype.into(),
                recompute: self.grad_checkpoint,
            };
            let t = bench::train_step(name, &cfg, step, self.steps, device)?;
            println!(
                "{name}: {} params, {} train step {:.3}s, {:.0} tokens/s, {:.2} GFLOP/s = {:.0}% of the matmul peak ({:.2} GFLOP/s)",
                t.parameters,
                t.dtype,
                t.step_s,
                t.tokens_per_s,
                t.step_flops_per_s / 1e9,
                100.0 * t.fraction_of_matmul,
                t.matmul_flops_per_s / 1e9
            );
            println!(
                "{name}: step time split: forward {:.3}s, backward {:.3}s, optimizer {:.3}s",
                t.forward_s, t.backward_s, t.optimizer_s
            );
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            match t.peak_rss_bytes {
                Some(peak) => println!(
                    "{name}: peak memory {:.2} GiB (the memory guard estimates {:.2} GiB)",
                    gib(peak),
                    gib(t.estimated_bytes)
                ),
                None => println!(
                    "{name}: the memory guard estimates {:.2} GiB (peak not measured on this device)",
                    gib(t.estimated_bytes)
                ),
            }
            let breakdown = match self.ops {
                true => bench::breakdown::op_times(&cfg, step, device, 3)?,
                false => Vec::new(),
            };
            for op in &breakdown {
                println!(
                    "{name}: {}: {} x {:.2} ms = {:.1} ms per step ({:.0}% of the step)",
                    op.op,
                    op.calls,
                    op.each_s * 1e3,
                    op.per_step_s * 1e3,
                    100.0 * op.per_step_s / t.step_s
                );
            }
            if !breakdown.is_empty() {
                let rest = t.step_s - breakdown.iter().map(|o| o.per_step_s).sum::<f64>();
                println!(
                    "{name}: everything else (residual sums, casts, embedding, optimizer): {:.1} ms per step",
                    rest * 1e3
                );
            }
            let g = bench::generation(
                name,
                &cfg,
                16,
                self.gen_tokens,
                &self.gen_batches,
                self.quantize.into(),
                device,
            )?;
            println!(
                "{name}: prefill of {} tokens {:.1} tokens/s (quantization {})",
                bench::PREFILL_TOKENS,
                g.prefill_tokens_per_s,
                g.quantization
            );
            println!(
                "{name}: generation {:.1} tokens/s with KV cache, {:.1} without ({:.1}x)",
                g.cached_tokens_per_s,
                g.uncached_tokens_per_s,
                g.cached_tokens_per_s / g.uncached_tokens_per_s
            );
            for (n, rate) in &g.batched_tokens_per_s {
                println!("{name}: {n} sequences decoded together: {rate:.1} tokens/s");
            }
            report.push(serde_json::json!({ "train": t, "ops": breakdown, "generation": g }));
        }
        if let Some(path) = &self.json {
            write_json(path, &report)?;
        }
        Ok(())
    }
}
