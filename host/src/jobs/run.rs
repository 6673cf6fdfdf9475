//! `leafe-host run`: explore tasks with backtracking and write the branch
//! tree, the distillation data and a summary into the output directory.
//!
//! `DIR/tree.jsonl` is written as tasks finish (in task order, whatever
//! order they finish in); `DIR/distill.jsonl` and `DIR/summary.json` are
//! written at the end, atomically, from the tree, so a summary only exists
//! for a complete run. `--resume` keeps the finished tasks of an interrupted
//! run and redoes the rest.

use crate::component::{self, EnvComponent};
use crate::engine::Runtime;
use crate::explore::{ExploreConfig, TaskRun, explore_task};
use crate::policy::PolicySpec;
use crate::session::Task;
use crate::tree::{self, Header, LogWriter, Record, TaskEnd};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Which tasks of the split to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskSelection {
    /// `count` tasks from index `start`.
    Range {
        start: u32,
        count: u32,
    },
    One(u32),
    /// The whole split.
    All,
}

/// Everything `run` needs.
#[derive(Clone, Debug)]
pub struct RunArgs {
    pub env: String,
    pub split: String,
    pub tasks: TaskSelection,
    pub seed: u64,
    pub options: Vec<(String, String)>,
    pub policy: PolicySpec,
    pub reflector: crate::reflect::ReflectorSpec,
    pub explore: ExploreConfig,
    pub out: PathBuf,
    pub resume: bool,
    pub force: bool,
    pub jobs: usize,
    pub progress: bool,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub env: String,
    pub split: String,
    pub policy: String,
    pub method: crate::explore::Method,
    pub tasks: usize,
    pub solved: usize,
    pub solve_rate: f64,
    pub steps: u64,
    pub backtracks: u64,
    pub restores: u64,
    pub replayed_steps: u64,
    pub replay_avoided_steps: u64,
    pub nodes: u64,
    pub corrections: usize,
    pub errors: usize,
    /// Tasks taken over from an interrupted run.
    pub resumed_tasks: usize,
    /// Wall time of this invocation.
    pub wall_ms: u64,
    /// Requests and tokens of a model policy, in this invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<crate::llm::UsageTotals>,
    pub per_task: Vec<TaskEnd>,
}

pub const TREE: &str = "tree.jsonl";
pub const DISTILL: &str = "distill.jsonl";
pub const SUMMARY: &str = "summary.json";

fn header(args: &RunArgs, env: &EnvComponent, tasks: &[u32]) -> Header {
    let noise = match args.policy {
        PolicySpec::Oracle { noise } => noise,
        PolicySpec::Reference | PolicySpec::Human | PolicySpec::OpenAi { .. } => 0.0,
    };
    Header {
        format: tree::FORMAT,
        env: args.env.clone(),
        env_name: env.info.name.clone(),
        env_version: env.info.version.clone(),
        component_sha256: env.sha256.clone(),
        split: args.split.clone(),
        tasks: tasks.to_vec(),
        seed: args.seed,
        options: args.options.clone(),
        policy: args.policy.name().to_string(),
        noise,
        budget: args.explore.budget,
        method: args.explore.method,
        reflector: args.reflector.name().to_string(),
        reflect_every: args.explore.reflect_every,
        max_depth: args.explore.max_depth,
        snapshot_every: args.explore.snapshot_every,
    }
}

/// The first field in which two headers differ.
fn header_difference(old: &Header, new: &Header) -> Option<String> {
    let (a, b) = (
        serde_json::to_value(old).ok()?,
        serde_json::to_value(new).ok()?,
    );
    let (a, b) = (a.as_object()?, b.as_object()?);
    a.iter()
        .find(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| format!("{k} was {v}, now {}", b.get(k).cloned().unwrap_or_default()))
}

/// Prepare `DIR`: a fresh log, or the complete part of an interrupted one.
/// Returns the tasks already done.
fn prepare_out(args: &RunArgs, header: &Header) -> Result<Vec<u32>> {
    let out = &args.out;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let tree_path = out.join(TREE);
    for stale in [DISTILL, SUMMARY] {
        match std::fs::remove_file(out.join(stale)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e)
                    .with_context(|| format!("cannot remove {}", out.join(stale).display()));
            }
            _ => {}
        }
    }
    if tree_path.exists() && args.resume {
        let log = tree::read(&tree_path).context("cannot resume")?;
        let old = log
            .header()
            .context("cannot resume: the log has no header")?;
        if let Some(diff) = header_difference(old, header) {
            bail!(
                "cannot resume {}: the run had other settings ({diff})",
                out.display()
            );
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&tree_path)
            .with_context(|| format!("cannot open {}", tree_path.display()))?;
        file.set_len(log.complete_len)
            .with_context(|| format!("cannot truncate {}", tree_path.display()))?;
        let done = log
            .complete_records()
            .iter()
            .filter_map(|r| match r {
                Record::TaskEnd(e) => Some(e.task),
                _ => None,
            })
            .collect();
        return Ok(done);
    }
    if tree_path.exists() && !args.force {
        bail!(
            "{} already holds a run ({TREE}); pass --resume to continue it or --force to replace it",
            out.display()
        );
    }
    let _ = std::fs::remove_file(&tree_path);
    let mut w = LogWriter::append(&tree_path)?;
    w.write(&Record::Header(header.clone()))?;
    w.sync()?;
    Ok(Vec::new())
}

/// `BASE/ENV-SPLIT-N` for the first N not taken: the default output
/// directory, so that a run never lands on an earlier one.
pub fn fresh_out_dir(base: &Path, env: &str, split: &str) -> PathBuf {
    let stem = Path::new(env)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = format!("{stem}-{split}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    (1..)
        .map(|n| base.join(format!("{name}-{n}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| base.join(name))
}

fn task_list(args: &RunArgs, env: &EnvComponent) -> Result<Vec<u32>> {
    let len = env.info.split_len(&args.split)?;
    args.tasks.indices(&args.split, len)
}

impl TaskSelection {
    /// The task indices selected from `split`, which has `len` tasks.
    pub fn indices(&self, split: &str, len: u32) -> Result<Vec<u32>> {
        match *self {
            TaskSelection::All => Ok((0..len).collect()),
            TaskSelection::One(i) if i < len => Ok(vec![i]),
            TaskSelection::One(i) => {
                bail!("--task {i} is out of range: split '{split}' has {len} tasks")
            }
            TaskSelection::Range { count: 0, .. } => bail!("--tasks must be at least 1"),
            TaskSelection::Range { start, count }
                if u64::from(start) + u64::from(count) <= u64::from(len) =>
            {
                Ok((start..start + count).collect())
            }
            TaskSelection::Range { start: 0, count } => {
                bail!("--tasks {count} is more than split '{split}' has ({len})")
            }
            TaskSelection::Range { start, count } => bail!(
                "--from {start} --tasks {count} goes past the end of split '{split}' ({len} tasks)"
            ),
        }
    }
}

/// Run the job. Returns the summary also written to `DIR/summary.json`.
pub fn run(runtime: &Arc<Runtime>, args: &RunArgs) -> Result<Summary> {
    let started = Instant::now();
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let env = component::load(runtime, &args.env)?;
    let tasks = task_list(args, &env)?;
    check_task(&env, args, tasks[0])?;
    let header = header(args, &env, &tasks);
    let done = prepare_out(args, &header)?;
    let todo: Vec<u32> = tasks
        .iter()
        .copied()
        .filter(|t| !done.contains(t))
        .collect();

    let bar = crate::progress_bar(todo.len() as u64, "tasks", args.progress);
    bar.inc(0);
    let mut writer = LogWriter::append(&args.out.join(TREE))?;
    let pool = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.jobs)
        .max_blocking_threads(args.jobs)
        .build()
        .context("cannot start the task pool")?;
    pool.block_on(async {
        let mut running = tokio::task::JoinSet::new();
        for (position, index) in todo.iter().copied().enumerate() {
            let (env, args) = (env.clone(), args.clone());
            running.spawn_blocking(move || (position, run_task(&env, &args, index)));
        }
        // Write finished tasks in task order, whatever order they finish in.
        let mut finished: BTreeMap<usize, TaskRun> = BTreeMap::new();
        let mut next = 0;
        while let Some(joined) = running.join_next().await {
            let (position, result) = joined.context("a task worker panicked")?;
            finished.insert(position, result?);
            bar.inc(1);
            while let Some(run) = finished.remove(&next) {
                for record in &run.records {
                    writer.write(record)?;
                }
                writer.sync()?;
                bar.set_message(format!(
                    "task {} {}",
                    run.end.task,
                    if run.end.solved { "solved" } else { "unsolved" }
                ));
                next += 1;
            }
        }
        anyhow::Ok(())
    })?;
    bar.finish_and_clear();
    finish(
        &args.out,
        &env.info.name,
        header,
        done.len(),
        started,
        args.policy.usage(),
    )
}

/// Reset one task before anything is written, so a bad option or split is
/// reported at once and leaves no half-made run behind.
fn check_task(env: &Arc<EnvComponent>, args: &RunArgs, index: u32) -> Result<()> {
    let task = Task {
        split: args.split.clone(),
        index,
        seed: args.seed,
        options: args.options.clone(),
    };
    let mut session =
        crate::session::Session::new(env, args.seed).map_err(|e| anyhow::anyhow!("{e}"))?;
    session.reset(&task).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn run_task(env: &Arc<EnvComponent>, args: &RunArgs, index: u32) -> Result<TaskRun> {
    let task = Task {
        split: args.split.clone(),
        index,
        seed: args.seed,
        options: args.options.clone(),
    };
    let mut policy = args.policy.build(args.seed, index);
    let mut reflector = args.reflector.build(&env.info, args.seed, index);
    explore_task(
        env,
        &task,
        policy.as_mut(),
        reflector.as_mut(),
        &args.explore,
    )
}

/// Write `distill.jsonl` and `summary.json` from the complete tree.
fn finish(
    out: &Path,
    env_name: &str,
    header: Header,
    resumed: usize,
    started: Instant,
    llm: Option<crate::llm::UsageTotals>,
) -> Result<Summary> {
    let log = tree::read(&out.join(TREE))?;
    let mut nodes_by_task: BTreeMap<u32, Vec<tree::Node>> = BTreeMap::new();
    let mut ends = Vec::new();
    for record in log.records {
        match record {
            Record::Node(n) => nodes_by_task.entry(n.task).or_default().push(n),
            Record::TaskEnd(e) => ends.push(e),
            _ => {}
        }
    }
    let mut distill = Vec::new();
    let mut corrections = 0;
    for nodes in nodes_by_task.values() {
        for record in crate::distill::task_records(env_name, nodes) {
            corrections += usize::from(matches!(
                record,
                crate::distill::DistillRecord::Correction { .. }
            ));
            distill.extend(serde_json::to_vec(&record)?);
            distill.push(b'\n');
        }
    }
    tree::write_atomic(&out.join(DISTILL), &distill)?;
    let sum = |f: fn(&TaskEnd) -> u32| ends.iter().map(|e| u64::from(f(e))).sum::<u64>();
    let solved = ends.iter().filter(|e| e.solved).count();
    let summary = Summary {
        env: header.env.clone(),
        split: header.split.clone(),
        policy: header.policy.clone(),
        method: header.method,
        tasks: ends.len(),
        solved,
        solve_rate: if ends.is_empty() {
            0.0
        } else {
            solved as f64 / ends.len() as f64
        },
        steps: sum(|e| e.steps),
        backtracks: sum(|e| e.backtracks),
        restores: sum(|e| e.restores),
        replayed_steps: sum(|e| e.replayed_steps),
        replay_avoided_steps: sum(|e| e.replay_avoided_steps),
        nodes: sum(|e| e.nodes),
        corrections,
        errors: ends.iter().filter(|e| e.error.is_some()).count(),
        resumed_tasks: resumed,
        wall_ms: started.elapsed().as_millis() as u64,
        llm,
        per_task: ends,
    };
    let mut json = serde_json::to_vec_pretty(&summary)?;
    json.push(b'\n');
    tree::write_atomic(&out.join(SUMMARY), &json)?;
    Ok(summary)
}

/// The summary as a small table for the terminal.
pub fn summary_table(s: &Summary, out: &Path) -> String {
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
        "solve rate {:.1}% · {} corrections · restores skipped {} replayed steps\n",
        s.solve_rate * 100.0,
        s.corrections,
        s.replay_avoided_steps
    ));
    if let Some(u) = &s.llm {
        t.push_str(&format!(
            "model: {} requests ({} retried, {} failed) · {} prompt + {} completion tokens\n",
            u.requests, u.retries, u.failures, u.prompt_tokens, u.completion_tokens
        ));
    }
    for e in s.per_task.iter().filter(|e| e.error.is_some()) {
        t.push_str(&format!(
            "task {} failed: {}\n",
            e.task,
            e.error.as_deref().unwrap_or("")
        ));
    }
    t.push_str(&format!(
        "wrote {}/{{{TREE},{DISTILL},{SUMMARY}}}\n",
        out.display()
    ));
    t
}
