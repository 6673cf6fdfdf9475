//! `leafe._leafe`: the native half of the `leafe` Python package.
//!
//! The Python half (`python/leafe/`) holds the user-facing API — the
//! Gymnasium environment, argument checks, docstrings; this module holds
//! what needs the host library: an environment session with snapshots
//! ([`env`]) and the Python sandbox ([`sandbox`]). Every call that runs wasm
//! releases the GIL, so threads run in parallel.

mod env;
mod sandbox;

use leafe_host::{EngineOptions, Runtime};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex, OnceLock};

create_exception!(
    leafe,
    EnvError,
    PyException,
    "An environment failed: it returned an error, trapped, ran past a limit, or cannot be loaded."
);
create_exception!(
    leafe,
    SandboxError,
    PyException,
    "The Python sandbox cannot be set up (a program's own failure is a verdict, not this)."
);

static RUNTIME: OnceLock<Result<Arc<Runtime>, String>> = OnceLock::new();
/// What `configure` set, read once when the runtime is made.
static MAX_INSTANCES: Mutex<Option<u32>> = Mutex::new(None);

/// The process's one runtime (engine, compile cache, sandbox), made on
/// first use with the CLI's defaults; `LEAFE_CACHE_DIR` moves its cache.
fn runtime() -> Result<Arc<Runtime>, String> {
    RUNTIME
        .get_or_init(|| {
            let defaults = EngineOptions::default();
            let max = MAX_INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
            Runtime::new(EngineOptions {
                pool_instances: max.unwrap_or(defaults.pool_instances),
                ..defaults
            })
            .map_err(|e| format!("{e:#}"))
        })
        .clone()
}

/// `value` of the argument `name`, checked to lie in 1..=`most`: the one
/// range check of every count and limit the Python layer passes on.
fn in_range(name: &str, value: i64, most: u64) -> PyResult<u64> {
    u64::try_from(value)
        .ok()
        .filter(|v| (1..=most).contains(v))
        .ok_or_else(|| {
            PyValueError::new_err(if most >= i64::MAX as u64 {
                format!("{name} must be at least 1, got {value}")
            } else {
                format!("{name} must be between 1 and {most}, got {value}")
            })
        })
}

/// Set how many instances (live environments and running programs
/// together) the process may hold at once; before anything else runs.
#[pyfunction]
fn configure(max_instances: i64) -> PyResult<()> {
    let max_instances = in_range("max_instances", max_instances, 100_000)? as u32;
    let mut max = MAX_INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
    if RUNTIME.get().is_some() {
        return Err(PyRuntimeError::new_err(
            "leafe is already running: call leafe.configure() before making an environment \
             or running a program",
        ));
    }
    *max = Some(max_instances);
    Ok(())
}

/// The names of the built-in environments.
#[pyfunction]
fn envs() -> Vec<&'static str> {
    leafe_builtins::names()
}

/// The JSON lines of MBPP split `split` (`test`, `train`, `validation`,
/// `prompt`), as the `mbpp` environment embeds them.
#[pyfunction]
fn mbpp_lines(split: &str) -> PyResult<Vec<&'static str>> {
    leafe_judge::mbpp::split_lines(leafe_builtins::mbpp_jsonl(), split).ok_or_else(|| {
        let names: Vec<&str> = leafe_judge::mbpp::SPLITS.iter().map(|s| s.0).collect();
        PyValueError::new_err(format!(
            "MBPP has no split '{split}' (splits: {})",
            names.join(", ")
        ))
    })
}

#[pymodule]
fn _leafe(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("EnvError", py.get_type::<EnvError>())?;
    m.add("SandboxError", py.get_type::<SandboxError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Which build of the interpreter component programs run in (builds
    // differ), for results to record.
    m.add("SANDBOX_SHA256", leafe_builtins::PYTHON_SHA256)?;
    m.add_function(wrap_pyfunction!(envs, m)?)?;
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    m.add_function(wrap_pyfunction!(mbpp_lines, m)?)?;
    env::register(m)?;
    sandbox::register(m)?;
    Ok(())
}
