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
    fn act(&mut self, ctx: &Context) -> Result<Decision>;
}

/// An action chosen, and the model's whole answer it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub action: String,
    /// The answer as the model gave it (reasoning and action); `None` for
    /// policies that only name an action.
    pub answer: Option<String>,
}

impl From<String> for Decision {
    fn from(action: String) -> Decision {
        Decision {
            action,
            answer: None,
        }
    }
}
