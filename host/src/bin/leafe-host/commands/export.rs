//! `leafe-host export`.

use super::Ctx;
use anyhow::Result;
use clap::Args;
use leafe_host::PromptConfig;
use leafe_host::Runtime;
use leafe_host::jobs::export::{
    ExportArgs, ExportData, ExportTarget, PromptOverride, WeightLayout, default_out, export,
    nothing_to_export,
};
use leafe_host::tree::path::CorrectionCriterion;
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
    /// trajectories), iwm (predict the next observation) or grpo (a
    /// `--method group` run's sampled answers weighted by group-relative
    /// advantages, for `leafe-trainer sft --allow-negative-weights`).
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
    /// What the trained assistant turn holds: `action` (`Action: X`, as
    /// the history shows actions) or `answer` (the model's whole answer,
    /// reasoning included, where the run kept one: a model policy's run).
    #[arg(long, value_enum, default_value = "action")]
    target: ExportTarget,
    /// Which revised branches are corrections: `success` (it led to a
    /// success) or `improved` (it reached a higher reward than the branch it
    /// replaced, success or not).
    #[arg(long, value_enum, default_value = "success")]
    cf_from: CorrectionCriterion,
    /// How context turns are kept out of the loss: `inline` (`"weight": 0`
    /// on them; leafe-trainer and OpenAI read it) or `split` (TRL's
    /// prompt-completion records: the context in `prompt`, the target in
    /// `completion`). Record weights (beta) are written either way; TRL
    /// ignores them.
    #[arg(long, value_enum, default_value = "inline")]
    weights: WeightLayout,
    /// A system prompt template that replaces the run's (by default the
    /// prompt is rebuilt exactly as the run's header records it).
    #[arg(long, value_name = "FILE")]
    system_prompt: Option<PathBuf>,
    /// A history budget that replaces the run's recorded one.
    #[arg(long)]
    history_chars: Option<usize>,
    /// When the runs have nothing to export, write an empty file (and say
    /// so) instead of failing: for pipelines whose next stage handles "no
    /// data" itself. Any other failure still fails.
    #[arg(long)]
    allow_empty: bool,
}

/// The one output format so far; the flag exists so that others can come.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Chat,
}

impl ExportCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let system = match &self.system_prompt {
            Some(path) => Some(PromptConfig::default().with_template_file(path)?.system),
            None => None,
        };
        let prompt = PromptOverride {
            system,
            history_chars: self.history_chars,
        };
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
                target: self.target,
                cf_from: self.cf_from,
                weights: self.weights,
                allow_empty: self.allow_empty,
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
        if summary.records == 0 && summary.groups.is_none() {
            println!(
                "no records: the runs have no {}",
                nothing_to_export(self.data)
            );
        }
        if let Some(g) = &summary.groups {
            println!(
                "groups: {} · rollouts: {} · successes: {} · success rate {:.4} · mean reward {:.4} \
                 · {} groups without signal",
                g.groups,
                g.rollouts,
                g.successes,
                g.successes as f64 / g.rollouts.max(1) as f64,
                g.mean_reward,
                g.without_signal
            );
        }
        if summary.same_action_dropped > 0 {
            println!(
                "left out {} revised branches that repeat the rejected action",
                summary.same_action_dropped
            );
        }
        Ok(())
    }
}
