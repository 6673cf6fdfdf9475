//! A run's journal, `DIR/tasks/`: each task's records in a file of its own,
//! written durably the moment the task finishes, whatever order tasks
//! finish in. A crash loses only the tasks in flight; `run --resume` keeps
//! every journaled task, and the end of a run assembles `tree.jsonl` in
//! task order (so it is the same for any `--jobs`) and removes the journal.

use super::Record;
use super::log::read_task;
use crate::util::fs::write_durable;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The journal directory of run directory `out`.
pub fn dir(out: &Path) -> PathBuf {
    out.join(super::rundir::JOURNAL)
}

/// Write one finished task's records; on return they are on disk.
pub fn write_task(out: &Path, task: u32, records: &[Record]) -> Result<()> {
    let mut bytes = Vec::new();
    for record in records {
        bytes.extend(serde_json::to_vec(record)?);
        bytes.push(b'\n');
    }
    let dir = dir(out);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_durable(&dir.join(format!("{task:010}.jsonl")), &bytes)
}

/// The journaled tasks, by index, each checked to be one whole task. Files
/// a crash left half-written (never renamed into place) are ignored.
pub fn read_tasks(out: &Path) -> Result<BTreeMap<u32, Vec<u8>>> {
    let dir = dir(out);
    let mut tasks = BTreeMap::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tasks),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let task = read_task(&path, &bytes)?;
        tasks.insert(task, bytes);
    }
    Ok(tasks)
}

/// Whether `out` has a journal with anything in it: a run that has not
/// finished.
pub fn pending(out: &Path) -> bool {
    std::fs::read_dir(dir(out)).is_ok_and(|mut entries| entries.next().is_some())
}

/// Remove the journal (after `tree.jsonl` holds every task).
pub fn remove(out: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir(out)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", dir(out).display()))
        }
        _ => Ok(()),
    }
}
