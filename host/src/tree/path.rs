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

/// The corrections of a task: revised branches (a node reached by the
/// action a lesson led to) that lie on the path to a success. This is the
/// one definition `export` trains on and `run`'s summary counts.
pub fn corrections(nodes: &[Node]) -> impl Iterator<Item = &Node> {
    let successes: Vec<u32> = nodes.iter().filter(|n| n.success).map(|n| n.id).collect();
    nodes
        .iter()
        .filter(|n| n.experience.is_some() && n.parent.is_some())
        .filter(move |n| on_success_path(nodes, n.id, &successes))
}
