//! Running untrusted Python from an environment: the host's `sandbox`
//! import (see `interface sandbox` in the WIT contract).
//!
//! Every call runs the program in a fresh CPython instance under the given
//! limits and always comes back with a [`Verdict`]. Only a component running
//! inside the leafe host has a sandbox: natively (in [`crate::Harness`] unit
//! tests) [`run_python`] answers [`Verdict::SandboxError`].

/// Limits for one run; the host lowers any above its own maxima.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel (about one unit per interpreter instruction); deterministic.
    pub fuel: u64,
    /// Wall-clock limit in milliseconds.
    pub wall_ms: u32,
    /// Interpreter memory in bytes.
    pub memory_bytes: u64,
    /// Bytes kept of stdout, and separately of stderr.
    pub output_bytes: u32,
}

impl Default for Limits {
    /// 10 G fuel (a few seconds of pure Python), 10 s, 256 MiB, 64 KiB.
    fn default() -> Self {
        Limits {
            fuel: 10_000_000_000,
            wall_ms: 10_000,
            memory_bytes: 256 << 20,
            output_bytes: 64 << 10,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The program ran to its end (whatever its exit code).
    Ok,
    /// An uncaught exception, or the interpreter trapped.
    RuntimeError,
    /// Out of fuel or past the wall-clock limit.
    TimeLimit,
    /// More memory than allowed.
    MemoryLimit,
    /// More output than allowed.
    OutputLimit,
    /// The sandbox could not run the program at all.
    SandboxError,
}

impl Verdict {
    /// The WIT name: `ok`, `runtime-error`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::RuntimeError => "runtime-error",
            Verdict::TimeLimit => "time-limit",
            Verdict::MemoryLimit => "memory-limit",
            Verdict::OutputLimit => "output-limit",
            Verdict::SandboxError => "sandbox-error",
        }
    }
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// How it ended.
    pub verdict: Verdict,
    /// 0, the `sys.exit` code, 1 after an uncaught exception, -1 if it never exited.
    pub exit_code: i32,
    /// Standard output (bounded by the limits).
    pub stdout: String,
    /// Standard error (bounded by the limits).
    pub stderr: String,
    /// Fuel the run consumed.
    pub fuel_used: Option<u64>,
    /// Wall time of the run, in microseconds (not deterministic: never put it
    /// in an observation).
    pub wall_us: u64,
}

/// Run `source` as `python3 program.py` with `stdin` as its input.
pub fn run_python(source: &str, stdin: &str, limits: &Limits) -> RunResult {
    imp::run_python(source, stdin, limits)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use crate::bindings::leafe::env::sandbox as wit;

    pub fn run_python(source: &str, stdin: &str, limits: &Limits) -> RunResult {
        let limits = wit::Limits {
            fuel: limits.fuel,
            wall_ms: limits.wall_ms,
            memory_bytes: limits.memory_bytes,
            output_bytes: limits.output_bytes,
        };
        let r = wit::run_python(source, stdin, limits);
        RunResult {
            verdict: match r.verdict {
                wit::Verdict::Ok => Verdict::Ok,
                wit::Verdict::RuntimeError => Verdict::RuntimeError,
                wit::Verdict::TimeLimit => Verdict::TimeLimit,
                wit::Verdict::MemoryLimit => Verdict::MemoryLimit,
                wit::Verdict::OutputLimit => Verdict::OutputLimit,
                wit::Verdict::SandboxError => Verdict::SandboxError,
            },
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
            fuel_used: r.fuel_used,
            wall_us: r.wall_us,
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;

    pub fn run_python(_source: &str, _stdin: &str, _limits: &Limits) -> RunResult {
        RunResult {
            verdict: Verdict::SandboxError,
            exit_code: -1,
            stdout: String::new(),
            stderr: "no Python sandbox outside the leafe host".into(),
            fuel_used: Some(0),
            wall_us: 0,
        }
    }
}
