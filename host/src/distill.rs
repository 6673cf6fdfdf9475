//! Distillation data from a branch tree: every correction (the context at
//! the branch point *without* the experience, the rejected action, the
//! revised one, and whether the revised branch then succeeded) and every
//! successful trajectory. One JSON object per line in `distill.jsonl`.

use crate::tree::Node;
use serde::Serialize;

#[derive(Serialize)]
pub struct Turn<'a> {
    pub observation: &'a str,
    pub action: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DistillRecord<'a> {
    Correction {
        env: &'a str,
        task: u32,
        /// The first node of the revised branch, and its parent (the branch point).
        node: u32,
        branch_point: u32,
        /// Root to the branch point: the observations seen and actions taken.
        history: Vec<Turn<'a>>,
        observation: &'a str,
        rejected: Option<&'a str>,
        revised: &'a str,
        /// For reference only: a model is trained without it.
        experience: &'a str,
        branch_succeeded: bool,
    },
    Trajectory {
        env: &'a str,
        task: u32,
        node: u32,
        steps: Vec<Turn<'a>>,
        /// The final observation.
        observation: &'a str,
        #[serde(rename = "return")]
        total_reward: f64,
    },
}

/// Root to node `id` (ids are indices into `nodes`).
pub(crate) fn ancestors(nodes: &[Node], id: u32) -> Vec<&Node> {
    let mut path = vec![&nodes[id as usize]];
    let mut at = id;
    while let Some(p) = nodes[at as usize].parent {
        path.push(&nodes[p as usize]);
        at = p;
    }
    path.reverse();
    path
}

/// Whether node `id` lies on the path to any of the `successes`.
pub(crate) fn on_success_path(nodes: &[Node], id: u32, successes: &[u32]) -> bool {
    successes.iter().any(|&s| {
        let mut at = Some(s);
        while let Some(n) = at {
            if n == id {
                return true;
            }
            at = nodes[n as usize].parent;
        }
        false
    })
}

fn turns<'a>(path: &[&'a Node]) -> Vec<Turn<'a>> {
    path.windows(2)
        .map(|w| Turn {
            observation: &w[0].observation,
            action: w[1].action.as_deref().unwrap_or(""),
        })
        .collect()
}

/// The records of one task's nodes (ids are indices).
pub fn task_records<'a>(env: &'a str, nodes: &'a [Node]) -> Vec<DistillRecord<'a>> {
    let successes: Vec<&Node> = nodes.iter().filter(|n| n.success).collect();
    let success_ids: Vec<u32> = successes.iter().map(|n| n.id).collect();
    let mut out = Vec::new();
    for n in nodes.iter().filter(|n| n.experience.is_some()) {
        let Some(parent) = n.parent else { continue };
        let history = ancestors(nodes, parent);
        out.push(DistillRecord::Correction {
            env,
            task: n.task,
            node: n.id,
            branch_point: parent,
            history: turns(&history),
            observation: &nodes[parent as usize].observation,
            rejected: n.rejected.as_deref(),
            revised: n.action.as_deref().unwrap_or(""),
            experience: n.experience.as_deref().unwrap_or(""),
            branch_succeeded: on_success_path(nodes, n.id, &success_ids),
        });
    }
    for s in successes {
        let path = ancestors(nodes, s.id);
        out.push(DistillRecord::Trajectory {
            env,
            task: s.task,
            node: s.id,
            steps: turns(&path),
            observation: &s.observation,
            total_reward: path.iter().map(|n| n.reward).sum(),
        });
    }
    out
}
