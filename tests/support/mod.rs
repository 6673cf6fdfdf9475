//! What the tests that drive a repository script share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the repository")
        .to_path_buf()
}

/// Run `script` (relative to the root) under bash with `args` and `envs`;
/// its stdout and stderr together, after asserting that it succeeded
/// (the whole log is the failure message).
pub fn run_script(script: &str, args: &[&Path], envs: &[(&str, &std::ffi::OsStr)]) -> String {
    let out = Command::new("bash")
        .arg(root().join(script))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash {script}: {e}"));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{log}");
    log
}
