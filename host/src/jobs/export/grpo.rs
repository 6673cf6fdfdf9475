//! `--data grpo`: a `--method group` run's rollouts, every step with the
//! model's sampled answer as the target and the rollout's group-relative
//! advantage as the record weight.

use super::record::{Shape, TaskOrigin, TaskTree, Writer, trajectory};
use super::{ExportTarget, GroupStats};
use crate::tree::Node;
use crate::tree::path::leaves;
use anyhow::Result;

/// One task's group: its statistics counted, and its records unless every
/// rollout scored the same (no signal).
pub(super) fn write_task(
    out: &mut Writer,
    tree: &mut TaskTree,
    shape: &Shape,
    origin: TaskOrigin,
) -> Result<()> {
    // The sampled answers are what the policy gradient is of.
    let sampled = Shape {
        target: ExportTarget::Answer,
        ..shape.clone()
    };
    let ends = leaves(tree.nodes);
    let (rewards, advantages) = advantages(&ends);
    let stats = out.summary.groups.get_or_insert_with(GroupStats::default);
    stats.groups += 1;
    stats.rollouts += ends.len();
    stats.successes += ends.iter().filter(|n| n.success).count();
    stats.mean_reward += rewards.iter().sum::<f64>();
    let Some(advantages) = advantages else {
        stats.without_signal += 1;
        return Ok(());
    };
    for (leaf, advantage) in ends.iter().zip(advantages) {
        trajectory(out, tree, &sampled, origin, leaf.id, "grpo", advantage)?;
    }
    Ok(())
}

/// The outcome reward of each rollout (`leaves`), and their advantages
/// relative to the group: (r - mean) / std, or `None` when all are equal.
fn advantages(leaves: &[&Node]) -> (Vec<f64>, Option<Vec<f64>>) {
    let rewards: Vec<f64> = leaves
        .iter()
        .map(|n| f64::from(u8::from(n.success)))
        .collect();
    let n = rewards.len() as f64;
    let mean = rewards.iter().sum::<f64>() / n;
    let std = (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    let adv = (std > 1e-9).then(|| rewards.iter().map(|r| (r - mean) / std).collect());
    (rewards, adv)
}
