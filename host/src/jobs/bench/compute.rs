//! `bench --suite compute`: what the sandbox's compute slowdown is made of.
//! The CPU-bound loop of the sandbox suite runs under leafe's engine
//! configuration and under the same configuration with one factor switched
//! off (or, for bounds checks, forced on) in turn, next to the native
//! interpreter; every variant compiles the interpreter afresh (~8 s each on
//! 2 cores), outside the compile cache.

use super::BenchReport;
use super::baseline::Python;
use super::sandbox::CPU_LOOP;
use crate::sandbox::{PythonSandbox, RunLimits, Verdict};
use crate::wasm::engine::{EngineOptions, config, engine_from};
use anyhow::{Result, bail};
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
];

/// The best of `tries` runs of the loop in `sandbox`.
fn loop_time(sandbox: &PythonSandbox, tries: u32) -> Result<Duration> {
    let limits = RunLimits {
        fuel: u64::MAX / 4,
        wall_ms: 600_000,
        ..RunLimits::default()
    };
    let mut best = Duration::MAX;
    for _ in 0..tries.max(1) {
        let start = Instant::now();
        let r = sandbox.run(CPU_LOOP, "", &limits);
        best = best.min(start.elapsed());
        if r.verdict != Verdict::Ok {
            bail!("the loop failed: {}", r.stderr);
        }
    }
    Ok(best)
}

fn sandbox_with(options: &EngineOptions, change: fn(&mut Config)) -> Result<PythonSandbox> {
    let mut config = config(options);
    change(&mut config);
    let engine = engine_from(&config)?;
    PythonSandbox::load(&engine, None, options.limits.memory_bytes)
}

/// Add the compute figures to `report`.
pub fn run(report: &mut BenchReport, options: &EngineOptions, reps: u32) -> Result<()> {
    // Pooling off everywhere: the variants change memory settings it fixes.
    let options = EngineOptions {
        pooling: false,
        ..options.clone()
    };
    let tries = reps.clamp(1, 5);
    let python = Python::find()?;
    let mut native = Duration::MAX;
    for _ in 0..tries {
        let (took, ok) = python.run(CPU_LOOP)?;
        if !ok {
            bail!("{} failed on the loop", python.describe());
        }
        native = native.min(took);
    }
    let leafe = loop_time(&sandbox_with(&options, |_| {})?, tries)?;
    report.time(
        &format!(
            "compute: the loop in the sandbox as leafe runs it vs {}",
            python.describe()
        ),
        leafe,
        native,
    );
    for (name, change) in VARIANTS {
        let variant = loop_time(&sandbox_with(&options, *change)?, tries)?;
        report.time(
            &format!("compute: the loop {name} vs as leafe runs it"),
            variant,
            leafe,
        );
    }
    Ok(())
}
