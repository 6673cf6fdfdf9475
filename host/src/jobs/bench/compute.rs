//! `bench --suite compute`: what the sandbox's compute slowdown is made of.
//! Compute-bound programs (the CPU-bound loop of the sandbox suite and the
//! slowest MBPP reference solution) run in the sandbox as leafe runs them,
//! next to the native interpreter; then the loop runs under the same engine
//! configuration with one factor switched off (or, for bounds checks,
//! forced on) in turn. Every variant compiles the interpreter afresh (~8 s
//! each on 2 cores), outside the compile cache. Other native interpreters
//! named in `$LEAFE_BENCH_PYTHON_EXTRA` (paths separated by `:`) run the
//! loop too, to price the interpreter's own build (e.g. one built without
//! profile-guided optimisation, as the sandbox's is).

use super::BenchReport;
use super::baseline::Python;
use super::sandbox::{CPU_LOOP, mbpp_test_programs};
use crate::sandbox::{PythonSandbox, RunLimits, Verdict};
use crate::util::progress::progress_bar;
use crate::wasm::engine::{EngineOptions, config, engine_from};
use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};
use wasmtime::{Config, OptLevel};

type Variant = (&'static str, fn(&mut Config));

const VARIANTS: &[Variant] = &[
    ("without fuel metering", |c| {
        c.consume_fuel(false);
    }),
    ("without epoch interruption", |c| {
        c.epoch_interruption(false);
    }),
    ("without NaN canonicalisation", |c| {
        c.cranelift_nan_canonicalization(false);
    }),
    ("without fuel, epochs and NaN canonicalisation", |c| {
        c.consume_fuel(false)
            .epoch_interruption(false)
            .cranelift_nan_canonicalization(false);
    }),
    (
        "with explicit bounds checks (no reservation or guard pages)",
        |c| {
            c.memory_reservation(0).memory_guard_size(0);
        },
    ),
    ("with Cranelift's optimiser off", |c| {
        c.cranelift_opt_level(OptLevel::None);
    }),
    (
        "with tables initialised eagerly (no lazy-init check per indirect call)",
        |c| {
            c.table_lazy_init(false);
        },
    ),
    ("with a fixed memory base (memory may not move)", |c| {
        c.memory_may_move(false);
    }),
    (
        "with every switch that can go off off (fuel, epochs, NaN canonicalisation) and \
         eager tables and a fixed memory base",
        every_switch_off,
    ),
];

/// The engine as close to plain compiled code as it goes: what is left is
/// WebAssembly compiled by Cranelift.
fn every_switch_off(c: &mut Config) {
    c.consume_fuel(false)
        .epoch_interruption(false)
        .cranelift_nan_canonicalization(false)
        .table_lazy_init(false)
        .memory_may_move(false);
}

/// The slowest MBPP reference solution in the test split (amicable numbers
/// up to 9999: seconds of pure-Python compute).
const SLOWEST_MBPP_TASK: u32 = 123;

fn limits() -> RunLimits {
    RunLimits {
        fuel: u64::MAX / 4,
        wall_ms: 600_000,
        ..RunLimits::default()
    }
}

/// One run of `program` in `sandbox`, timed; an error unless it exits 0.
fn sandbox_time(sandbox: &PythonSandbox, program: &str) -> Result<Duration> {
    let start = Instant::now();
    let r = sandbox.run(program, "", &limits());
    let took = start.elapsed();
    if r.verdict != Verdict::Ok || r.exit_code != 0 {
        bail!("the program failed in the sandbox: {}", r.stderr);
    }
    Ok(took)
}

/// One run of `program` under `python`, timed; an error unless it exits 0.
fn native_time(python: &Python, program: &str) -> Result<Duration> {
    let (took, ok) = python.run(program)?;
    if !ok {
        bail!("{} failed on the program", python.describe());
    }
    Ok(took)
}

/// The best of `tries` runs of `a` and of `b`, taken in turns so that a
/// slow spell of the machine falls on both alike.
fn best_in_turns(
    tries: u32,
    a: impl Fn() -> Result<Duration>,
    b: impl Fn() -> Result<Duration>,
) -> Result<(Duration, Duration)> {
    let (mut best_a, mut best_b) = (Duration::MAX, Duration::MAX);
    for _ in 0..tries.max(1) {
        best_a = best_a.min(a()?);
        best_b = best_b.min(b()?);
    }
    Ok((best_a, best_b))
}

fn sandbox_with(options: &EngineOptions, change: fn(&mut Config)) -> Result<PythonSandbox> {
    let mut config = config(options);
    change(&mut config);
    let engine = engine_from(&config)?;
    PythonSandbox::load(&engine, None, options.limits.memory_bytes)
}

/// The interpreters of `$LEAFE_BENCH_PYTHON_EXTRA`.
fn extra_pythons() -> Result<Vec<Python>> {
    let Some(list) = std::env::var_os("LEAFE_BENCH_PYTHON_EXTRA") else {
        return Ok(Vec::new());
    };
    std::env::split_paths(&list)
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| Python::at(&p))
        .collect()
}

/// Add the compute figures to `report`.
pub fn run(
    report: &mut BenchReport,
    options: &EngineOptions,
    reps: u32,
    progress: bool,
) -> Result<()> {
    // Pooling off everywhere: the variants change memory settings it fixes.
    let options = EngineOptions {
        pooling: false,
        ..options.clone()
    };
    let tries = reps.clamp(1, 12);
    let python = Python::find()?;
    let extras = extra_pythons()?;
    let bar = progress_bar(
        (2 + extras.len() + VARIANTS.len()) as u64,
        "measures",
        progress,
    );
    bar.set_message("compiling the interpreter");
    let leafe = sandbox_with(&options, |_| {})?;
    bar.set_message("the loop");

    let (in_sandbox, natively) = best_in_turns(
        tries,
        || sandbox_time(&leafe, CPU_LOOP),
        || native_time(&python, CPU_LOOP),
    )?;
    report.time(
        &format!(
            "compute: the loop in the sandbox as leafe runs it vs {}",
            python.describe()
        ),
        in_sandbox,
        natively,
    );
    bar.inc(1);
    bar.set_message(format!("MBPP {SLOWEST_MBPP_TASK}"));

    let slowest = mbpp_test_programs()?
        .into_iter()
        .find(|(id, _)| *id == SLOWEST_MBPP_TASK)
        .map(|(_, program)| program)
        .with_context(|| format!("MBPP task {SLOWEST_MBPP_TASK} is not in the test split"))?;
    // Seconds a run: two turns are enough for a best-of.
    let (sandboxed, native) = best_in_turns(
        tries.min(2),
        || sandbox_time(&leafe, &slowest),
        || native_time(&python, &slowest),
    )?;
    report.time(
        &format!(
            "compute: MBPP {SLOWEST_MBPP_TASK} (the slowest reference solution) in the sandbox vs {}",
            python.describe()
        ),
        sandboxed,
        native,
    );
    bar.inc(1);

    // The sandbox with every switch off against each extra interpreter: when
    // that one is CPython built as the sandbox's is (scripts/
    // build-cpython-like-sandbox.sh), the ratio is what WebAssembly and
    // Cranelift cost the same interpreter.
    let bare = if extras.is_empty() {
        None
    } else {
        Some(sandbox_with(&options, every_switch_off)?)
    };
    for other in extras {
        bar.set_message(other.describe());
        let (theirs, ours) = best_in_turns(
            tries,
            || native_time(&other, CPU_LOOP),
            || native_time(&python, CPU_LOOP),
        )?;
        report.time(
            &format!(
                "compute: the loop under {} vs {}",
                other.describe(),
                python.describe()
            ),
            theirs,
            ours,
        );
        if let Some(bare) = &bare {
            let (sandboxed, native) = best_in_turns(
                tries,
                || sandbox_time(bare, CPU_LOOP),
                || native_time(&other, CPU_LOOP),
            )?;
            report.time(
                &format!(
                    "compute: the loop in the sandbox with every switch off vs {}",
                    other.describe()
                ),
                sandboxed,
                native,
            );
        }
        bar.inc(1);
    }

    for (name, change) in VARIANTS {
        bar.set_message(*name);
        let variant = sandbox_with(&options, *change)?;
        let (changed, as_is) = best_in_turns(
            tries,
            || sandbox_time(&variant, CPU_LOOP),
            || sandbox_time(&leafe, CPU_LOOP),
        )?;
        report.time(
            &format!("compute: the loop {name} vs as leafe runs it"),
            changed,
            as_is,
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}
