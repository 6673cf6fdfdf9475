//! `leafe-host envs`.

use super::Ctx;
use anyhow::Result;
use clap::Args;
use leafe_host::{EngineOptions, EnvComponent, Runtime, Source};

#[derive(Args)]
pub struct EnvsCmd {
    /// Also describe these components (paths or names).
    #[arg(long)]
    env: Vec<String>,
}

impl EnvsCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        // One instance at a time, each once: a one-shot pool.
        let runtime = Runtime::new(EngineOptions {
            pool_instances: 2,
            ..ctx.options.clone()
        })?;
        let mut specs: Vec<String> = leafe_builtins::names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        specs.extend(self.env);
        for spec in specs {
            let c = EnvComponent::load(&runtime, Source::parse(&spec)?)?;
            let i = &c.info;
            let splits: Vec<String> = i.splits.iter().map(|(s, n)| format!("{s} ({n})")).collect();
            let kind = if matches!(c.source, Source::Builtin(_)) {
                "built-in"
            } else {
                "file"
            };
            println!("{} {} [{kind}: {spec}]", i.name, i.version);
            println!("  splits: {}", splits.join(", "));
            println!("  max steps: {}", i.max_steps);
            println!("  sha256: {}", c.sha256);
            println!("  actions: {}\n", i.action_hint);
        }
        Ok(())
    }
}
