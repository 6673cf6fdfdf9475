//! Paths through one task's tree. Node ids are indices into the task's
//! nodes, and every parent comes before its child (checked by
//! [`super::log::read`] for logs read back, and true by construction for a
//! tree being explored).

use super::Node;

/// Root to node `id`.
pub fn ancestors(nodes: &[Node], id: u32) -> Vec<&Node> {
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
pub fn on_success_path(nodes: &[Node], id: u32, successes: &[u32]) -> bool {
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

/// The nodes with no children: the ends of the task's rollouts.
pub fn leaves(nodes: &[Node]) -> Vec<&Node> {
    let mut has_child = vec![false; nodes.len()];
    for n in nodes {
        if let Some(p) = n.parent {
            has_child[p as usize] = true;
        }
    }
    nodes.iter().filter(|n| !has_child[n.id as usize]).collect()
}

/// Which revised branches count as corrections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum CorrectionCriterion {
    /// The revised branch leads to a success.
    #[default]
    Success,
    /// The revised branch reached a higher step reward than the branch it
    /// replaced (a success counts above any reward), even without success.
    Improved,
}

/// Whether a revised node chose the very action its lesson rejected: no
/// correction at all, whatever followed.
pub fn repeats_rejected(n: &Node) -> bool {
    n.rejected.is_some() && n.action == n.rejected
}

/// The revised branches of a task (a node reached by the action a lesson
/// led to) that repeat the rejected action: not corrections, only counted.
pub fn same_action_revisions(nodes: &[Node]) -> usize {
    revisions(nodes).filter(|n| repeats_rejected(n)).count()
}

fn revisions(nodes: &[Node]) -> impl Iterator<Item = &Node> {
    nodes
        .iter()
        .filter(|n| n.experience.is_some() && n.parent.is_some())
}

/// The corrections of a task under `criterion`: revised branches whose
/// action differs from the rejected one and that lead to a success (or, for
/// [`CorrectionCriterion::Improved`], beat the branch they replaced). This
/// is the one definition `export` trains on and `run`'s summary counts.
pub fn corrections(nodes: &[Node], criterion: CorrectionCriterion) -> impl Iterator<Item = &Node> {
    let successes: Vec<u32> = nodes.iter().filter(|n| n.success).map(|n| n.id).collect();
    revisions(nodes)
        .filter(|n| !repeats_rejected(n))
        .filter(move |n| match criterion {
            CorrectionCriterion::Success => on_success_path(nodes, n.id, &successes),
            CorrectionCriterion::Improved => improves(nodes, n),
        })
}

/// How far a branch got: whether it succeeded somewhere, then the highest
/// step reward reached in it.
fn best_outcome(nodes: &[Node], root: u32) -> (bool, f64) {
    let mut in_subtree = vec![false; nodes.len()];
    in_subtree[root as usize] = true;
    let mut best = (false, f64::NEG_INFINITY);
    // Parents come before children, so one pass in id order finds the subtree.
    for n in &nodes[root as usize..] {
        let inside = n.id == root || n.parent.is_some_and(|p| in_subtree[p as usize]);
        if inside {
            in_subtree[n.id as usize] = true;
            best.0 |= n.success;
            best.1 = best.1.max(n.reward);
        }
    }
    best
}

/// Whether revised node `n` beat the branch its lesson replaced: the first
/// child of the same state that took the rejected action. Without one (a
/// lesson that is advice only), success decides.
fn improves(nodes: &[Node], n: &Node) -> bool {
    let mine = best_outcome(nodes, n.id);
    let replaced = nodes.iter().find(|o| {
        o.id < n.id && o.parent == n.parent && o.action == n.rejected && n.rejected.is_some()
    });
    match replaced {
        None => mine.0,
        Some(old) => {
            let theirs = best_outcome(nodes, old.id);
            (mine.0 && !theirs.0) || (mine.0 == theirs.0 && mine.1 > theirs.1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node reached by `action` from `parent`, with `reward`.
    fn node(id: u32, parent: Option<u32>, action: &str, reward: f64) -> Node {
        Node {
            id,
            parent,
            action: parent.map(|_| action.to_string()),
            reward,
            ..Node::root(0, String::new())
        }
    }

    fn revised(mut n: Node, rejected: &str) -> Node {
        n.experience = Some("lesson".into());
        n.rejected = Some(rejected.into());
        n
    }

    fn ids<'a>(found: impl Iterator<Item = &'a Node>) -> Vec<u32> {
        found.map(|n| n.id).collect()
    }

    #[test]
    fn corrections_by_success_improvement_and_same_action() {
        // 0 -a-> 1 -b-> 2 (reward -1): rejected `b` at 1.
        // 1 -c-> 3 (reward 0.5): better, no success.
        // 1 -b-> 4: the rejected action again.
        // 0 -d-> 5 (reward -2), rejected `a` at 0; 5 -e-> 6 succeeds.
        let mut nodes = vec![
            node(0, None, "", 0.0),
            node(1, Some(0), "a", 0.0),
            node(2, Some(1), "b", -1.0),
            revised(node(3, Some(1), "c", 0.5), "b"),
            revised(node(4, Some(1), "b", 9.0), "b"),
            revised(node(5, Some(0), "d", -2.0), "a"),
            node(6, Some(5), "e", -3.0),
        ];
        nodes[6].success = true;
        assert_eq!(ids(corrections(&nodes, CorrectionCriterion::Success)), [5]);
        // Node 3 reached 0.5 against the replaced branch's best of -1; node 5
        // succeeded where the branch it replaced did not.
        assert_eq!(
            ids(corrections(&nodes, CorrectionCriterion::Improved)),
            [3, 5]
        );
        assert_eq!(same_action_revisions(&nodes), 1);
        assert!(repeats_rejected(&nodes[4]) && !repeats_rejected(&nodes[3]));
        // No better than what it replaced: not an improvement.
        nodes[3].reward = -1.0;
        assert_eq!(ids(corrections(&nodes, CorrectionCriterion::Improved)), [5]);
    }
}
