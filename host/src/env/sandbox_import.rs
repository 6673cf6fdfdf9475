//! The host side of `leafe:env/sandbox`: environments (the code benchmarks)
//! run untrusted Python through it, in the [`crate::sandbox`].
//!
//! What an environment asks for is capped by the host's own limits (the
//! user's `--fuel` and `--wall-ms`, the engine's memory limit). The time a
//! nested run takes does not count against the environment's own per-call
//! deadline, nor does it reset it, and the nested runs of one call share a
//! budget of [`NESTED_WALL_FACTOR`] times the per-run wall limit: one call
//! into an environment holds a host thread for at most `--wall-ms` of its
//! own code plus that budget, however often it calls `run-python`.

use super::bindings::leafe::env::sandbox as wit;
use crate::sandbox::lazy::LazyPython;
use crate::sandbox::{RunLimits, RunResult, Verdict};
use crate::wasm::guest::GuestState;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

const INTERFACE: &str = "leafe:env/sandbox@0.1.0";

/// The nested runs of one environment call together get at most this many
/// times the per-run wall-clock cap.
pub const NESTED_WALL_FACTOR: u64 = 10;

/// Provide `run-python` to every component linked with `linker`.
pub fn add_to_linker(
    linker: &mut Linker<GuestState>,
    python: Arc<LazyPython>,
    nested_max: RunLimits,
) -> wasmtime::Result<()> {
    linker.instance(INTERFACE)?.func_wrap(
        "run-python",
        move |mut store: StoreContextMut<'_, GuestState>,
              (source, stdin, limits): (String, String, wit::Limits)| {
            let started = Instant::now();
            let budget_ms = nested_max.wall_ms.saturating_mul(NESTED_WALL_FACTOR);
            let spent_ms = store.data().call.nested_runs.as_millis() as u64;
            let mut limits = from_wit(&limits).capped_by(&nested_max);
            limits.wall_ms = limits.wall_ms.min(budget_ms.saturating_sub(spent_ms));
            let result = match python.get() {
                Ok(_) if limits.wall_ms == 0 => RunResult {
                    verdict: Verdict::TimeLimit,
                    stderr: format!(
                        "sandbox: this environment call has used its nested run budget of \
                         {budget_ms} ms"
                    ),
                    ..RunResult::sandbox_error(String::new(), started)
                },
                Ok(sandbox) => {
                    // The budget counts runs, not the interpreter's one-time
                    // compilation on first use.
                    let run_started = Instant::now();
                    let result = sandbox.run(&source, &stdin, &limits);
                    store.data_mut().call.nested_runs += run_started.elapsed();
                    result
                }
                Err(e) => RunResult::sandbox_error(
                    format!("the Python sandbox is unavailable: {e:#}"),
                    started,
                ),
            };
            // The environment's own deadline goes on from where it was.
            store.data_mut().call.nested += started.elapsed();
            store.set_epoch_deadline(1);
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
