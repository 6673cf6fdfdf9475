//! `leafe-host eval`: test-time performance of a policy. Each sample is one
//! episode with no reflection and no backtracking; a task's samples give its
//! success count, and Pass@k comes from the unbiased estimator
//! 1 - C(n-c, k) / C(n, k) averaged over tasks.

use super::{TaskSelection, check_task};
use crate::agent::explore::{ExploreConfig, explore_task};
use crate::agent::policy::spec::PolicySpec;
use crate::agent::reflect::rule::RuleReflector;
use crate::env::contract::Task;
use crate::env::environment::Environment;
use crate::env::runtime::Runtime;
use crate::llm::UsageTotals;
use crate::tree::Method;
use crate::tree::rundir::{JOURNAL, RESULTS, SUMMARY, TREE};
use crate::util::fs::write_atomic;
use crate::util::parallel::map_indexed;
use crate::util::progress::progress_bar;
use crate::util::rng::SplitMix;
use crate::util::setting::{BadSetting, check, check_range};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The most episodes one evaluation runs (its work list is kept in memory).
pub const MAX_EPISODES: u64 = 10_000_000;

/// What to evaluate.
pub struct EvalArgs {
    pub env: String,
    pub split: String,
    pub tasks: TaskSelection,
    pub seed: u64,
    pub options: Vec<(String, String)>,
    pub policy: PolicySpec,
    /// Independent episodes per task (n).
    pub samples: u32,
    /// The k of each Pass@k to report (those above `samples` are skipped).
    pub ks: Vec<u32>,
    pub jobs: usize,
    /// A directory for `results.jsonl` (one line per task) and `summary.json`.
    pub out: Option<PathBuf>,
    /// Write into `out` even if it holds a run or another evaluation.
    pub force: bool,
    /// An earlier evaluation's directory: its tasks' times order the work,
    /// longest first (see [`start_order`]).
    pub longest_first: Option<PathBuf>,
    pub progress: bool,
}

impl EvalArgs {
    /// The most `samples` may be.
    pub const MAX_SAMPLES: u32 = 10_000;

    /// Every setting in its range; the error names the field.
    pub fn validate(&self) -> Result<(), BadSetting> {
        check_range("samples", self.samples, 1, Self::MAX_SAMPLES)?;
        check(
            self.ks.iter().all(|&k| k >= 1),
            "k",
            "values must be at least 1 (Pass@0 means nothing)",
        )?;
        check(self.jobs >= 1, "jobs", "must be at least 1")
    }
}

/// One task's samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task: u32,
    pub samples: u32,
    pub successes: u32,
    /// Environment steps over all samples.
    pub steps: u32,
    /// Samples that ended in an environment or policy error, with the first error.
    pub errors: u32,
    pub first_error: Option<String>,
    /// Wall time of its samples, added up (what `--longest-first` orders by).
    #[serde(default)]
    pub busy_seconds: f64,
}

/// The whole evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub env: String,
    pub env_sha256: String,
    /// The Python sandbox component a code environment judged with (its
    /// builds differ from machine to machine, and so can fuel and verdicts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_sha256: Option<String>,
    pub split: String,
    pub policy: String,
    pub tasks: u32,
    pub samples: u32,
    /// `pass@k` -> the mean over tasks of the unbiased estimate, for the asked k.
    pub pass_at: BTreeMap<String, f64>,
    /// Pass@k for every k from 1 to the number of samples (for curves).
    pub curve: Vec<f64>,
    /// Tasks solved by at least one sample.
    pub solved_tasks: u32,
    pub errors: u32,
    /// Wall time of the whole evaluation.
    pub seconds: f64,
    /// Wall time of every episode, added up: the workers' busy time.
    #[serde(default)]
    pub busy_seconds: f64,
    /// Episodes per second of a busy worker (episodes / `busy_seconds`):
    /// throughput that one long task at the end does not hide.
    #[serde(default)]
    pub episodes_per_busy_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<UsageTotals>,
}

/// The unbiased Pass@k estimate for a task with `c` successes in `n`
/// samples: 1 - C(n-c, k) / C(n, k), computed as a stable product.
pub fn pass_at_k(n: u32, c: u32, k: u32) -> f64 {
    if k == 0 || k > n {
        return f64::NAN;
    }
    if n - c < k {
        return 1.0;
    }
    let miss: f64 = ((n - c + 1)..=n)
        .map(|i| 1.0 - f64::from(k) / f64::from(i))
        .product();
    1.0 - miss
}

pub fn eval(runtime: &Arc<Runtime>, args: &EvalArgs) -> Result<EvalSummary> {
    args.validate()?;
    if let Some(dir) = &args.out
        && !args.force
        && let Some(file) = [TREE, SUMMARY, RESULTS, JOURNAL]
            .into_iter()
            .find(|f| dir.join(f).exists())
    {
        bail!(
            "{} already holds a run or an evaluation ({file}); choose another --out or pass \
             --force to write over it",
            dir.display()
        );
    }
    let started = std::time::Instant::now();
    let env = Environment::open(runtime, &args.env)?;
    let count = env.info().split_len(&args.split)?;
    let tasks: Vec<u32> = args.tasks.indices(&args.split, count)?;
    if tasks.len() as u64 * u64::from(args.samples) > MAX_EPISODES {
        bail!(
            "{} tasks x {} samples is more than {MAX_EPISODES} episodes in one evaluation",
            tasks.len(),
            args.samples
        );
    }
    if let Some(&first) = tasks.first() {
        check_task(
            &env,
            &Task::new(&args.split, first, args.seed, &args.options),
        )?;
    }
    let budget = episode_steps(env.info().max_steps, &args.options)?;
    let costs: BTreeMap<u32, f64> = match &args.longest_first {
        Some(dir) => read_results(dir)
            .context("--longest-first")?
            .into_iter()
            .map(|r| (r.task, r.busy_seconds))
            .collect(),
        None => BTreeMap::new(),
    };
    let work: Vec<(usize, u32)> = start_order(&tasks, &costs)
        .into_iter()
        .flat_map(|t| (0..args.samples).map(move |s| (t, s)))
        .collect();
    let bar = progress_bar(work.len() as u64, "episodes", args.progress);
    let outcomes = map_indexed(work.len(), args.jobs, |i| {
        let (t, sample) = work[i];
        let started = std::time::Instant::now();
        let outcome = run_sample(&env, args, tasks[t], sample, budget);
        bar.inc(1);
        (outcome, started.elapsed().as_secs_f64())
    });
    bar.finish_and_clear();
    let mut results: Vec<TaskResult> = tasks
        .iter()
        .map(|&task| TaskResult {
            task,
            samples: 0,
            successes: 0,
            steps: 0,
            errors: 0,
            first_error: None,
            busy_seconds: 0.0,
        })
        .collect();
    for (&(t, _), (outcome, seconds)) in work.iter().zip(outcomes) {
        let r = &mut results[t];
        r.samples += 1;
        r.busy_seconds += seconds;
        match outcome {
            Ok((solved, steps)) => {
                r.successes += u32::from(solved);
                r.steps += steps;
            }
            Err(e) => {
                r.errors += 1;
                r.first_error.get_or_insert(format!("{e:#}"));
            }
        }
    }

    let mean_pass = |k: u32| {
        let sum: f64 = results
            .iter()
            .map(|r| pass_at_k(r.samples, r.successes, k))
            .sum();
        sum / results.len().max(1) as f64
    };
    let curve: Vec<f64> = (1..=args.samples).map(mean_pass).collect();
    let busy_seconds: f64 = results.iter().map(|r| r.busy_seconds).sum();
    let pass_at: BTreeMap<String, f64> = args
        .ks
        .iter()
        .filter(|k| (1..=args.samples).contains(k))
        .map(|&k| (format!("pass@{k}"), curve[k as usize - 1]))
        .collect();
    let summary = EvalSummary {
        curve,
        env: args.env.clone(),
        env_sha256: env.sha256().to_string(),
        sandbox_sha256: env.sandbox_sha256().map(str::to_string),
        split: args.split.clone(),
        policy: args.policy.name().as_str().to_string(),
        tasks: results.len() as u32,
        samples: args.samples,
        pass_at,
        solved_tasks: results.iter().filter(|r| r.successes > 0).count() as u32,
        errors: results.iter().map(|r| r.errors).sum(),
        seconds: started.elapsed().as_secs_f64(),
        busy_seconds,
        episodes_per_busy_second: if busy_seconds > 0.0 {
            work.len() as f64 / busy_seconds
        } else {
            0.0
        },
        llm: args.policy.usage(),
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_results(&dir.join(RESULTS), &results)?;
        let mut json = serde_json::to_vec_pretty(&summary)?;
        json.push(b'\n');
        write_atomic(&dir.join(SUMMARY), &json)?;
    }
    Ok(summary)
}

/// The task results of the evaluation in `dir` (its `results.jsonl`).
pub fn read_results(dir: &std::path::Path) -> Result<Vec<TaskResult>> {
    let path = dir.join(RESULTS);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (an `eval --out` directory has one)",
            path.display()
        )
    })?;
    let results = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{} line {} is not a task result", path.display(), i + 1))
        })
        .collect::<Result<Vec<TaskResult>>>()?;
    if results.is_empty() {
        bail!("{} holds no task results", path.display());
    }
    Ok(results)
}

/// The order in which tasks start (positions in `tasks`): those the
/// earlier evaluation did not have first (their cost is unknown), then the
/// rest, longest first; ties keep task order. Only when work starts
/// changes: a worker left alone with one long task at the end is the
/// wall time it saves. Results are gathered in task order whatever it is.
pub fn start_order(tasks: &[u32], costs: &BTreeMap<u32, f64>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    let cost = |i: &usize| costs.get(&tasks[*i]).copied().unwrap_or(f64::INFINITY);
    order.sort_by(|a, b| cost(b).total_cmp(&cost(a)));
    order
}

/// One test-time episode: (solved, steps).
fn run_sample(
    env: &Environment,
    args: &EvalArgs,
    index: u32,
    sample: u32,
    budget: u32,
) -> Result<(bool, u32)> {
    let task = Task::new(&args.split, index, args.seed, &args.options);
    // Each sample's policy draws from its own stream.
    let policy_seed = SplitMix::derive(args.seed, &[u64::from(sample)]).next_u64();
    let mut policy = args.policy.build(policy_seed, index);
    let cfg = ExploreConfig {
        method: Method::Sample,
        reflect_every: 0,
        budget,
        budget_unit: Default::default(),
        max_depth: 0,
        snapshot_every: u32::MAX,
    };
    let run = explore_task(env, &task, policy.as_mut(), &mut RuleReflector, &cfg)?;
    if let Some(e) = run.end.error {
        bail!("{e}");
    }
    Ok((run.end.solved, run.end.steps))
}

/// The steps one test-time episode may take: the task's `max-steps` option
/// when given (the environment truncates there, above or below its
/// default), else the environment's default.
fn episode_steps(default: u32, options: &[(String, String)]) -> Result<u32> {
    match options.iter().rev().find(|(k, _)| k == "max-steps") {
        Some((_, v)) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("--opt max-steps={v}: expected a positive whole number")),
        None => Ok(default.max(1)),
    }
}

fn write_results(path: &std::path::Path, results: &[TaskResult]) -> Result<()> {
    let mut text = String::new();
    for r in results {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::pass_at_k;

    #[test]
    fn unknown_tasks_start_first_then_the_longest() {
        let costs = [(10, 0.5), (11, 9.0), (12, 0.5), (14, 2.0)]
            .into_iter()
            .collect();
        // Positions of tasks 13 (unknown), 11, 14, then 10 and 12 in task order.
        assert_eq!(
            super::start_order(&[10, 11, 12, 13, 14], &costs),
            [3, 1, 4, 0, 2]
        );
        assert_eq!(super::start_order(&[5, 6], &Default::default()), [0, 1]);
    }

    #[test]
    fn pass_at_k_is_the_unbiased_estimator() {
        assert_eq!(pass_at_k(10, 0, 1), 0.0);
        assert_eq!(pass_at_k(10, 10, 5), 1.0);
        assert!((pass_at_k(10, 3, 1) - 0.3).abs() < 1e-12);
        // 1 - C(8,2)/C(10,2) = 1 - 28/45
        assert!((pass_at_k(10, 2, 2) - (1.0 - 28.0 / 45.0)).abs() < 1e-12);
        assert_eq!(pass_at_k(5, 1, 5), 1.0);
        assert!(pass_at_k(5, 1, 6).is_nan());
    }
}
