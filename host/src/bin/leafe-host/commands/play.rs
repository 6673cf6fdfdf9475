//! `leafe-host play`.

use super::Ctx;
use crate::args::TaskArgs;
use anyhow::Result;
use clap::Args;
use leafe_host::Runtime;

#[derive(Args)]
pub struct PlayCmd {
    /// Built-in environment name, path to a .wasm component, or
    /// remote:URL[#NAME] (an environment server).
    #[arg(long, default_value = "sokoban")]
    env: String,
    #[command(flatten)]
    task: TaskArgs,
    /// The task index.
    #[arg(long = "task", value_name = "I", default_value_t = 0)]
    task_index: u32,
}

impl PlayCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let runtime = Runtime::new(ctx.options.clone())?;
        let env = leafe_host::env::environment::Environment::open(&runtime, &self.env)?;
        let task = self.task.task(self.task_index);
        let stdin = std::io::stdin();
        leafe_host::jobs::play::play(&env, &task, stdin.lock(), std::io::stdout())
    }
}
