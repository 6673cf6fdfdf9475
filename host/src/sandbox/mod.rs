//! The Python sandbox: CPython as a WASI component (world `code-runner`,
//! built from `envs-wasm/python/runner.py`), one fresh instance per run.
//!
//! The component is pre-initialised (the interpreter has already started
//! and imported its standard library when the image was built), so a run
//! costs an instantiation from a copy-on-write image plus the program
//! itself. Every run ends with a [`Verdict`]: traps, limits and a broken
//! interpreter are all verdicts, never a host error.

pub(crate) mod lazy;
pub mod tests_file;

use crate::util::hash::sha256_hex;
use crate::wasm::cache::{self, CompileCache, Origin};
use crate::wasm::guest::{self, GuestSetup, GuestState};
use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, Trap};

mod bindings {
    wasmtime::component::bindgen!({ world: "code-runner", path: "../wit" });
}
use bindings::CodeRunnerPre;

/// How a run ended (the WIT `verdict`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The program ran to its end (any exit code).
    Ok,
    /// An uncaught exception, or the interpreter trapped.
    RuntimeError,
    /// Out of fuel or past the wall-clock limit.
    TimeLimit,
    /// More memory than allowed.
    MemoryLimit,
    /// More output than allowed.
    OutputLimit,
    /// The sandbox could not run the program.
    SandboxError,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::Ok,
        Verdict::RuntimeError,
        Verdict::TimeLimit,
        Verdict::MemoryLimit,
        Verdict::OutputLimit,
        Verdict::SandboxError,
    ];

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

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLimits {
    /// Wasm fuel; deterministic (the same program always uses the same).
    pub fuel: u64,
    /// Wall-clock limit; also ends a program that blocks.
    pub wall_ms: u64,
    /// Interpreter linear memory.
    pub memory_bytes: usize,
    /// Bytes kept of stdout, and separately of stderr.
    pub output_bytes: usize,
}

impl Default for RunLimits {
    /// 10 G fuel (a few seconds of pure Python), 10 s, 256 MiB, 64 KiB.
    fn default() -> Self {
        RunLimits {
            fuel: 10_000_000_000,
            wall_ms: 10_000,
            memory_bytes: 256 << 20,
            output_bytes: 64 << 10,
        }
    }
}

impl RunLimits {
    /// The most output one run may keep, of stdout and of stderr each.
    pub const MAX_OUTPUT_BYTES: usize = 64 << 20;

    /// The most an environment gets for one nested run when the user set
    /// no `--fuel` / `--wall-ms`: 200 G fuel (the most a built-in code
    /// environment asks for), 60 s, 4 GiB (lowered to the engine's memory
    /// limit), 1 MiB of output.
    pub const NESTED_MAX: RunLimits = RunLimits {
        fuel: 200_000_000_000,
        wall_ms: 60_000,
        memory_bytes: 4 << 30,
        output_bytes: 1 << 20,
    };

    /// Each limit lowered to `max`'s.
    pub fn capped_by(self, max: &RunLimits) -> RunLimits {
        RunLimits {
            fuel: self.fuel.min(max.fuel),
            wall_ms: self.wall_ms.min(max.wall_ms),
            memory_bytes: self.memory_bytes.min(max.memory_bytes),
            output_bytes: self.output_bytes.min(max.output_bytes),
        }
    }
}

/// The result of one run (the WIT `run-result`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    pub verdict: Verdict,
    /// 0, the `sys.exit` status, 1 after an uncaught exception, -1 when the
    /// program did not get to exit (a limit or a trap stopped it).
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Absent when a trap other than running out of fuel stopped the
    /// program (a wall-clock stop, a memory or stack limit): the count the
    /// engine keeps is not exact then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    pub wall_us: u64,
}

impl RunResult {
    /// A run the sandbox could not make, and why (in `stderr`).
    pub(crate) fn sandbox_error(message: String, started: Instant) -> RunResult {
        RunResult {
            verdict: Verdict::SandboxError,
            exit_code: -1,
            stdout: String::new(),
            stderr: message,
            fuel_used: Some(0),
            wall_us: started.elapsed().as_micros() as u64,
        }
    }
}

/// The compiled interpreter component, ready to instantiate.
pub struct PythonSandbox {
    engine: Engine,
    pre: CodeRunnerPre<GuestState>,
    /// Whether the engine meters fuel (every engine but the compute
    /// benchmark's).
    metered: bool,
    /// Runs never get more than this.
    pub max: RunLimits,
    pub sha256: String,
    pub origin: Origin,
    pub load_time: Duration,
}

impl PythonSandbox {
    /// Compile (or load from `cache`) the built-in interpreter component.
    /// `max_memory` is the most linear memory the engine allows an instance.
    pub fn load(
        engine: &Engine,
        cache: Option<&CompileCache>,
        max_memory: usize,
    ) -> Result<PythonSandbox> {
        // Checked before compiling (seconds) what could never be instantiated.
        let needed = leafe_builtins::PYTHON_MIN_MEMORY;
        if (max_memory as u64) < needed {
            anyhow::bail!(
                "a memory limit of {} MiB is below the {} MiB the Python interpreter starts with \
                 (programs need more on top): raise --memory-mb",
                max_memory >> 20,
                needed.div_ceil(1 << 20)
            );
        }
        Self::load_hashed(
            engine,
            cache,
            max_memory,
            leafe_builtins::PYTHON,
            leafe_builtins::PYTHON_SHA256.to_string(),
        )
    }

    /// Like [`PythonSandbox::load`] for any `code-runner` component.
    pub fn load_bytes(
        engine: &Engine,
        cache: Option<&CompileCache>,
        max_memory: usize,
        bytes: &[u8],
    ) -> Result<PythonSandbox> {
        Self::load_hashed(engine, cache, max_memory, bytes, sha256_hex(bytes))
    }

    fn load_hashed(
        engine: &Engine,
        cache: Option<&CompileCache>,
        max_memory: usize,
        bytes: &[u8],
        sha256: String,
    ) -> Result<PythonSandbox> {
        let start = Instant::now();
        let cold = !cache.is_some_and(|c| c.has(engine, &sha256));
        let announce = cold && std::io::IsTerminal::is_terminal(&std::io::stderr());
        if announce {
            // About 16 core-seconds of Cranelift work for the 20 MB interpreter.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            eprint!(
                "compiling the Python sandbox for this machine (once; about {} s)... ",
                16usize.div_ceil(cores.min(8))
            );
        }
        let (component, origin) = match cache {
            Some(cache) => cache.load_or_compile(engine, bytes, &sha256),
            None => cache::compile(engine, bytes).map(|c| (c, Origin::Compiled)),
        }
        .context("the Python sandbox component")?;
        if announce {
            eprintln!("done in {:.1} s", start.elapsed().as_secs_f64());
        }
        // The interpreter gets WASI only: its own linker, without `sandbox`.
        let mut linker = Linker::new(engine);
        guest::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("the Python sandbox component cannot be linked: {e}"))?;
        let pre = CodeRunnerPre::new(instance_pre)
            .map_err(|e| anyhow!("the Python sandbox component has the wrong exports: {e}"))?;
        Ok(PythonSandbox {
            engine: engine.clone(),
            pre,
            metered: Store::new(engine, ()).set_fuel(1).is_ok(),
            max: RunLimits {
                memory_bytes: max_memory,
                fuel: u64::MAX / 2,
                wall_ms: u64::from(u32::MAX),
                output_bytes: 64 << 20,
            },
            sha256,
            origin,
            load_time: start.elapsed(),
        })
    }

    /// Run `source` as `python3 program.py` with `stdin`, in a fresh
    /// instance, under `limits` (lowered to [`PythonSandbox::max`]).
    pub fn run(&self, source: &str, stdin: &str, limits: &RunLimits) -> RunResult {
        self.run_cancellable(source, stdin, limits, None)
    }

    /// [`PythonSandbox::run`] that stops (as a time limit) soon after
    /// `cancel` is set, for callers that may stop wanting the result.
    pub fn run_cancellable(
        &self,
        source: &str,
        stdin: &str,
        limits: &RunLimits,
        cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> RunResult {
        let started = Instant::now();
        let limits = limits.capped_by(&self.max);
        // One byte over the cap tells "hit the limit" from "wrote exactly it".
        let pipe_bytes = limits.output_bytes.saturating_add(1);
        let setup = GuestSetup {
            stdin: stdin.as_bytes().to_vec(),
            ..GuestSetup::default()
        };
        let state = match GuestState::build(0, pipe_bytes, limits.memory_bytes, &setup) {
            Ok(state) => state,
            Err(e) => return RunResult::sandbox_error(format!("{e}"), started),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.data_mut().call = guest::CallClock {
            cancel,
            ..guest::CallClock::start(Duration::from_millis(limits.wall_ms))
        };
        guest::enforce_wall_clock(&mut store);
        // An engine without fuel metering (only the compute benchmark's)
        // runs without a fuel limit.
        if self.metered
            && let Err(e) = store.set_fuel(limits.fuel)
        {
            return RunResult::sandbox_error(format!("cannot set fuel: {e}"), started);
        }
        let runner = match self.pre.instantiate(&mut store) {
            Ok(runner) => runner,
            Err(e) => {
                return RunResult::sandbox_error(
                    format!("cannot instantiate the interpreter: {e:#}"),
                    started,
                );
            }
        };
        let outcome = runner.call_run(&mut store, source);
        let counted = limits.fuel - store.get_fuel().unwrap_or(limits.fuel);
        let fuel_used = match &outcome {
            _ if !self.metered => None,
            Ok(_) => Some(counted),
            Err(e) if e.downcast_ref::<wasmtime_wasi::I32Exit>().is_some() => Some(counted),
            Err(e) if e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) => Some(limits.fuel),
            Err(_) => None,
        };
        let wall_us = started.elapsed().as_micros() as u64;
        let data = store.data();
        let (stdout, stdout_over) = take_output(&data.stdout.contents(), limits.output_bytes);
        let (mut stderr, stderr_over) = take_output(&data.stderr.contents(), limits.output_bytes);
        let memory_denied = data.limiter.denied.is_some();
        let output_over = stdout_over || stderr_over;

        let (verdict, exit_code) = match outcome {
            Ok(Ok(status)) if output_over => (Verdict::OutputLimit, status),
            Ok(Ok(status)) => (Verdict::Ok, status),
            Ok(Err(status)) if memory_denied => (Verdict::MemoryLimit, status),
            Ok(Err(status)) if output_over => (Verdict::OutputLimit, status),
            Ok(Err(status)) => (Verdict::RuntimeError, status),
            Err(e) => {
                let (verdict, exit_code, note) =
                    classify_trap(&e, memory_denied, output_over, &limits);
                if let Some(note) = note {
                    if !stderr.is_empty() && !stderr.ends_with('\n') {
                        stderr.push('\n');
                    }
                    stderr.push_str(&note);
                }
                (verdict, exit_code)
            }
        };
        RunResult {
            verdict,
            exit_code,
            stdout,
            stderr,
            fuel_used,
            wall_us,
        }
    }
}

/// At most `cap` bytes of `bytes` as text, and whether there were more.
fn take_output(bytes: &[u8], cap: usize) -> (String, bool) {
    let over = bytes.len() > cap;
    let kept = &bytes[..bytes.len().min(cap)];
    (String::from_utf8_lossy(kept).into_owned(), over)
}

/// A run that did not return: the verdict, exit code and a line for stderr.
fn classify_trap(
    e: &wasmtime::Error,
    memory_denied: bool,
    output_over: bool,
    limits: &RunLimits,
) -> (Verdict, i32, Option<String>) {
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        // `os._exit(n)`: a normal end as far as the sandbox is concerned.
        let verdict = if output_over {
            Verdict::OutputLimit
        } else {
            Verdict::Ok
        };
        return (verdict, exit.0, None);
    }
    let trap = e.downcast_ref::<Trap>();
    let (verdict, note) = match trap {
        Some(Trap::OutOfFuel) => (
            Verdict::TimeLimit,
            format!("sandbox: fuel limit of {} exhausted", limits.fuel),
        ),
        Some(Trap::Interrupt) => (
            Verdict::TimeLimit,
            format!(
                "sandbox: wall-clock limit of {} ms exceeded",
                limits.wall_ms
            ),
        ),
        _ if memory_denied => (
            Verdict::MemoryLimit,
            format!(
                "sandbox: memory limit of {} MiB exceeded",
                limits.memory_bytes >> 20
            ),
        ),
        _ if output_over => (
            Verdict::OutputLimit,
            format!(
                "sandbox: output limit of {} bytes exceeded",
                limits.output_bytes
            ),
        ),
        Some(Trap::StackOverflow) => (
            Verdict::RuntimeError,
            "sandbox: the interpreter's stack overflowed (too deep a recursion)".to_string(),
        ),
        Some(trap) => (
            Verdict::RuntimeError,
            format!("sandbox: interpreter trapped: {trap}"),
        ),
        None => (
            Verdict::RuntimeError,
            format!("sandbox: interpreter failed: {}", e.root_cause()),
        ),
    };
    (verdict, -1, Some(note))
}

/// Run many `(source, stdin)` programs on `jobs` threads; results come
/// back in input order.
pub fn run_many(
    sandbox: &PythonSandbox,
    programs: &[(String, String)],
    limits: &RunLimits,
    jobs: usize,
) -> Vec<RunResult> {
    crate::util::parallel::map_indexed(programs.len(), jobs, |i| {
        let (source, stdin) = &programs[i];
        sandbox.run(source, stdin, limits)
    })
}
