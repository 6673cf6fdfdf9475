//! `leafe-host serve` driven by clients nobody here wrote: the
//! `sandbox-fusion` and `openenv-core` PyPI clients (pinned below), each
//! installed into a virtualenv under the target directory on first use.

use super::serve::Server;
use std::path::{Path, PathBuf};
use std::process::Command;

const SANDBOX_FUSION: &str = "sandbox-fusion==0.3.7";
const OPENENV: &str = "openenv-core==0.3.0";

/// A virtualenv with `package` installed, made once and reused.
fn venv_with(package: &str, import: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("venv-{package}"));
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", &format!("import {import}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && ready(&python) {
        return python;
    }
    let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let made = Command::new(&system)
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    assert!(made, "cannot create a virtualenv with {system} -m venv");
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", package])
        .status()
        .is_ok_and(|s| s.success());
    assert!(installed && ready(&python), "cannot pip install {package}");
    python
}

#[test]
fn the_sandbox_fusion_client_runs_code_and_all_of_mbpp_test() {
    let python = venv_with(SANDBOX_FUSION, "sandbox_fusion");
    let dir = tempfile::tempdir().unwrap();
    let mbpp = dir.path().join("mbpp-test.jsonl");
    let rows = leafe_judge::mbpp::split_lines(leafe_builtins::mbpp_jsonl(), "test").unwrap();
    std::fs::write(&mbpp, rows.join("\n") + "\n").unwrap();
    let server = Server::start(&["--concurrency", "8"]);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/sandbox_fusion_client.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&server.url)
        .arg(&mbpp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("500/500 reference solutions pass, 50/50 mismatched fail"),
        "{stdout}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn the_openenv_client_plays_episodes_and_sessions_move_between_processes() {
    let python = venv_with(OPENENV, "openenv.core.generic_client");
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/openenv_client.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&a.url)
        .arg(&b.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("sokoban task 2: solved"), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
