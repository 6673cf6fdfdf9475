//! `leafe-host eval`.

use super::Ctx;
use crate::args::{LlmArgs, TaskArgs, default_jobs, jobs_for};
use anyhow::Result;
use clap::Args;
use leafe_host::Runtime;
use leafe_host::jobs::TaskSelection;
use leafe_host::jobs::eval::{EvalArgs, EvalSummary, eval};
use std::path::PathBuf;

#[derive(Args)]
pub struct EvalCmd {
    /// Built-in environment (see `leafe-host envs`), a .wasm path, or
    /// remote:URL[#NAME] (an environment server, e.g. ScienceWorld's).
    #[arg(long, default_value = "mbpp")]
    env: String,
    #[command(flatten)]
    task: TaskArgs,
    /// Evaluate N tasks of the split [default: all of them].
    #[arg(long, conflicts_with = "task_index")]
    tasks: Option<u32>,
    /// The index of the first task of --tasks.
    #[arg(long, value_name = "I", default_value_t = 0, requires = "tasks")]
    from: u32,
    /// Evaluate only task I.
    #[arg(long = "task", value_name = "I")]
    task_index: Option<u32>,
    /// The policy: `reference` (the dataset's reference solution), `oracle`
    /// (the environment's expert with --noise random moves), `human` or
    /// `openai` (a model; see the model flags).
    #[arg(long, default_value = "reference")]
    policy: String,
    /// Chance of a random move instead of the expert's (oracle policy).
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Independent episodes per task (n of Pass@k).
    #[arg(long, default_value_t = 1)]
    samples: u32,
    /// The k of Pass@k, comma-separated; values above --samples are skipped.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    k: Vec<u32>,
    /// A directory for results.jsonl (one line per task) and summary.json
    /// (for `leafe-host report`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write into --out even if it holds a run or another evaluation.
    #[arg(long, requires = "out")]
    force: bool,
    /// Start the tasks that took longest in the earlier evaluation in DIR
    /// (its --out) first, and those it lacks before them, so that no long
    /// task starts last and runs on alone. Results are the same; only the
    /// order work starts in changes.
    #[arg(long, value_name = "DIR")]
    longest_first: Option<PathBuf>,
    /// Episodes run in parallel.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    llm: LlmArgs,
}

impl EvalCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let runtime = Runtime::new(ctx.options.clone())?;
        let policy = self.llm.policy(&self.policy, self.noise, self.jobs)?;
        let jobs = jobs_for(&policy, self.jobs);
        let args = EvalArgs {
            env: self.env,
            split: self.task.split,
            tasks: match (self.task_index, self.tasks) {
                (Some(i), _) => TaskSelection::One(i),
                (None, Some(n)) => TaskSelection::Range {
                    start: self.from,
                    count: n,
                },
                (None, None) => TaskSelection::All,
            },
            seed: self.task.seed,
            options: self.task.options,
            policy,
            samples: self.samples,
            ks: self.k,
            jobs,
            out: self.out,
            force: self.force,
            longest_first: self.longest_first,
            progress: ctx.progress,
        };
        let summary = eval(&runtime, &args)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print!("{}", summary_text(&summary));
        }
        Ok(())
    }
}

/// The summary as a few lines of text.
fn summary_text(s: &EvalSummary) -> String {
    let mut out = format!(
        "eval {} · split {} · policy {} · {} tasks × {} samples · {:.1}s ({:.1} episodes/s a busy worker)\n",
        s.env, s.split, s.policy, s.tasks, s.samples, s.seconds, s.episodes_per_busy_second
    );
    let mut ks: Vec<(u32, &f64)> = s
        .pass_at
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("pass@")?.parse().ok()?, v)))
        .collect();
    ks.sort_by_key(|(k, _)| *k);
    for (k, v) in ks {
        out.push_str(&format!("{:<9} {:.1}%\n", format!("pass@{k}"), 100.0 * v));
    }
    out.push_str(&format!(
        "solved    {}/{} tasks by at least one sample\n",
        s.solved_tasks, s.tasks
    ));
    if let Some(u) = &s.llm {
        out.push_str(&format!("model     {}\n", super::usage_line(u)));
    }
    if s.errors > 0 {
        out.push_str(&format!(
            "errors    {} episodes failed to run (see the per-task results)\n",
            s.errors
        ));
    }
    out
}
