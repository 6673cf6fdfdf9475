//! Policies choose the next action. A policy is one file in this folder
//! implementing [`Policy`], and one arm in [`spec`], the one place that
//! names and builds every policy.

pub mod human;
pub mod llm;
pub mod oracle;
pub mod spec;

use super::Context;
use anyhow::Result;

/// Chooses actions.
pub trait Policy: Send {
    /// Whether [`Context::expert`] should be filled in.
    fn needs_expert(&self) -> bool {
        false
    }
    fn act(&mut self, ctx: &Context) -> Result<String>;
}
