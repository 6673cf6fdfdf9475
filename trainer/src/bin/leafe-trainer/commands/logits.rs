//! `leafe-trainer logits`.

use super::Ctx;
use crate::args::QuantizeArg;
use anyhow::{Context, Result, bail};
use clap::Args;
use leafe_trainer::io::checkpoint::load_for_inference;
use std::path::PathBuf;

#[derive(Args)]
pub struct LogitsCmd {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    text: String,
    /// Store the projections quantized, on the CPU: less memory and faster
    /// matmuls (the checkpoint's float weights are quantized at load).
    #[arg(long, value_enum, default_value = "none")]
    quantize: QuantizeArg,
}

impl LogitsCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let (m, tokenizer) = load_for_inference(&self.model, &ctx.device, self.quantize.into())?;
        let ids = leafe_trainer::io::tokenizer::ids(&tokenizer, &self.text)?;
        if ids.is_empty() {
            bail!("--text tokenises to nothing");
        }
        let last = leafe_trainer::jobs::parity::last_logits(&m, &ids, &ctx.device)?;
        println!(
            "{}",
            serde_json::to_string(&last).context("cannot print the logits")?
        );
        Ok(())
    }
}
