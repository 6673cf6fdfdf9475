//! `leafe-host run`.

use super::Ctx;
use crate::args::{LlmArgs, TaskArgs, default_jobs, jobs_for};
use anyhow::Result;
use clap::Args;
use leafe_host::jobs::TaskSelection;
use leafe_host::jobs::run::{RunArgs, Summary, run, run_part};
use leafe_host::tree::rundir::{SUMMARY, TREE, fresh_out_dir};
use leafe_host::{BudgetUnit, ExploreConfig, Method, Runtime};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct RunCmd {
    /// Built-in environment (see `leafe-host envs`), path to a .wasm
    /// component, or remote:URL[#NAME]: an environment server speaking
    /// leafe's session protocol (`leafe-host serve`,
    /// envs-remote/scienceworld/server.py); going back there is a reset and a
    /// replay of the path.
    #[arg(long, default_value = "sokoban")]
    env: String,
    #[command(flatten)]
    task: TaskArgs,
    /// Run N tasks of the split (the first ones, or from --from).
    #[arg(long, default_value_t = 10, conflicts_with = "task_index")]
    tasks: u32,
    /// The index of the first task of --tasks.
    #[arg(
        long,
        value_name = "I",
        default_value_t = 0,
        conflicts_with = "task_index"
    )]
    from: u32,
    /// Run only task I.
    #[arg(long = "task", value_name = "I")]
    task_index: Option<u32>,
    /// The policy: `oracle` (the environment's expert, with --noise random
    /// moves), `reference` (the expert's answer as is: the dataset's
    /// reference solution for mbpp and codecontests), `human` (you, at the
    /// terminal) or `openai` (a model; see the model flags).
    #[arg(long, default_value = "oracle")]
    policy: String,
    /// Chance of a random move instead of the expert's (oracle policy).
    #[arg(long, default_value_t = 0.4)]
    noise: f64,
    /// Who reflects on failures: `rule` (the environment's feedback: dead
    /// ends, terminal failures, no progress) or `llm` (the model at
    /// --base-url, asked for JSON {"step", "experience"}).
    #[arg(long, default_value = "rule")]
    reflector: String,
    /// Also reflect every K steps of a rollout, not only when it fails
    /// (0: only on failure). The llm reflector is asked whether a step so far
    /// was a mistake; the rule reflector goes back when none of the last K
    /// steps brought a positive reward.
    #[arg(long, value_name = "K", default_value_t = 0)]
    reflect_every: u32,
    /// How the budget is spent: leafe (reflect, roll back, revise),
    /// sample (independent rollouts until one succeeds), refine (restart
    /// with the lessons) or group (GRPO's groups: --max-depth + 1
    /// independent rollouts, each to its end, success or not).
    #[arg(long, value_enum, default_value = "leafe")]
    method: Method,
    /// Steps per task, all branches together, in --budget-unit (for code
    /// environments a step is one submitted program).
    #[arg(long, default_value_t = 300)]
    budget: u32,
    /// What the budget counts: `policy` (actions chosen, what model calls
    /// cost; going back is free) or `env` (environment steps executed, as a
    /// reset-and-replay implementation pays them: every return to an earlier
    /// state costs the steps from the start to it). summary.json reports both.
    #[arg(long, value_enum, default_value = "policy")]
    budget_unit: BudgetUnit,
    /// How many backtracks deep the rollback tree may grow.
    #[arg(long, default_value_t = 10)]
    max_depth: u32,
    /// Snapshot every Nth state (others are reached by restore + replay).
    #[arg(long, default_value_t = 1)]
    snapshot_every: u32,
    /// Output directory [default: a new runs/ENV-SPLIT-N].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue an interrupted run in --out.
    #[arg(long, requires = "out")]
    resume: bool,
    /// Replace an existing run in --out.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Explore only these of the run's tasks (comma-separated indices,
    /// e.g. 3,7) into its journal and stop, leaving the run unfinished:
    /// `--resume` finishes it once every task is there. How a run is spread
    /// over machines (examples/ray_explore.py): one part per task, each in a
    /// directory of its own, their `tasks/` files gathered into one run
    /// directory. An empty LIST ('') explores nothing: it checks the
    /// settings and writes the run's header. Prints {"out", "tasks", "done"}
    /// as JSON.
    #[arg(long, value_name = "LIST", value_parser = parse_task_list)]
    only_tasks: Option<TaskList>,
    /// Tasks explored in parallel.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    llm: LlmArgs,
}

impl RunCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let runtime = Runtime::new(ctx.options.clone())?;
        let policy = self.llm.policy(&self.policy, self.noise, self.jobs)?;
        // The prompt the header records: the model policy's own, else read once here.
        let prompt = match policy.prompt() {
            Some(prompt) => prompt.clone(),
            None => self.llm.prompt()?,
        };
        let jobs = jobs_for(&policy, self.jobs);
        let out = match self.out {
            Some(out) => out,
            None => fresh_out_dir(Path::new("runs"), &self.env, &self.task.split),
        };
        let args = RunArgs {
            env: self.env,
            split: self.task.split,
            tasks: match self.task_index {
                Some(i) => TaskSelection::One(i),
                None => TaskSelection::Range {
                    start: self.from,
                    count: self.tasks,
                },
            },
            seed: self.task.seed,
            options: self.task.options,
            reflector: self.llm.reflector(&self.reflector, &policy, self.jobs)?,
            policy,
            prompt,
            explore: ExploreConfig {
                method: self.method,
                reflect_every: self.reflect_every,
                budget: self.budget,
                budget_unit: self.budget_unit,
                max_depth: self.max_depth,
                snapshot_every: self.snapshot_every,
            },
            out: out.clone(),
            resume: self.resume,
            force: self.force,
            jobs,
            progress: ctx.progress,
        };
        if let Some(TaskList(only)) = &self.only_tasks {
            let part = run_part(&runtime, &args, only)?;
            println!("{}", serde_json::to_string(&part)?);
            return Ok(());
        }
        let summary = run(&runtime, &args)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print!("{}", summary_table(&summary, &out));
        }
        Ok(())
    }
}

/// The task indices of `--only-tasks`.
#[derive(Clone, Debug)]
struct TaskList(Vec<u32>);

fn parse_task_list(text: &str) -> Result<TaskList, String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| format!("expected task indices separated by commas, got '{t}'"))
        })
        .collect::<Result<Vec<u32>, String>>()
        .map(TaskList)
}

/// The summary as a small table for the terminal.
fn summary_table(s: &Summary, out: &Path) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "env {} · split {} · policy {} · method {}\n",
        s.env,
        s.split,
        s.policy,
        s.method.as_str()
    ));
    t.push_str("tasks  solved  steps  backtracks  restores  replayed  errors  time\n");
    t.push_str(&format!(
        "{:<6} {:<7} {:<6} {:<11} {:<9} {:<9} {:<7} {:.2}s\n",
        s.tasks,
        format!("{}", s.solved),
        s.steps,
        s.backtracks,
        s.restores,
        s.replayed_steps,
        s.errors,
        s.wall_ms as f64 / 1000.0
    ));
    t.push_str(&format!(
        "solve rate {:.1}% · {} corrections · restores skipped {} replayed steps · {} env steps \
         (budget in {} steps)\n",
        s.solve_rate * 100.0,
        s.corrections,
        s.replay_avoided_steps,
        s.env_steps,
        s.budget_unit.as_str()
    ));
    if let Some(u) = &s.llm {
        t.push_str(&format!("model: {}\n", super::usage_line(u)));
    }
    if let Some(r) = &s.reflections {
        t.push_str(&format!(
            "reflections: {} asked · {} JSON at once · {} after the repair request · {} no mistake · {} fell back\n",
            r.asked, r.json_first_try, r.json_after_repair, r.no_mistake, r.fell_back
        ));
    }
    for e in s.per_task.iter().filter(|e| e.error.is_some()) {
        t.push_str(&format!(
            "task {} failed: {}\n",
            e.task,
            e.error.as_deref().unwrap_or("")
        ));
    }
    t.push_str(&format!("wrote {}/{{{TREE},{SUMMARY}}}\n", out.display()));
    t
}
