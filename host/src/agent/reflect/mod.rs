//! Reflection: turn a failed rollout into an *experience* — a short
//! actionable lesson — and the state to go back to. A reflector is one file
//! in this folder implementing [`Reflector`], and one arm in [`spec`], the
//! one place that names and builds every reflector.

pub mod llm;
pub mod rule;
pub mod spec;

use super::Experience;
use crate::tree::Node;

/// Decides where to go back to after a failed rollout.
pub trait Reflector: Send {
    /// `path` runs from the task's root to the failed rollout's last state.
    fn reflect(&mut self, path: &[&Node]) -> Option<Experience>;

    /// Mid-rollout (every K steps, `--reflect-every`): a lesson if a step so
    /// far was a mistake, `None` to go on. The last `window` nodes of `path`
    /// are the steps taken since the rollout began or was last checked.
    fn check(&mut self, _path: &[&Node], _window: usize) -> Option<Experience> {
        None
    }
}
