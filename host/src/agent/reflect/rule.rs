//! The rule-based reflector reads the environment's own feedback:
//! 1. a dead end (`info["dead-end"]`, e.g. a sokoban deadlock): go back to
//!    the state before the step that caused it and reject that action there;
//! 2. a terminal failure: go back one step and reject the last action;
//! 3. running out of steps: go back to the last state that made progress
//!    (positive reward), or the start, and reject what was tried from there;
//! 4. mid-rollout (`--reflect-every K`): when none of the last K steps
//!    brought a positive reward, go back to where they began and reject the
//!    first of them, quoting the feedback they ended with.

use super::Reflector;
use crate::agent::Experience;
use crate::tree::Node;

/// The rule-based reflector described in the module docs.
#[derive(Default)]
pub struct RuleReflector;

fn lesson(back_to: &Node, bad: &Node, text: String) -> Experience {
    Experience {
        node: back_to.id,
        obs_sha256: back_to.obs_sha256.clone(),
        avoid: bad.action.clone(),
        text,
    }
}

impl Reflector for RuleReflector {
    fn reflect(&mut self, path: &[&Node]) -> Option<Experience> {
        if path.len() < 2 {
            return None;
        }
        // Step numbers count actions from the task start (the root is step 0).
        if let Some(t) = path
            .iter()
            .position(|n| n.dead_end.is_some())
            .filter(|t| *t > 0)
        {
            let (before, bad) = (path[t - 1], path[t]);
            let action = bad.action.as_deref().unwrap_or("?");
            let why = bad.dead_end.as_deref().unwrap_or("a dead end");
            return Some(lesson(
                before,
                bad,
                format!(
                    "At step {t}, '{action}' led to a dead end: {why}. Go back to the state \
                     after step {} and do not play '{action}' there.",
                    t - 1
                ),
            ));
        }
        let last = path.len() - 1;
        let leaf = path[last];
        if leaf.terminated && !leaf.success {
            let action = leaf.action.as_deref().unwrap_or("?");
            return Some(lesson(
                path[last - 1],
                leaf,
                format!(
                    "At step {last}, '{action}' ended the episode without success. Go back to \
                     the state after step {} and try something else.",
                    last - 1
                ),
            ));
        }
        let progress = path
            .iter()
            .rposition(|n| n.reward > 0.0)
            .unwrap_or(0)
            .min(last - 1);
        let next = path[progress + 1];
        let action = next.action.as_deref().unwrap_or("?");
        let since = if progress == 0 {
            "from the start".to_string()
        } else {
            format!("after step {progress}")
        };
        Some(lesson(
            path[progress],
            next,
            format!(
                "The rollout made no progress {since} and ran out of steps ({} wasted). Go back \
                 there and do not begin with '{action}' again.",
                last - progress
            ),
        ))
    }

    fn check(&mut self, path: &[&Node], window: usize) -> Option<Experience> {
        RuleReflector::stalled(path, window)
    }
}

impl RuleReflector {
    /// Rule 4: the window's steps made no progress.
    fn stalled(path: &[&Node], window: usize) -> Option<Experience> {
        let last = path.len().checked_sub(1)?;
        if window == 0 || window > last {
            return None;
        }
        let first = last + 1 - window;
        if path[first..].iter().any(|n| n.reward > 0.0) {
            return None;
        }
        let (start, next) = (path[first - 1], path[first]);
        let action = next.action.as_deref().unwrap_or("?");
        let feedback = leafe_judge::clip(path[last].observation.trim(), 200);
        Some(lesson(
            start,
            next,
            format!(
                "Steps {first} to {last} brought no reward; the last feedback was: {feedback} \
                 Go back to the state after step {} and do not play '{action}' there.",
                first - 1
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, action: Option<&str>, reward: f64) -> Node {
        Node {
            id,
            parent: id.checked_sub(1),
            action: action.map(str::to_string),
            observation: format!("obs{id}"),
            obs_sha256: format!("h{id}"),
            reward,
            ..Node::root(0, String::new())
        }
    }

    #[test]
    fn dead_end_goes_back_before_the_bad_step() {
        let mut nodes = vec![
            node(0, None, 0.0),
            node(1, Some("up"), -0.1),
            node(2, Some("left"), -0.1),
        ];
        nodes[2].dead_end = Some("the box at r2c2 is in a corner".into());
        let mut later = node(3, Some("down"), -0.1);
        later.dead_end = nodes[2].dead_end.clone();
        nodes.push(later);
        let path: Vec<&Node> = nodes.iter().collect();
        let e = RuleReflector.reflect(&path).unwrap();
        assert_eq!(
            (e.node, e.avoid.as_deref(), e.obs_sha256.as_str()),
            (1, Some("left"), "h1")
        );
        assert!(
            e.text.contains("step 2") && e.text.contains("corner"),
            "{}",
            e.text
        );
    }

    #[test]
    fn terminal_failure_goes_back_one_step() {
        let mut nodes = [
            node(0, None, 0.0),
            node(1, Some("a"), 0.0),
            node(2, Some("b"), 0.0),
        ];
        nodes[2].terminated = true;
        let path: Vec<&Node> = nodes.iter().collect();
        let e = RuleReflector.reflect(&path).unwrap();
        assert_eq!((e.node, e.avoid.as_deref()), (1, Some("b")));
    }

    #[test]
    fn truncation_goes_back_to_the_last_progress() {
        let mut nodes = vec![
            node(0, None, 0.0),
            node(1, Some("a"), 0.9),
            node(2, Some("b"), -0.1),
        ];
        nodes.push(node(3, Some("c"), -0.1));
        nodes[3].truncated = true;
        let path: Vec<&Node> = nodes.iter().collect();
        let e = RuleReflector.reflect(&path).unwrap();
        assert_eq!((e.node, e.avoid.as_deref()), (1, Some("b")));
        assert!(RuleReflector.reflect(&path[..1]).is_none());
    }

    #[test]
    fn a_stalled_window_goes_back_to_its_start_quoting_the_feedback() {
        let mut nodes = vec![node(0, None, 0.0), node(1, Some("a"), 0.9)];
        for (id, action) in [(2, "b"), (3, "c"), (4, "d")] {
            nodes.push(node(id, Some(action), -0.1));
        }
        nodes[4].observation = "You hit a wall.".into();
        let path: Vec<&Node> = nodes.iter().collect();
        let e = RuleReflector.check(&path, 3).unwrap();
        assert_eq!((e.node, e.avoid.as_deref()), (1, Some("b")));
        assert!(
            e.text.contains("Steps 2 to 4 brought no reward")
                && e.text.contains("You hit a wall.")
                && e.text.contains("do not play 'b'"),
            "{}",
            e.text
        );
        // A window with progress in it, or longer than the path: go on.
        assert!(RuleReflector.check(&path, 4).is_none());
        assert!(RuleReflector.check(&path, 5).is_none());
        assert!(RuleReflector.check(&path, 0).is_none());
    }
}
