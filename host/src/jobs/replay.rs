//! `leafe-host replay DIR`: re-execute every branch of a recorded tree from
//! (component, task, seed, actions) alone, in fresh instances, and check
//! every observation, reward, flag and snapshot hash against the log.

use crate::component::{self, EnvComponent};
use crate::engine::Runtime;
use crate::session::{Session, Task};
use crate::tree::{self, Header, Node, Record};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
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
        let task = Task {
            split: header.split.clone(),
            index: *index,
            seed: header.seed,
            options: header.options.clone(),
        };
        replay_task(&env, &task, nodes, &mut report)?;
    }
    Ok(report)
}

/// A finished run: its header, its component (checked to be the one the
/// run used) and its nodes by task.
pub struct OpenRun {
    pub header: Header,
    pub env: Arc<EnvComponent>,
    pub by_task: BTreeMap<u32, Vec<Node>>,
}

pub fn open_run(runtime: &Arc<Runtime>, dir: &Path, env_override: Option<&str>) -> Result<OpenRun> {
    let path = dir.join(crate::run::TREE);
    let log = tree::read(&path)?;
    if log.torn_tail {
        bail!(
            "{} ends with a torn line (an interrupted run): finish it with `leafe-host run --resume`",
            path.display()
        );
    }
    let header = log.header().context("the log has no header")?.clone();
    let env = component::load(runtime, env_override.unwrap_or(&header.env))?;
    if env.sha256 != header.component_sha256 {
        bail!(
            "component {} has sha256 {}, but the run used {}: replay needs the same component",
            env.source.spec(),
            env.sha256,
            header.component_sha256
        );
    }
    let mut by_task: BTreeMap<u32, Vec<Node>> = BTreeMap::new();
    for record in &log.records {
        if let Record::Node(n) = record {
            by_task.entry(n.task).or_default().push(n.clone());
        }
    }
    Ok(OpenRun {
        header,
        env,
        by_task,
    })
}

fn mismatch(node: &Node, what: &str) -> anyhow::Error {
    anyhow!(
        "task {} node {}: {what} differs from the log",
        node.task,
        node.id
    )
}

fn replay_task(
    env: &Arc<EnvComponent>,
    task: &Task,
    nodes: &[Node],
    report: &mut ReplayReport,
) -> Result<()> {
    for (i, n) in nodes.iter().enumerate() {
        if n.id as usize != i
            || n.parent.is_some_and(|p| p >= n.id)
            || (i > 0) != n.parent.is_some()
        {
            bail!(
                "task {} node {}: ids and parents are out of order",
                task.index,
                n.id
            );
        }
    }
    let mut has_child = vec![false; nodes.len()];
    for n in nodes {
        if let Some(p) = n.parent {
            has_child[p as usize] = true;
        }
    }
    let mut checked = vec![false; nodes.len()];
    for leaf in nodes.iter().filter(|n| !has_child[n.id as usize]) {
        let path = crate::distill::ancestors(nodes, leaf.id);
        let mut session = Session::new(env, task.seed).map_err(|e| anyhow!("{e}"))?;
        let first = session
            .reset(task)
            .map_err(|e| anyhow!("task {}: reset failed: {e}", task.index))?;
        check_node(&mut session, path[0], &first)?;
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
            check_node(&mut session, node, &out.observation)?;
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

fn check_node(session: &mut Session, node: &Node, observation: &str) -> Result<()> {
    if crate::sha256_hex(observation.as_bytes()) != node.obs_sha256 {
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
        if &crate::sha256_hex(&bytes) != recorded {
            return Err(mismatch(node, "the snapshot hash"));
        }
    }
    Ok(())
}
