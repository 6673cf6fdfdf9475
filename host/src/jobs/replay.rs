//! `leafe-host replay DIR`: re-execute every branch of a recorded tree from
//! (environment, task, seed, actions) alone, in fresh instances, and check
//! every observation, reward, flag and snapshot hash against the log.

use super::open::{OpenRun, open_run, task_of};
use crate::env::contract::Task;
use crate::env::environment::Environment;
use crate::env::instance::EnvInstance;
use crate::env::runtime::Runtime;
use crate::tree::Node;
use crate::tree::path::{ancestors, leaves};
use crate::util::hash::sha256_hex;
use anyhow::{Result, anyhow};
use std::path::Path;
use std::sync::Arc;

/// What a replay checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    pub tasks: usize,
    pub branches: usize,
    pub nodes_checked: usize,
    pub steps_executed: usize,
}

/// Replay the run in `dir`. `env_override` replaces the recorded `--env`
/// (e.g. the same component at another path); its hash must still match.
pub fn replay(
    runtime: &Arc<Runtime>,
    dir: &Path,
    env_override: Option<&str>,
) -> Result<ReplayReport> {
    let OpenRun {
        header,
        env,
        by_task,
    } = open_run(runtime, dir, env_override)?;
    let mut report = ReplayReport {
        tasks: by_task.len(),
        ..Default::default()
    };
    for (index, nodes) in &by_task {
        let task = task_of(&header, *index);
        replay_task(&env, &task, nodes, &mut report)?;
    }
    Ok(report)
}

fn mismatch(node: &Node, what: &str) -> anyhow::Error {
    anyhow!(
        "task {} node {}: {what} differs from the log",
        node.task,
        node.id
    )
}

fn replay_task(
    env: &Environment,
    task: &Task,
    nodes: &[Node],
    report: &mut ReplayReport,
) -> Result<()> {
    let mut checked = vec![false; nodes.len()];
    for leaf in leaves(nodes) {
        let path = ancestors(nodes, leaf.id);
        let mut session = env.instance(task.seed)?;
        let session = session.as_mut();
        let first = session
            .reset(task)
            .map_err(|e| anyhow!("task {}: reset failed: {e}", task.index))?;
        check_node(session, path[0], &first)?;
        for node in &path[1..] {
            let action = node
                .action
                .as_deref()
                .ok_or_else(|| mismatch(node, "a missing action"))?;
            let out = session.step(action).map_err(|e| {
                anyhow!(
                    "task {} node {}: step failed on replay: {e}",
                    task.index,
                    node.id
                )
            })?;
            report.steps_executed += 1;
            check_node(session, node, &out.observation)?;
            if out.reward.to_bits() != node.reward.to_bits() {
                return Err(mismatch(node, "the reward"));
            }
            if (out.terminated, out.truncated, out.success(), out.dead_end())
                != (
                    node.terminated,
                    node.truncated,
                    node.success,
                    node.dead_end.clone(),
                )
            {
                return Err(mismatch(node, "the episode flags"));
            }
        }
        for n in &path {
            checked[n.id as usize] = true;
        }
        report.branches += 1;
    }
    report.nodes_checked += checked.iter().filter(|c| **c).count();
    Ok(())
}

fn check_node(session: &mut dyn EnvInstance, node: &Node, observation: &str) -> Result<()> {
    if sha256_hex(observation.as_bytes()) != node.obs_sha256 {
        return Err(mismatch(node, "the observation hash"));
    }
    if observation != node.observation {
        return Err(mismatch(node, "the observation text"));
    }
    if let Some(recorded) = &node.snapshot {
        let bytes = session.snapshot().map_err(|e| {
            anyhow!(
                "task {} node {}: snapshot failed on replay: {e}",
                node.task,
                node.id
            )
        })?;
        if &sha256_hex(&bytes) != recorded {
            return Err(mismatch(node, "the snapshot hash"));
        }
    }
    Ok(())
}
