//! The LEAFE loop and its extension points: the explorer, policies (which
//! act), reflectors (which turn a failed rollout into an experience), and
//! the prompts a model policy is asked with. Works over any [`EnvInstance`]:
//! a wasm session, a remote one, or an in-process environment in tests.

pub mod explore;
pub mod policy;
pub mod prompt;
pub mod reflect;

pub use crate::env::instance::EnvInstance;

use crate::env::contract::EnvInfo;
use crate::tree::Node;

/// A lesson and where it applies.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Experience {
    /// The node to go back to.
    pub node: u32,
    /// The observation hash of that state (a lesson holds wherever the same
    /// state comes back).
    pub obs_sha256: String,
    /// The action not to take again in that state.
    pub avoid: Option<String>,
    /// The lesson, in words, for a model's prompt.
    pub text: String,
}

impl Experience {
    /// A lesson that is advice only: no state to go back to, no action ruled
    /// out (refinement's lessons, and corrections exported with their lesson).
    pub fn advice(text: String) -> Experience {
        Experience {
            node: 0,
            obs_sha256: String::new(),
            avoid: None,
            text,
        }
    }
}

/// What a policy sees when it acts.
pub struct Context<'a> {
    pub info: &'a EnvInfo,
    /// Root to current state; the last node is the current state.
    pub path: &'a [&'a Node],
    /// The lessons in force on this rollout, oldest first.
    pub experiences: &'a [Experience],
    pub admissible: Option<Vec<String>>,
    /// Filled in for policies that ask for it ([`Policy::needs_expert`]).
    pub expert: Option<String>,
}

impl Context<'_> {
    pub fn current(&self) -> &Node {
        self.path
            .last()
            .expect("a context always has the current state")
    }

    /// Actions the experiences forbid in the current state.
    pub fn rejected_here(&self) -> Vec<&str> {
        let here = &self.current().obs_sha256;
        self.experiences
            .iter()
            .filter(|e| &e.obs_sha256 == here)
            .filter_map(|e| e.avoid.as_deref())
            .collect()
    }
}
