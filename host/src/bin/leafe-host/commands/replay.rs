//! `leafe-host replay`.

use super::Ctx;
use anyhow::Result;
use clap::Args;
use leafe_host::Runtime;
use std::path::PathBuf;

#[derive(Args)]
pub struct ReplayCmd {
    /// The run's output directory.
    dir: PathBuf,
    /// Use this environment instead of the recorded --env (same hash
    /// required): the component at another path, or the server at another
    /// address.
    #[arg(long)]
    env: Option<String>,
}

impl ReplayCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let runtime = Runtime::new(ctx.options.clone())?;
        let report = leafe_host::jobs::replay::replay(&runtime, &self.dir, self.env.as_deref())?;
        println!(
            "replay ok: {} tasks, {} branches, {} nodes checked ({} steps re-executed)",
            report.tasks, report.branches, report.nodes_checked, report.steps_executed
        );
        Ok(())
    }
}
