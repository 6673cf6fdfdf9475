//! `leafe-host run`: explore tasks with backtracking and write the branch
//! tree and a summary into the output directory.
//!
//! Each task is written to the journal (`DIR/tasks/`) the moment it
//! finishes, whatever order tasks finish in; at the end `DIR/tree.jsonl` is
//! assembled in task order and `DIR/summary.json` written, atomically, from
//! it, so a summary only exists for a complete run. `--resume` keeps every
//! finished task of an interrupted run and redoes the rest. Training data
//! is made from the tree by `export`.

use super::{TaskSelection, check_task};
use crate::agent::explore::{ExploreConfig, TaskRun, explore_task};
use crate::agent::policy::spec::PolicySpec;
use crate::agent::prompt::PromptConfig;
use crate::agent::reflect::llm::ReflectionCounts;
use crate::agent::reflect::spec::ReflectorSpec;
use crate::env::contract::Task;
use crate::env::environment::Environment;
use crate::env::runtime::Runtime;
use crate::llm::UsageTotals;
use crate::tree::rundir::{SUMMARY, TREE};
use crate::tree::{self, BudgetUnit, Header, Method, Record, Rollback, TaskEnd, journal, log};
use crate::util::fs::{write_atomic, write_durable};
use crate::util::parallel::map_indexed;
use crate::util::progress::progress_bar;
use crate::util::setting::{BadSetting, check};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Everything `run` needs.
#[derive(Clone, Debug)]
pub struct RunArgs {
    pub env: String,
    pub split: String,
    pub tasks: TaskSelection,
    pub seed: u64,
    pub options: Vec<(String, String)>,
    pub policy: PolicySpec,
    /// The prompt the header records for `export`; a model policy's own
    /// prompt takes its place.
    pub prompt: PromptConfig,
    pub reflector: ReflectorSpec,
    pub explore: ExploreConfig,
    pub out: PathBuf,
    pub resume: bool,
    pub force: bool,
    pub jobs: usize,
    pub progress: bool,
}

impl RunArgs {
    /// Every setting in its range; the error names the field.
    pub fn validate(&self) -> Result<(), BadSetting> {
        check(self.jobs >= 1, "jobs", "must be at least 1")?;
        self.explore.validate()
    }
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub env: String,
    pub split: String,
    pub policy: String,
    pub method: Method,
    pub tasks: usize,
    pub solved: usize,
    pub solve_rate: f64,
    /// The budget's unit (`policy` or `env`).
    pub budget_unit: BudgetUnit,
    /// Policy decisions (one per action chosen, replays excluded).
    pub steps: u64,
    /// Environment steps a reset-and-replay implementation would execute:
    /// `steps` plus the path to every state gone back to
    /// ([`TaskEnd::env_steps`]).
    pub env_steps: u64,
    pub backtracks: u64,
    pub restores: u64,
    pub replayed_steps: u64,
    pub replay_avoided_steps: u64,
    pub nodes: u64,
    /// Revised branches that led to a success: what `export` trains on
    /// ([`crate::tree::path::corrections`]).
    pub corrections: usize,
    pub errors: usize,
    /// Tasks taken over from an interrupted run.
    pub resumed_tasks: usize,
    /// Wall time of this invocation.
    pub wall_ms: u64,
    /// Requests and tokens of a model policy, in this invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<UsageTotals>,
    /// How the model's reflections parsed (`--reflector llm`), in this
    /// invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reflections: Option<ReflectionCounts>,
    pub per_task: Vec<TaskEnd>,
}

fn header(args: &RunArgs, env: &Environment, tasks: &[u32]) -> Header {
    Header {
        format: tree::FORMAT,
        env: args.env.clone(),
        env_name: env.info().name.clone(),
        env_version: env.info().version.clone(),
        component_sha256: env.sha256().to_string(),
        sandbox_sha256: env.sandbox_sha256().map(str::to_string),
        split: args.split.clone(),
        tasks: tasks.to_vec(),
        seed: args.seed,
        options: args.options.clone(),
        policy: args.policy.name(),
        noise: args.policy.noise(),
        budget: args.explore.budget,
        budget_unit: args.explore.budget_unit,
        method: args.explore.method,
        reflector: args.reflector.name(),
        reflect_every: args.explore.reflect_every,
        max_depth: args.explore.max_depth,
        snapshot_every: args.explore.snapshot_every,
        rollback: if env.restores_by_replay() {
            Rollback::Replay
        } else {
            Rollback::Snapshot
        },
        prompt: Some(args.policy.prompt().unwrap_or(&args.prompt).clone()),
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

/// Prepare `DIR`: a fresh run, or what an interrupted one finished (from
/// its tree and its journal). Returns the bytes of the tasks already done.
/// Every check comes before anything in `DIR` is changed, so a refused run
/// leaves an earlier one as it was.
fn prepare_out(args: &RunArgs, header: &Header) -> Result<BTreeMap<u32, Vec<u8>>> {
    let out = &args.out;
    let tree_path = out.join(TREE);
    let resumed = if tree_path.exists() && args.resume {
        let log = log::read(&tree_path).context("cannot resume")?;
        let old = log
            .header()
            .context("cannot resume: the log has no header")?;
        if let Some(diff) = header_difference(old, header) {
            bail!(
                "cannot resume {}: the run had other settings ({diff})",
                out.display()
            );
        }
        let mut done = journal::read_tasks(out).context("cannot resume")?;
        done.extend(log.task_bytes);
        Some(done)
    } else if tree_path.exists() && !args.force {
        bail!(
            "{} already holds a run ({TREE}); pass --resume to continue it or --force to replace it",
            out.display()
        );
    } else {
        None
    };
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    // A summary describes a finished run: the one there is about to change.
    match std::fs::remove_file(out.join(SUMMARY)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e)
                .with_context(|| format!("cannot remove {}", out.join(SUMMARY).display()));
        }
        _ => {}
    }
    if let Some(done) = resumed {
        return Ok(done);
    }
    journal::remove(out)?;
    write_durable(&tree_path, &header_line(header)?)?;
    Ok(BTreeMap::new())
}

fn header_line(header: &Header) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(&Record::Header(header.clone()))?;
    line.push(b'\n');
    Ok(line)
}

/// `tree.jsonl` from the header and every task, in the header's task order
/// (the same bytes for any `--jobs`), written atomically; then the journal
/// goes.
fn assemble(out: &Path, header: &Header, tasks: &BTreeMap<u32, Vec<u8>>) -> Result<()> {
    let mut bytes = header_line(header)?;
    for task in &header.tasks {
        let records = tasks
            .get(task)
            .with_context(|| format!("task {task} is neither in the tree nor in the journal"))?;
        bytes.extend_from_slice(records);
    }
    write_durable(&out.join(TREE), &bytes)?;
    journal::remove(out)
}

fn task_list(args: &RunArgs, env: &Environment) -> Result<Vec<u32>> {
    let len = env.info().split_len(&args.split)?;
    args.tasks.indices(&args.split, len)
}

/// A run directory made ready: the environment, the run's tasks, its
/// header and the bytes of the tasks already done.
struct Prepared {
    env: Environment,
    tasks: Vec<u32>,
    header: Header,
    done: BTreeMap<u32, Vec<u8>>,
}

fn prepare(runtime: &Arc<Runtime>, args: &RunArgs) -> Result<Prepared> {
    args.validate()?;
    let env = Environment::open(runtime, &args.env)?;
    let tasks = task_list(args, &env)?;
    let Some(&first) = tasks.first() else {
        bail!("split '{}' has no tasks to run", args.split);
    };
    check_task(
        &env,
        &Task::new(&args.split, first, args.seed, &args.options),
    )?;
    let header = header(args, &env, &tasks);
    let done = prepare_out(args, &header)?;
    Ok(Prepared {
        env,
        tasks,
        header,
        done,
    })
}

/// Explore `todo`, each task journaled the moment it finishes; then add
/// the journal to `p.done`. On an error, says what is kept and how to go on.
fn explore_tasks(p: &mut Prepared, args: &RunArgs, todo: &[u32]) -> Result<()> {
    let bar = progress_bar(todo.len() as u64, "tasks", args.progress);
    bar.inc(0);
    let finished = map_indexed(todo.len(), args.jobs, |i| {
        let run = run_task(&p.env, args, todo[i])?;
        journal::write_task(&args.out, run.end.task, &run.records)?;
        bar.inc(1);
        bar.set_message(format!(
            "task {} {}",
            run.end.task,
            if run.end.solved { "solved" } else { "unsolved" }
        ));
        anyhow::Ok(())
    });
    bar.finish_and_clear();
    p.done.extend(journal::read_tasks(&args.out)?);
    if let Some(e) = finished.into_iter().find_map(Result::err) {
        bail!(
            "{e:#}\n{} of {} tasks are finished and kept in {}: run the same command with \
             --resume to do the rest",
            p.done.len(),
            p.tasks.len(),
            args.out.display()
        );
    }
    Ok(())
}

/// Run the job. Returns the summary also written to `DIR/summary.json`.
pub fn run(runtime: &Arc<Runtime>, args: &RunArgs) -> Result<Summary> {
    let started = Instant::now();
    let mut p = prepare(runtime, args)?;
    let resumed = p.done.len();
    let todo: Vec<u32> = p
        .tasks
        .iter()
        .copied()
        .filter(|t| !p.done.contains_key(t))
        .collect();
    explore_tasks(&mut p, args, &todo)?;
    assemble(&args.out, &p.header, &p.done)?;
    finish(&args.out, p.header, resumed, started, args)
}

/// What [`run_part`] leaves: the run's tasks and those done so far.
#[derive(Clone, Debug, Serialize)]
pub struct Part {
    pub out: PathBuf,
    pub tasks: Vec<u32>,
    pub done: Vec<u32>,
}

/// Explore only `only` of the run's tasks (those not done yet) into the
/// journal and stop, without assembling the tree: a run spread over
/// machines is one `run_part` per task (each in a directory of its own),
/// their journal files gathered into one directory, and a `run` with
/// `resume` that finds every task done. An empty `only` just prepares the
/// directory (checks, header) and reports.
pub fn run_part(runtime: &Arc<Runtime>, args: &RunArgs, only: &[u32]) -> Result<Part> {
    let mut p = prepare(runtime, args)?;
    if let Some(t) = only.iter().find(|t| !p.tasks.contains(t)) {
        bail!(
            "--only-tasks: task {t} is not one of the run's tasks ({})",
            describe(&p.tasks)
        );
    }
    let mut todo: Vec<u32> = only
        .iter()
        .copied()
        .filter(|t| !p.done.contains_key(t))
        .collect();
    todo.sort_unstable();
    todo.dedup();
    explore_tasks(&mut p, args, &todo)?;
    Ok(Part {
        out: args.out.clone(),
        done: p.done.keys().copied().collect(),
        tasks: p.tasks,
    })
}

/// `3..7` for a contiguous list, else the count.
fn describe(tasks: &[u32]) -> String {
    match (tasks.first(), tasks.last()) {
        (Some(a), Some(b)) if (b - a) as usize + 1 == tasks.len() => format!("{a}..{}", b + 1),
        _ => format!("{} tasks", tasks.len()),
    }
}

fn run_task(env: &Environment, args: &RunArgs, index: u32) -> Result<TaskRun> {
    let task = Task::new(&args.split, index, args.seed, &args.options);
    let mut policy = args.policy.build(args.seed, index);
    let mut reflector = args.reflector.build(env.info(), args.seed, index);
    explore_task(
        env,
        &task,
        policy.as_mut(),
        reflector.as_mut(),
        &args.explore,
    )
}

/// Write `summary.json` from the complete tree.
fn finish(
    out: &std::path::Path,
    header: Header,
    resumed: usize,
    started: Instant,
    args: &RunArgs,
) -> Result<Summary> {
    let log = log::read(&out.join(TREE))?;
    let corrections = log
        .nodes_by_task()
        .values()
        .map(|nodes| tree::path::corrections(nodes, Default::default()).count())
        .sum();
    let ends = log.ends();
    let sum = |f: fn(&TaskEnd) -> u32| ends.iter().map(|e| u64::from(f(e))).sum::<u64>();
    let solved = ends.iter().filter(|e| e.solved).count();
    let summary = Summary {
        env: header.env.clone(),
        split: header.split.clone(),
        policy: header.policy.as_str().to_string(),
        method: header.method,
        tasks: ends.len(),
        solved,
        solve_rate: if ends.is_empty() {
            0.0
        } else {
            solved as f64 / ends.len() as f64
        },
        budget_unit: header.budget_unit,
        steps: sum(|e| e.steps),
        env_steps: sum(|e| e.env_steps()),
        backtracks: sum(|e| e.backtracks),
        restores: sum(|e| e.restores),
        replayed_steps: sum(|e| e.replayed_steps),
        replay_avoided_steps: sum(|e| e.replay_avoided_steps),
        nodes: sum(|e| e.nodes),
        corrections,
        errors: ends.iter().filter(|e| e.error.is_some()).count(),
        resumed_tasks: resumed,
        wall_ms: started.elapsed().as_millis() as u64,
        llm: args.policy.usage(),
        reflections: args.reflector.counts(),
        per_task: ends,
    };
    let mut json = serde_json::to_vec_pretty(&summary)?;
    json.push(b'\n');
    write_atomic(&out.join(SUMMARY), &json)?;
    Ok(summary)
}
