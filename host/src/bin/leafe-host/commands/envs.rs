//! `leafe-host envs`.

use super::Ctx;
use anyhow::Result;
use clap::Args;
use leafe_host::env::environment::Environment;
use leafe_host::{EngineOptions, Runtime, Source};

/// Splits listed in full; more are summarised.
const SPLITS_SHOWN: usize = 12;

#[derive(Args)]
pub struct EnvsCmd {
    /// Also describe these environments (component paths, or
    /// remote:URL[#NAME] for an environment server).
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
            let env = Environment::open(&runtime, &spec)?;
            let i = env.info();
            let mut splits: Vec<String> = i
                .splits
                .iter()
                .take(SPLITS_SHOWN)
                .map(|(s, n)| format!("{s} ({n})"))
                .collect();
            if i.splits.len() > SPLITS_SHOWN {
                splits.push(format!("and {} more", i.splits.len() - SPLITS_SHOWN));
            }
            let kind = match &env {
                Environment::Remote(_) => "remote",
                Environment::Component(c) if matches!(c.source, Source::Builtin(_)) => "built-in",
                Environment::Component(_) => "file",
            };
            println!("{} {} [{kind}: {spec}]", i.name, i.version);
            println!("  splits: {}", splits.join(", "));
            println!("  max steps: {}", i.max_steps);
            println!("  sha256: {}", env.sha256());
            println!("  actions: {}\n", i.action_hint);
        }
        Ok(())
    }
}
