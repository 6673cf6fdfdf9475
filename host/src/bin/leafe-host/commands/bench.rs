//! `leafe-host bench`.

use super::Ctx;
use anyhow::{Context, Result};
use clap::Args;
use leafe_host::jobs::bench::{self, Suite};
use std::path::PathBuf;

#[derive(Args)]
pub struct BenchCmd {
    /// Repetition factor (higher = steadier numbers, slower).
    #[arg(long, default_value_t = 20)]
    reps: u32,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Which benchmarks (all = host, sandbox and startup; compute runs alone).
    #[arg(long, value_enum, default_value = "all")]
    suite: Suite,
}

impl BenchCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let report = bench::run(&ctx.options, self.reps, self.suite, ctx.progress)?;
        print!("{}", report.table());
        if let Some(path) = self.json {
            std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}
