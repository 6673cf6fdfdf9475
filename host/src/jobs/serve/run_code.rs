//! `POST /run_code` in SandboxFusion's protocol (the `sandbox-fusion`
//! client's `RunCodeRequest` / `RunCodeResponse`): `python` and `python3`
//! run in the sandbox; any other language is the protocol's `Failed` with a
//! message naming what this server runs.

use super::{AppState, error, parse_json, retry_later};
use crate::sandbox::{RunLimits, RunResult, Verdict};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Languages this server runs.
pub const LANGUAGES: [&str; 2] = ["python", "python3"];

#[derive(Deserialize)]
struct RunCodeRequest {
    code: String,
    language: String,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default = "ten")]
    run_timeout: f64,
    #[serde(default = "ten")]
    #[allow(dead_code)] // Python compiles nothing ahead of the run.
    compile_timeout: f64,
    #[serde(default)]
    files: HashMap<String, Option<String>>,
    #[serde(default)]
    fetch_files: Vec<String>,
}

fn ten() -> f64 {
    10.0
}

/// The response: `status` Success / Failed / SandboxError, a `message`,
/// and `run_result` with `status` Finished / TimeLimitExceeded / Error;
/// and, beyond SandboxFusion's fields, which interpreter build ran it.
fn response(status: &str, message: String, run_result: Value) -> Response {
    axum::Json(json!({
        "status": status,
        "message": message,
        "compile_result": null,
        "run_result": run_result,
        "executor_pod_name": null,
        "files": {},
        "sandbox_sha256": leafe_builtins::PYTHON_SHA256,
    }))
    .into_response()
}

fn failed(message: String) -> Response {
    response("Failed", message, Value::Null)
}

/// A sandbox verdict in SandboxFusion's terms.
pub fn translate(r: &RunResult, limits: &RunLimits) -> Response {
    let seconds = r.wall_us as f64 / 1e6;
    let run = |status: &str, code: Option<i32>| {
        json!({
            "status": status, "execution_time": seconds, "return_code": code,
            "stdout": r.stdout, "stderr": r.stderr,
        })
    };
    let verdict_of = |code: i32| if code == 0 { "Success" } else { "Failed" };
    match r.verdict {
        Verdict::Ok | Verdict::RuntimeError => response(
            verdict_of(r.exit_code),
            String::new(),
            run("Finished", Some(r.exit_code)),
        ),
        Verdict::TimeLimit => response(
            "Failed",
            format!(
                "time limit: past {} ms or {} fuel",
                limits.wall_ms, limits.fuel
            ),
            run("TimeLimitExceeded", None),
        ),
        // Killed by a limit: a process the OS killed exits 128 + 9.
        Verdict::MemoryLimit => response(
            "Failed",
            format!(
                "memory limit: the program wanted more than {} MiB (reported as exit 137, as a killed process)",
                limits.memory_bytes >> 20
            ),
            run("Finished", Some(137)),
        ),
        Verdict::OutputLimit => response(
            "Failed",
            format!(
                "output limit: more than {} KiB of output; the program was stopped (reported as exit 137)",
                limits.output_bytes >> 10
            ),
            run("Finished", Some(137)),
        ),
        Verdict::SandboxError => response(
            "SandboxError",
            format!("the sandbox could not run the program: {}", r.stderr),
            Value::Null,
        ),
    }
}

/// Sets the flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

pub async fn handle(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: RunCodeRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    if !LANGUAGES.contains(&req.language.as_str()) {
        return failed(format!(
            "language '{}' is not run here: this server runs {}",
            req.language,
            LANGUAGES.join(" and ")
        ));
    }
    if !req.files.is_empty() || !req.fetch_files.is_empty() {
        return failed(
            "files and fetch_files are not supported: the sandbox gives programs no file system"
                .into(),
        );
    }
    if !(req.run_timeout > 0.0 && req.run_timeout.is_finite()) {
        return error(StatusCode::BAD_REQUEST, "run_timeout must be positive");
    }
    let max = s.config.run_limits;
    let limits = RunLimits {
        wall_ms: ((req.run_timeout * 1000.0) as u64).clamp(1, max.wall_ms),
        ..max
    };
    let Some(permit) = s.run_slot().await else {
        return retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} runs going and {} queued",
                s.config.concurrency, s.config.queue
            ),
        );
    };
    let state = s.clone();
    // If the client goes away, this handler is dropped and so is the guard:
    // the run stops at the next epoch tick and frees its slot.
    let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
    let flag = cancel.0.clone();
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let sandbox = state.runtime.python()?;
        let stdin = req.stdin.as_deref().unwrap_or("");
        anyhow::Ok(sandbox.run_cancellable(&req.code, stdin, &limits, Some(flag)))
    })
    .await;
    drop(cancel);
    match result {
        Ok(Ok(r)) => {
            s.metrics.verdict(r.verdict);
            translate(&r, &limits)
        }
        Ok(Err(e)) => response(
            "SandboxError",
            format!("the sandbox is not available: {e:#}"),
            Value::Null,
        ),
        Err(e) => response("SandboxError", format!("the run failed: {e}"), Value::Null),
    }
}
