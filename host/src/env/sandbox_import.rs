//! The host side of `leafe:env/sandbox`: environments (the code benchmarks)
//! run untrusted Python through it, in the [`crate::python`] sandbox.

use crate::bindings::leafe::env::sandbox as wit;
use crate::engine::{LazyPython, Limits};
use crate::python::{RunLimits, RunResult, Verdict};
use crate::wasi::GuestState;
use std::sync::Arc;
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

const INTERFACE: &str = "leafe:env/sandbox@0.1.0";

/// Provide `run-python` to every component linked with `linker`.
pub fn add_to_linker(
    linker: &mut Linker<GuestState>,
    python: Arc<LazyPython>,
    env_limits: Limits,
) -> wasmtime::Result<()> {
    linker.instance(INTERFACE)?.func_wrap(
        "run-python",
        move |mut store: StoreContextMut<'_, GuestState>,
              (source, stdin, limits): (String, String, wit::Limits)| {
            let started = std::time::Instant::now();
            let result = match python.get() {
                Ok(sandbox) => sandbox.run(&source, &stdin, &from_wit(&limits)),
                Err(message) => RunResult::sandbox_error(
                    format!("the Python sandbox is unavailable: {message}"),
                    started,
                ),
            };
            // Time spent in the sandbox has its own limit; the environment's
            // own deadline starts again when the program is done.
            store.set_epoch_deadline(crate::engine::deadline_ticks(env_limits.wall_ms_per_call));
            Ok((to_wit(result),))
        },
    )
}

fn from_wit(l: &wit::Limits) -> RunLimits {
    RunLimits {
        fuel: l.fuel,
        wall_ms: u64::from(l.wall_ms),
        memory_bytes: usize::try_from(l.memory_bytes).unwrap_or(usize::MAX),
        output_bytes: l.output_bytes as usize,
    }
}

fn to_wit(r: RunResult) -> wit::RunResult {
    wit::RunResult {
        verdict: match r.verdict {
            Verdict::Ok => wit::Verdict::Ok,
            Verdict::RuntimeError => wit::Verdict::RuntimeError,
            Verdict::TimeLimit => wit::Verdict::TimeLimit,
            Verdict::MemoryLimit => wit::Verdict::MemoryLimit,
            Verdict::OutputLimit => wit::Verdict::OutputLimit,
            Verdict::SandboxError => wit::Verdict::SandboxError,
        },
        exit_code: r.exit_code,
        stdout: r.stdout,
        stderr: r.stderr,
        fuel_used: r.fuel_used,
        wall_us: r.wall_us,
    }
}
