//! The library side of each command: what `leafe-host` runs, callable from
//! any front end (the CLI, a server, a binding). Each job is one module;
//! jobs share only [`TaskSelection`] and [`open`].

#[cfg(feature = "bench")]
pub mod bench;
pub mod eval;
pub mod export;
pub mod open;
pub mod play;
pub mod replay;
pub mod report;
pub mod run;
#[cfg(feature = "serve")]
pub mod serve;

use crate::env::contract::Task;
use crate::env::environment::Environment;
use anyhow::{Result, bail};

/// Which tasks of a split to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskSelection {
    /// `count` tasks from index `start`.
    Range {
        start: u32,
        count: u32,
    },
    One(u32),
    /// The whole split.
    All,
}

impl TaskSelection {
    /// The task indices selected from `split`, which has `len` tasks.
    pub fn indices(&self, split: &str, len: u32) -> Result<Vec<u32>> {
        match *self {
            TaskSelection::All => Ok((0..len).collect()),
            TaskSelection::One(i) if i < len => Ok(vec![i]),
            TaskSelection::One(i) => {
                bail!("--task {i} is out of range: split '{split}' has {len} tasks")
            }
            TaskSelection::Range { count: 0, .. } => bail!("--tasks must be at least 1"),
            TaskSelection::Range { start, count }
                if u64::from(start) + u64::from(count) <= u64::from(len) =>
            {
                Ok((start..start + count).collect())
            }
            TaskSelection::Range { start: 0, count } => {
                bail!("--tasks {count} is more than split '{split}' has ({len})")
            }
            TaskSelection::Range { start, count } => bail!(
                "--from {start} --tasks {count} goes past the end of split '{split}' ({len} tasks)"
            ),
        }
    }
}

/// Reset one task before any work, so a bad option or split is reported at
/// once and leaves nothing half-made behind.
pub(crate) fn check_task(env: &Environment, task: &Task) -> Result<()> {
    env.instance(task.seed)?.reset(task)?;
    Ok(())
}
