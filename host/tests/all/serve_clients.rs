//! `leafe-host serve` driven by clients nobody here wrote: the
//! `sandbox-fusion` and `openenv-core` PyPI clients (pinned below), each
//! installed into a virtualenv under the target directory on first use.

use super::common::venv_with;
use super::serve::Server;
use std::path::Path;
use std::process::Command;

const SANDBOX_FUSION: &str = "sandbox-fusion==0.3.7";
const OPENENV: &str = "openenv-core==0.3.0";

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
