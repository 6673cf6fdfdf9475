//! `bench --suite startup`: leafe-host as whole processes, start to exit,
//! the way a script that calls the CLI once per program sees it, next to
//! the native interpreter doing the same in the same run.

use super::BenchReport;
use super::baseline::{Python, measure_process};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The median wall time and the peak memory of `runs` runs of `command`.
fn sample(runs: usize, mut command: impl FnMut() -> Command) -> Result<(Duration, u64)> {
    measure_process(&mut command())?; // warm: page cache, compile cache
    let mut times = Vec::with_capacity(runs);
    let mut peak = 0;
    for _ in 0..runs {
        let (took, rss) = measure_process(&mut command())?;
        times.push(took);
        peak = peak.max(rss);
    }
    times.sort();
    Ok((times[times.len() / 2], peak))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Add the startup figures to `report`.
pub fn run(report: &mut BenchReport, reps: u32) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the leafe-host binary")?;
    let python = Python::find()?;
    let dir = std::env::temp_dir().join(format!("leafe-bench-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = figures(report, &exe, &python, &dir, (reps as usize).max(10));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn figures(
    report: &mut BenchReport,
    exe: &Path,
    python: &Python,
    dir: &Path,
    runs: usize,
) -> Result<()> {
    let hello = dir.join("hello.py");
    std::fs::write(&hello, "print('hello')\n")?;
    let leafe = |args: &[&str]| {
        let mut c = Command::new(exe);
        c.args(args);
        c
    };
    let hello_arg = hello
        .to_str()
        .context("a temporary path that is not UTF-8")?;
    // A process that exits 0 with a sandbox error would be timed as a success.
    let check = leafe(&["exec", hello_arg, "--json"])
        .output()
        .context("cannot run leafe-host exec")?;
    let verdict: serde_json::Value = serde_json::from_slice(&check.stdout)
        .with_context(|| format!("exec said {}", String::from_utf8_lossy(&check.stderr)))?;
    if verdict["verdict"] != "ok" || verdict["stdout"] != "hello\n" {
        anyhow::bail!("exec hello.py did not run as it should: {verdict}");
    }
    let (exec, exec_rss) = sample(runs, || leafe(&["exec", hello_arg]))?;
    let (native, native_rss) = sample(runs, || {
        let mut c = Command::new(&python.path);
        c.arg(&hello);
        c
    })?;
    report.time(
        &format!(
            "startup: `exec hello.py` vs `python3 hello.py`, {}, median of {runs}",
            python.describe()
        ),
        exec,
        native,
    );
    report.rate(
        "startup: peak memory of `exec hello.py` vs python3 (ratio: times as much)",
        mib(exec_rss),
        "MiB",
        Some(mib(native_rss)),
    );
    // The floor of any leafe-host process, then what commands add to it.
    let (floor, _) = sample(runs, || leafe(&["--version"]))?;
    let (envs, _) = sample(runs, || leafe(&["envs"]))?;
    report.time("startup: `envs` vs `leafe-host --version`", envs, floor);
    let out = dir.join("run");
    let out_arg = out.to_str().context("a temporary path that is not UTF-8")?;
    let (run, _) = sample(runs, || {
        leafe(&[
            "run", "--env", "guess", "--tasks", "1", "--force", "--out", out_arg,
        ])
    })?;
    report.time(
        "startup: `run --env guess --tasks 1` vs `leafe-host --version`",
        run,
        floor,
    );
    Ok(())
}
