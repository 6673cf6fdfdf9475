//! Helpers shared by the host's integration tests.

use leafe_host::{EngineOptions, Runtime};
use std::path::Path;
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
