//! `leafe-host bench`: the host's speed figures, each as a ratio against a
//! baseline measured in the same run.
//!
//! - restore vs replay: reach step 50 / 200 of a sokoban episode by restoring
//!   a snapshot into a fresh instance, or by reset + replaying the actions;
//! - compile vs cache: a cold Cranelift compile vs loading the cached
//!   compiled component;
//! - instantiation with the pooling allocator vs on-demand allocation;
//! - environment steps per second, with and without a snapshot per step;
//! - exploration throughput (env steps/s, tree nodes/s) and backtracking by
//!   restore vs by reset-and-replay over the same tasks;
//! - the Python sandbox against `python3` subprocesses ([`sandbox`]);
//! - whole `leafe-host` processes against the native interpreter ([`startup`]);
//! - what the sandbox's compute slowdown is made of ([`compute`]).

pub mod baseline;
pub mod compute;
pub mod report;
pub mod sandbox;
pub mod startup;
pub mod text_worlds;

pub use report::{BenchReport, Figure};

use crate::agent::explore::{ExploreConfig, explore_task};
use crate::agent::policy::spec::PolicySpec;
use crate::agent::reflect::rule::RuleReflector;
use crate::env::component::{EnvComponent, Source};
use crate::env::contract::Task;
use crate::env::environment::Environment;
use crate::env::runtime::Runtime;
use crate::env::session::Session;
use crate::tree::Method;
use crate::util::progress::progress_bar;
use crate::util::rng::SplitMix;
use crate::wasm::engine::EngineOptions;
use anyhow::{Result, bail};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Mean time of `f` over `reps` runs (after one warm-up run).
fn mean_time(reps: u32, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    f()?;
    let start = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    Ok(start.elapsed() / reps)
}

/// A seeded random walk of `len` steps on a sokoban level that does not end
/// (the level is skipped if the walk solves it), with a snapshot per step.
fn random_walk(env: &Arc<EnvComponent>, len: usize) -> Result<(Task, Vec<String>, Vec<Vec<u8>>)> {
    let moves = ["up", "down", "left", "right"];
    for index in 0..50 {
        let task = Task {
            split: "test".into(),
            index,
            seed: 0,
            options: vec![("max-steps".into(), (len + 10).to_string())],
        };
        let mut s = Session::new(env, 0)?;
        s.reset(&task)?;
        let mut rng = SplitMix::new(u64::from(index));
        let (mut actions, mut snaps) = (Vec::new(), vec![s.snapshot()?]);
        while actions.len() < len {
            let a = moves[rng.below(4)];
            let out = s.step(a)?;
            actions.push(a.to_string());
            snaps.push(s.snapshot()?);
            if out.terminated {
                break;
            }
        }
        if actions.len() == len && !s.is_dead() {
            return Ok((task, actions, snaps));
        }
    }
    bail!("no level gave a {len}-step random walk without solving it")
}

/// Which benchmarks to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Suite {
    All,
    /// Environments: restore, cache, pooling, steps, exploration.
    Host,
    /// The Python sandbox vs python3.
    Sandbox,
    /// Whole leafe-host processes (exec, envs, run) vs python3.
    Startup,
    /// What the sandbox's compute slowdown is made of (not part of `all`:
    /// it compiles the interpreter ten times, a few minutes). Native
    /// interpreters named in $LEAFE_BENCH_PYTHON_EXTRA (`:`-separated) run
    /// its loop too: scripts/build/build-cpython-like-sandbox.sh builds the
    /// sandbox's CPython natively, to price WebAssembly on its own.
    Compute,
}

/// Run the benchmarks; `reps` scales the repetitions.
pub fn run(
    options: &EngineOptions,
    reps: u32,
    suite: Suite,
    progress: bool,
) -> Result<BenchReport> {
    let reps = reps.max(1);
    let mut report = BenchReport {
        figures: Vec::new(),
    };
    if matches!(suite, Suite::All | Suite::Host) {
        host_figures(&mut report, options, reps, progress)?;
    }
    if matches!(suite, Suite::All | Suite::Sandbox) {
        let runtime = Runtime::new(options.clone())?;
        let sandbox = runtime.python()?;
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        sandbox::run(&mut report, &sandbox, reps, jobs)?;
    }
    if matches!(suite, Suite::All | Suite::Startup) {
        startup::run(&mut report, reps)?;
    }
    if suite == Suite::Compute {
        compute::run(&mut report, options, reps, progress)?;
    }
    Ok(report)
}

fn host_figures(
    report: &mut BenchReport,
    options: &EngineOptions,
    reps: u32,
    progress: bool,
) -> Result<()> {
    let bar = progress_bar(5, "benchmarks", progress);

    // Compile vs cache, in a private cache directory.
    let cache_dir = std::env::temp_dir().join(format!("leafe-bench-cache-{}", std::process::id()));
    let cached_opts = EngineOptions {
        cache: Some(cache_dir.clone()),
        ..options.clone()
    };
    let runtime = Runtime::new(cached_opts)?;
    let cold = EnvComponent::load(&runtime, Source::Builtin("sokoban".into()))?;
    let warm_time = mean_time(reps, || {
        EnvComponent::load(&runtime, Source::Builtin("sokoban".into())).map(|_| ())
    })?;
    let _ = std::fs::remove_dir_all(&cache_dir);
    report.time(
        "load sokoban: cache hit vs cold compile",
        warm_time,
        cold.load_time,
    );
    bar.inc(1);

    // Instantiation: pooling vs on-demand.
    let env = cold;
    let pooled = mean_time(reps * 20, || {
        Session::new(&env, 0)
            .map(|_| ())
            .map_err(anyhow::Error::from)
    })?;
    let plain_rt = Runtime::new(EngineOptions {
        pooling: false,
        cache: None,
        ..options.clone()
    })?;
    let plain_env = EnvComponent::load(&plain_rt, Source::Builtin("sokoban".into()))?;
    let plain = mean_time(reps * 20, || {
        Session::new(&plain_env, 0)
            .map(|_| ())
            .map_err(anyhow::Error::from)
    })?;
    report.time("instantiate: pooling vs on-demand", pooled, plain);
    bar.inc(1);

    // Restore vs replay from the start.
    let (task, actions, snaps) = random_walk(&env, 200)?;
    for k in [50usize, 200] {
        let mut s = Session::new(&env, 0)?;
        let restore = mean_time(reps * 5, || {
            s.restore(&snaps[k]).map_err(anyhow::Error::from)
        })?;
        let replay = mean_time(reps, || {
            let mut s = Session::new(&env, 0)?;
            s.reset(&task)?;
            for a in &actions[..k] {
                s.step(a)?;
            }
            Ok(())
        })?;
        report.time(
            &format!("reach step {k}: restore vs replay from start"),
            restore,
            replay,
        );
    }
    bar.inc(1);

    // Steps per second.
    let mut s = Session::new(&env, 0)?;
    let walk = |s: &mut Session, snapshot: bool| -> Result<Duration> {
        s.reset(&task)?;
        let start = Instant::now();
        for a in &actions {
            s.step(a)?;
            if snapshot {
                s.snapshot()?;
            }
        }
        Ok(start.elapsed())
    };
    let mut plain_steps = Duration::ZERO;
    let mut snap_steps = Duration::ZERO;
    for _ in 0..reps {
        plain_steps += walk(&mut s, false)?;
        snap_steps += walk(&mut s, true)?;
    }
    let n = (actions.len() as u32 * reps) as f64;
    let plain_rate = n / plain_steps.as_secs_f64();
    report.rate("env steps/s (sokoban 7x7)", plain_rate, "steps/s", None);
    report.rate(
        "env steps/s with a snapshot per step",
        n / snap_steps.as_secs_f64(),
        "steps/s",
        Some(plain_rate),
    );
    bar.inc(1);

    // Exploration with backtracking: restore from per-state snapshots vs
    // reset-and-replay (only the root is snapshotted, so every backtrack
    // re-executes the path from the start), same tasks, same decisions.
    let environment = Environment::from(env.clone());
    let explore = |snapshot_every: u32| -> Result<(Duration, u64, u64, u64)> {
        let cfg = ExploreConfig {
            method: Method::Leafe,
            reflect_every: 0,
            budget: 400,
            budget_unit: Default::default(),
            max_depth: 12,
            snapshot_every,
        };
        let spec = PolicySpec::Oracle { noise: 0.5 };
        let start = Instant::now();
        let (mut steps, mut nodes, mut replayed) = (0u64, 0u64, 0u64);
        for index in 0..reps.min(30) {
            let task = Task {
                split: "test".into(),
                index,
                seed: 0,
                options: vec![("size".into(), "8x8".into()), ("boxes".into(), "3".into())],
            };
            let mut policy = spec.build(0, index);
            let run = explore_task(
                &environment,
                &task,
                policy.as_mut(),
                &mut RuleReflector,
                &cfg,
            )?;
            steps += u64::from(run.end.steps);
            nodes += u64::from(run.end.nodes);
            replayed += u64::from(run.end.replayed_steps);
        }
        Ok((start.elapsed(), steps, nodes, replayed))
    };
    let (with_restore, steps, nodes, _) = explore(1)?;
    let (with_replay, replay_steps, _, replayed) = explore(u32::MAX)?;
    if replay_steps != steps {
        bail!("the two exploration modes took different paths ({steps} vs {replay_steps} steps)");
    }
    let secs = with_restore.as_secs_f64();
    report.rate(
        "exploration: env steps/s (oracle, noise 0.5, 8x8, 3 boxes)",
        steps as f64 / secs,
        "steps/s",
        None,
    );
    report.rate(
        "exploration: tree nodes/s",
        nodes as f64 / secs,
        "nodes/s",
        None,
    );
    report.time(
        &format!("exploration: restore vs reset-and-replay ({replayed} replayed steps)"),
        with_restore,
        with_replay,
    );
    bar.inc(1);
    text_worlds::all(report, &env.runtime, reps)?;
    bar.finish_and_clear();
    Ok(())
}
