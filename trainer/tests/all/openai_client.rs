//! `serve` driven by the official `openai` Python client (pinned below),
//! installed into a virtualenv under the target directory on first use.

use crate::common;

use leafe_trainer::jobs::serve::ServeLimits;
use std::path::{Path, PathBuf};
use std::process::Command;

const OPENAI: &str = "openai==3.51.0";

/// A virtualenv with the client, made once and reused.
fn client_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("venv-{OPENAI}"));
    let python = venv.join("bin/python");
    if python.exists()
        && Command::new(&python)
            .args(["-c", "import openai"])
            .status()
            .is_ok_and(|s| s.success())
    {
        return python;
    }
    let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&system)
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cannot create a virtualenv with {system} -m venv");
    let ok = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", OPENAI])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cannot pip install {OPENAI}");
    python
}

#[test]
fn the_openai_client_gets_completions_streams_and_clear_400s() {
    let (_dir, _state, addr) = common::serve_tiny(ServeLimits::default());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/openai_chat.py");
    let out = Command::new(client_python())
        .arg(script)
        .arg(format!("http://{addr}/v1"))
        .arg("tiny")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
