//! `--data leafe`: LEAFE's L_cf corrections (the prompt at a branch point
//! whose revised branch succeeded or improved, the lessons' text left out,
//! and the revised action) and L_reh rehearsal (every step of the chosen
//! successful trajectories, weighted by `beta`).

use super::ExportArgs;
use super::record::{ChatRecord, Shape, TaskOrigin, TaskTree, Writer, trajectory};
use crate::agent::Experience;
use crate::tree::path::{corrections, same_action_revisions};
use anyhow::Result;

/// One task's records: its corrections, then the rehearsal of its
/// trajectories ending at `rehearsed` (leaf nodes).
pub(super) fn write_task(
    out: &mut Writer,
    tree: &mut TaskTree,
    shape: &Shape,
    origin: TaskOrigin,
    args: &ExportArgs,
    rehearsed: &[u32],
) -> Result<()> {
    let nodes = tree.nodes;
    out.summary.same_action_dropped += same_action_revisions(nodes);
    for n in corrections(nodes, args.cf_from).take(args.cf_per_task) {
        let path = tree.path(n.parent.unwrap_or(0));
        let shown: Vec<Experience> = n
            .lessons_shown()
            .into_iter()
            .map(Experience::advice)
            .collect();
        out.push(&ChatRecord {
            chat: tree.prompt(shape, &path, n, &shown, args.keep_experience)?,
            weight: 1.0,
            kind: "cf",
            source: origin.at(n.id),
        })?;
    }
    for &leaf in rehearsed {
        trajectory(out, tree, shape, origin, leaf, "reh", args.beta)?;
    }
    Ok(())
}
