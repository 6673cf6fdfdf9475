//! Helpers shared by the host's integration tests.

use leafe_host::{EngineOptions, Runtime};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};

/// One runtime per test binary, with a compile cache in the target dir, so
/// the Python interpreter is compiled once, not once per test.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Runtime::new(EngineOptions {
                cache: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("leafe-cache")),
                ..Default::default()
            })
            .unwrap()
        })
        .clone()
}

/// The `leafe-host` binary, with the shared compile cache.
pub fn leafe_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_leafe-host"));
    cmd.env(
        "LEAFE_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("leafe-cache"),
    );
    cmd
}

/// The node records of a run's tree.
pub fn tree_nodes(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("tree.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "node")
        .collect()
}

/// A virtualenv with `package` installed, made once and reused.
pub fn venv_with(package: &str, import: &str) -> PathBuf {
    // Tests run in parallel: one makes a venv while the others wait.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
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

/// Run `leafe-host` with `args` and no input.
pub fn leafe(args: &[&str]) -> Output {
    leafe_with_stdin(args, "")
}

/// Run `leafe-host` with `args`, `stdin` as its input.
pub fn leafe_with_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = leafe_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Run `leafe-host`, which must succeed; its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = leafe(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One HTTP/1.1 request read off a connection by a scripted test server:
/// (method, path, body); `None` once the client closed it.
pub fn read_request(reader: &mut impl std::io::BufRead) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        if header.trim().is_empty() {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, body))
}
