//! The Python sandbox's figures for `leafe-host bench`, each against a
//! `python3` subprocess measured in the same run:
//!
//! - per-run overhead: a fresh sandboxed interpreter running `pass` vs
//!   `python3 -c pass`;
//! - MBPP test split: the 500 reference solutions with their asserts, one
//!   run (one process) per problem, the same number of workers for both;
//! - a CPU-bound pure-Python loop: the interpreter's own slowdown.

use super::baseline::Python;
use super::report::BenchReport;
use crate::sandbox::{PythonSandbox, RunLimits, Verdict};
use crate::util::parallel::map_indexed;
use anyhow::{Context, Result, bail};
use leafe_judge::mbpp;
use std::time::{Duration, Instant};

/// A CPU-bound pure-Python loop.
pub const CPU_LOOP: &str = "x = 0\nfor i in range(2_000_000):\n    x += i * i % 7\nprint(x)\n";

/// The MBPP test split as one program per problem (the solution, the set-up
/// code and every assert), from the `mbpp` component's own data, with each
/// problem's task id.
pub fn mbpp_test_programs() -> Result<Vec<(u32, String)>> {
    let lines = mbpp::split_lines(leafe_builtins::mbpp_jsonl(), "test")
        .context("the embedded MBPP data has no test split")?;
    let mut programs = Vec::new();
    for line in lines {
        let row = mbpp::Row::parse(line).map_err(anyhow::Error::msg)?;
        let mut program = leafe_judge::assert_program(&row.solution(), &row.test_setup_code, "");
        for test in &row.test_list {
            program.push_str(test);
            program.push('\n');
        }
        programs.push((row.task_id, program));
    }
    Ok(programs)
}

/// Add the sandbox figures to `report`.
pub fn run(
    report: &mut BenchReport,
    sandbox: &PythonSandbox,
    reps: u32,
    jobs: usize,
) -> Result<()> {
    let limits = RunLimits {
        fuel: 200_000_000_000,
        wall_ms: 60_000,
        ..RunLimits::default()
    };
    let python = Python::find()?;
    let native = |program: &str| python.run(program);
    native("pass")?;

    // Per-run overhead.
    let runs = reps.max(1) * 5;
    let mut sandboxed = Duration::ZERO;
    let mut subprocess = Duration::ZERO;
    for _ in 0..runs {
        let start = Instant::now();
        let r = sandbox.run("pass", "", &limits);
        sandboxed += start.elapsed();
        if r.verdict != Verdict::Ok {
            bail!("the sandbox failed on `pass`: {}", r.stderr);
        }
        subprocess += native("pass")?.0;
    }
    report.time(
        &format!(
            "sandbox: fresh interpreter + `pass` vs `python3 -c pass`, {}",
            python.describe()
        ),
        sandboxed / runs,
        subprocess / runs,
    );

    // MBPP test split, one run per problem, `jobs` at a time.
    let programs: Vec<String> = mbpp_test_programs()?.into_iter().map(|(_, p)| p).collect();
    let timed = |run: &(dyn Fn(usize) -> Result<bool> + Sync), order: &[usize], workers: usize| {
        let start = Instant::now();
        let outcomes = map_indexed(order.len(), workers, |i| {
            let began = Instant::now();
            run(order[i]).map(|ok| (ok, began.elapsed()))
        });
        let wall = start.elapsed();
        let outcomes = outcomes.into_iter().collect::<Result<Vec<_>>>()?;
        anyhow::Ok((wall, outcomes))
    };
    let in_sandbox = |i: usize| {
        let r = sandbox.run(&programs[i], "", &limits);
        Ok(r.verdict == Verdict::Ok && r.exit_code == 0)
    };
    let natively = |i: usize| Ok(native(&programs[i])?.1);
    let as_listed: Vec<usize> = (0..programs.len()).collect();
    let (sandbox_time, sandbox_runs) = timed(&in_sandbox, &as_listed, jobs)?;
    let (native_time, native_runs) = timed(&natively, &as_listed, jobs)?;
    let passed = |runs: &[(bool, Duration)]| runs.iter().filter(|(ok, _)| *ok).count();
    report.time(
        &format!(
            "sandbox: MBPP test split, {jobs} workers ({} vs {} of {} pass)",
            passed(&sandbox_runs),
            passed(&native_runs),
            programs.len()
        ),
        sandbox_time,
        native_time,
    );
    report.rate(
        "sandbox: MBPP programs/s",
        programs.len() as f64 / sandbox_time.as_secs_f64(),
        "programs/s",
        Some(programs.len() as f64 / native_time.as_secs_f64()),
    );
    // Over the time workers were busy: what the split's end (one problem
    // that runs for seconds) hides from programs / wall time.
    let busy = |runs: &[(bool, Duration)]| {
        let total: Duration = runs.iter().map(|(_, d)| *d).sum();
        programs.len() as f64 / (total.as_secs_f64() / jobs as f64)
    };
    report.rate(
        "sandbox: MBPP programs/s over the workers' busy time",
        busy(&sandbox_runs),
        "programs/s",
        Some(busy(&native_runs)),
    );
    // Scaling from one worker to all, the costliest problems first (their
    // cost is known from the run above), without the one problem that alone
    // outlasts all others together (task 123: it bounds any worker count).
    let mut longest_first = as_listed.clone();
    longest_first.sort_by_key(|&i| std::cmp::Reverse(sandbox_runs[i].1));
    longest_first.remove(0);
    let mut one_worker = None;
    for workers in 1..=jobs {
        let (wall, _) = timed(&in_sandbox, &longest_first, workers)?;
        let rate = longest_first.len() as f64 / wall.as_secs_f64();
        let base = *one_worker.get_or_insert(rate);
        report.rate(
            &format!(
                "sandbox: MBPP less its slowest problem, programs/s on {workers} worker(s), \
                 longest first (vs 1 worker)"
            ),
            rate,
            "programs/s",
            Some(base),
        );
    }

    // The interpreter's own speed on a CPU-bound loop.
    let start = Instant::now();
    let r = sandbox.run(CPU_LOOP, "", &limits);
    let sandbox_loop = start.elapsed();
    if r.verdict != Verdict::Ok {
        bail!("the sandbox failed on the CPU-bound loop: {}", r.stderr);
    }
    let (native_loop, ok) = native(CPU_LOOP)?;
    if !ok {
        bail!("python3 failed on the CPU-bound loop");
    }
    report.time(
        "sandbox: CPU-bound loop (2M iterations) vs native python3",
        sandbox_loop,
        native_loop,
    );
    wall_clock_under_load(report, sandbox)
}

/// How long a `wall_ms` limit takes to stop an endless loop, alone and with
/// every core kept busy by two spinning threads: the limit is the baseline
/// (a ratio of 1.0 is a limit that fires on time, 0.5 one that takes twice
/// as long).
fn wall_clock_under_load(report: &mut BenchReport, sandbox: &PythonSandbox) -> Result<()> {
    let limits = RunLimits {
        fuel: u64::MAX / 2,
        wall_ms: 2_000,
        ..RunLimits::default()
    };
    let limit = Duration::from_millis(limits.wall_ms);
    let stopped_after = || -> Result<Duration> {
        let start = Instant::now();
        let r = sandbox.run("while True:\n    pass\n", "", &limits);
        if r.verdict != Verdict::TimeLimit {
            bail!(
                "the endless loop ended with {} instead of time-limit",
                r.verdict
            );
        }
        Ok(start.elapsed())
    };
    report.time(
        "sandbox: a 2000 ms wall-clock limit, idle machine",
        stopped_after()?,
        limit,
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let loaded = std::thread::scope(|scope| {
        for _ in 0..2 * cores {
            scope.spawn(|| {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            });
        }
        let took = stopped_after();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        took
    })?;
    report.time(
        &format!(
            "sandbox: a 2000 ms wall-clock limit, {} busy threads on {cores} cores",
            2 * cores
        ),
        loaded,
        limit,
    );
    Ok(())
}
