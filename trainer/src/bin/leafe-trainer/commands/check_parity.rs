//! `leafe-trainer check-parity`.

use super::Ctx;
use crate::args::QuantizeArg;
use anyhow::{Result, bail};
use clap::Args;
use leafe_trainer::jobs::parity;
use std::path::PathBuf;

#[derive(Args)]
pub struct CheckParityCmd {
    #[arg(long)]
    model: PathBuf,
    /// The fixture JSON (e.g. trainer/tests/data/smollm2-parity.json).
    #[arg(long)]
    fixture: PathBuf,
    /// Largest allowed |logit difference| over the reference's top 50.
    #[arg(long, default_value_t = 1e-3)]
    tolerance: f32,
    /// Store the projections quantized, on the CPU: less memory and faster
    /// matmuls (the checkpoint's float weights are quantized at load).
    #[arg(long, value_enum, default_value = "none")]
    quantize: QuantizeArg,
}

fn same(equal: bool) -> &'static str {
    if equal { "equal" } else { "DIFFER" }
}

impl CheckParityCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let reference = parity::Fixture::load(&self.fixture)?;
        let report = parity::check(&self.model, &reference, &ctx.device, self.quantize.into())?;
        for (i, p) in report.prompts.iter().enumerate() {
            println!(
                "prompt {i}: {} tokens, template {}, ids {}, max |logit diff| {:.2e}, argmax {}, greedy {}: {:?}",
                p.prompt_tokens,
                same(p.text_equal),
                same(p.ids_equal),
                p.max_abs_logit_diff,
                same(p.argmax_equal),
                same(p.greedy_equal),
                p.greedy_text
            );
        }
        println!(
            "max |logit diff| {:.2e} against transformers {} on {}",
            report.max_abs_logit_diff, reference.transformers, ctx.device_name
        );
        let tolerance = self.tolerance;
        if !report.holds(tolerance) {
            bail!("the model does not match the reference (tolerance {tolerance:e})");
        }
        println!("PASS");
        Ok(())
    }
}
