//! A finished run opened for reading: its checked tree and the environment
//! it ran (checked to be the same one). Serves `replay` and `export`.

use crate::env::contract::Task;
use crate::env::environment::Environment;
use crate::env::runtime::Runtime;
use crate::tree::rundir::TREE;
use crate::tree::{Header, Node};
use crate::tree::{journal, log};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A finished run: its header, its environment (checked to be the one the
/// run used) and its nodes by task.
pub struct OpenRun {
    pub header: Header,
    pub env: Environment,
    pub by_task: BTreeMap<u32, Vec<Node>>,
}

/// Open the finished run in `dir`; `env_override` replaces the recorded
/// `--env` (e.g. the same component at another path, or the server at
/// another address), whose hash must match.
pub fn open_run(runtime: &Arc<Runtime>, dir: &Path, env_override: Option<&str>) -> Result<OpenRun> {
    let path = dir.join(TREE);
    if journal::pending(dir) {
        bail!(
            "{} is a run that has not finished (its journal {} holds finished tasks): \
             finish it with `leafe-host run --resume`",
            dir.display(),
            journal::dir(dir).display()
        );
    }
    let log = log::read(&path)?;
    if log.torn_tail {
        bail!(
            "{} ends with a torn line (an interrupted run): finish it with `leafe-host run --resume`",
            path.display()
        );
    }
    if let Some(task) = log.unfinished_task() {
        bail!(
            "{}: task {task} has no task-end (an interrupted run): finish it with \
             `leafe-host run --resume`",
            path.display()
        );
    }
    let header = log.header().context("the log has no header")?.clone();
    let env = Environment::open(runtime, env_override.unwrap_or(&header.env))?;
    if env.sha256() != header.component_sha256 {
        bail!(
            "environment {} has sha256 {}, but the run used {}: replay needs the same \
             environment",
            env.spec(),
            env.sha256(),
            header.component_sha256
        );
    }
    let here = env.sandbox_sha256();
    if let Some(recorded) = &header.sandbox_sha256
        && here != Some(recorded.as_str())
    {
        bail!(
            "the run's programs ran in the Python sandbox component {recorded}, but this host's \
             is {}: another build of the interpreter orders sets and counts fuel differently, \
             so replay needs the same one (build the host with LEAFE_PYTHON_COMPONENT set to it)",
            here.unwrap_or("none")
        );
    }
    let by_task = log.nodes_by_task();
    Ok(OpenRun {
        header,
        env,
        by_task,
    })
}

/// Task `index` as the run with `header` ran it.
pub fn task_of(header: &Header, index: u32) -> Task {
    Task::new(&header.split, index, header.seed, &header.options)
}
