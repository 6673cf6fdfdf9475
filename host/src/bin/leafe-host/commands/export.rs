//! `leafe-host export`.

use super::Ctx;
use crate::args::prompt_config;
use anyhow::Result;
use clap::Args;
use leafe_host::Runtime;
use leafe_host::jobs::export::{ExportArgs, ExportData, default_out, export};
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportCmd {
    /// Run directories (from `leafe-host run`).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The output format (chat JSONL: {"messages": [...], "weight", "kind", "source"}).
    #[arg(long, value_enum, default_value = "chat")]
    format: ExportFormat,
    /// Which data: leafe (corrections + rehearsal), rft (successful
    /// trajectories) or iwm (predict the next observation).
    #[arg(long, value_enum, default_value = "leafe")]
    data: ExportData,
    /// Where to write [default: RUN/chat-DATA.jsonl for one run].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Corrections (L_cf) kept per task.
    #[arg(long, default_value_t = 3)]
    cf_per_task: usize,
    /// Fraction of successful trajectories rehearsed (L_reh).
    #[arg(long, default_value_t = 0.2)]
    reh_fraction: f64,
    /// Weight of the rehearsal records in the loss (L = L_cf + beta * L_reh).
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    /// Seeds the choice of rehearsed trajectories.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep each correction's experience in its prompt: data that teaches a
    /// base policy to follow lessons (LEAFE's own L_cf leaves them out).
    #[arg(long)]
    keep_experience: bool,
    /// The system prompt template the policy will be run with (as `run --system-prompt`).
    #[arg(long, value_name = "FILE")]
    system_prompt: Option<PathBuf>,
    /// The history budget the policy will be run with (as `run --history-chars`).
    #[arg(long, default_value_t = 24_000)]
    history_chars: usize,
}

/// The one output format so far; the flag exists so that others can come.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Chat,
}

impl ExportCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let prompt = prompt_config(self.system_prompt.as_deref(), self.history_chars)?;
        let out = match self.out {
            Some(out) => out,
            None => default_out(&self.runs, self.data)?,
        };
        let runtime = Runtime::new(ctx.options.clone())?;
        let summary = export(
            &runtime,
            &ExportArgs {
                runs: self.runs,
                out: out.clone(),
                data: self.data,
                cf_per_task: self.cf_per_task,
                reh_fraction: self.reh_fraction,
                beta: self.beta,
                seed: self.seed,
                prompt,
                keep_experience: self.keep_experience,
            },
        )?;
        let kinds: Vec<String> = summary
            .by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        println!(
            "wrote {} records ({}) from {} tasks to {}",
            summary.records,
            kinds.join(", "),
            summary.tasks,
            out.display()
        );
        Ok(())
    }
}
