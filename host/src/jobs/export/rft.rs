//! `--data rft`: rejection-sampling fine-tuning, every step of every
//! successful trajectory (the baseline trained on `sample` runs).

use super::record::{Shape, TaskOrigin, TaskTree, Writer, trajectory};
use anyhow::Result;

/// One task's records.
pub(super) fn write_task(
    out: &mut Writer,
    tree: &mut TaskTree,
    shape: &Shape,
    origin: TaskOrigin,
) -> Result<()> {
    let successes: Vec<u32> = tree
        .nodes
        .iter()
        .filter(|n| n.success)
        .map(|n| n.id)
        .collect();
    for leaf in successes {
        trajectory(out, tree, shape, origin, leaf, "rft", 1.0)?;
    }
    Ok(())
}
