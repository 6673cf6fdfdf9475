//! The native Python the sandbox is measured against: a real interpreter
//! binary, never a version manager's shim (one on PATH added ~70 ms to
//! every process and turned a 2.4x slowdown into a 2.5x "speed-up").

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The baseline interpreter: `$LEAFE_BENCH_PYTHON`, else the system's
/// `/usr/bin/python3`, else whatever `python3` on PATH really runs
/// (`sys.executable`); with its version.
#[derive(Clone, Debug)]
pub struct Python {
    pub path: PathBuf,
    pub version: String,
}

impl Python {
    pub fn find() -> Result<Python> {
        let candidate = match std::env::var_os("LEAFE_BENCH_PYTHON") {
            Some(p) => PathBuf::from(p),
            None if std::path::Path::new("/usr/bin/python3").exists() => "/usr/bin/python3".into(),
            None => "python3".into(),
        };
        Python::at(&candidate)
    }

    /// The interpreter `candidate` really runs (a shim resolved to its
    /// `sys.executable`), with its version.
    pub fn at(candidate: &std::path::Path) -> Result<Python> {
        let out = Command::new(candidate)
            .args([
                "-c",
                "import sys, platform; print(sys.executable); print(platform.python_version())",
            ])
            .output()
            .with_context(|| format!("cannot run {} (a baseline)", candidate.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let (Some(path), Some(version)) = (lines.next(), lines.next()) else {
            bail!("{} did not say where it is", candidate.display());
        };
        Ok(Python {
            path: PathBuf::from(path),
            version: version.to_string(),
        })
    }

    /// "CPython 3.11.2 (/usr/bin/python3.11)", for figure names.
    pub fn describe(&self) -> String {
        format!("CPython {} ({})", self.version, self.path.display())
    }

    /// `python -c program`: (wall time, passed).
    pub fn run(&self, program: &str) -> Result<(Duration, bool)> {
        let start = Instant::now();
        let status = Command::new(&self.path)
            .arg("-c")
            .arg(program)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", self.path.display()))?;
        Ok((start.elapsed(), status.success()))
    }
}

/// A whole process run: its wall time (start to exit) and peak resident
/// memory, for `bench --suite startup`.
#[cfg(unix)]
pub fn measure_process(command: &mut Command) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child,
    // which is reaped here (the Child is not waited on again).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let took = start.elapsed();
    drop(child);
    if waited != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{:?} failed", command.get_program());
    }
    // ru_maxrss is in KiB on Linux.
    Ok((took, usage.ru_maxrss as u64 * 1024))
}

#[cfg(not(unix))]
pub fn measure_process(_command: &mut Command) -> Result<(Duration, u64)> {
    bail!("the startup benchmark measures processes with wait4, which needs a Unix")
}
