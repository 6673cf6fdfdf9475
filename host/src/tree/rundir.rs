//! The files of a run directory (`run --out`) and of an eval directory
//! (`eval --out`), and where a new run goes by default.

use std::path::{Path, PathBuf};

/// The branch-tree log of a run.
pub const TREE: &str = "tree.jsonl";
/// The journal of a run in progress: one file per finished task.
pub const JOURNAL: &str = "tasks";
/// The summary of a finished run or evaluation.
pub const SUMMARY: &str = "summary.json";
/// Per-task results in an eval's output directory.
pub const RESULTS: &str = "results.jsonl";

/// `BASE/ENV-SPLIT-N` for the first N not taken: the default output
/// directory, so that a run never lands on an earlier one.
pub fn fresh_out_dir(base: &Path, env: &str, split: &str) -> PathBuf {
    let stem = Path::new(env)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = format!("{stem}-{split}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    (1..)
        .map(|n| base.join(format!("{name}-{n}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| base.join(name))
}
