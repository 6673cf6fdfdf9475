//! The one place that turns a policy's name into the policy and builds
//! it for a task (the names are [`PolicyName`], which runs record).

use super::Policy;
use super::human::Human;
use super::llm::OpenAiPolicy;
use super::oracle::{Oracle, Reference};
use crate::agent::prompt::PromptConfig;
use crate::llm::{ChatClient, UsageTotals};
use crate::tree::PolicyName;
use crate::util::rng::SplitMix;
use crate::util::setting::check_range;
use anyhow::Result;
use std::sync::Arc;

/// Which policy to build for each task.
#[derive(Clone)]
pub enum PolicySpec {
    Oracle {
        noise: f64,
    },
    /// The environment's expert answer as it is: for the code benchmarks,
    /// the dataset's reference solution.
    Reference,
    /// The person at the terminal: sees each observation (and the lessons)
    /// on stderr and types the action on stdin.
    Human,
    /// A model behind an OpenAI-compatible endpoint, one client for all tasks.
    OpenAi {
        client: Arc<ChatClient>,
        prompt: Arc<PromptConfig>,
    },
}

impl std::fmt::Debug for PolicySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySpec::Oracle { noise } => write!(f, "oracle (noise {noise})"),
            PolicySpec::Reference => write!(f, "reference"),
            PolicySpec::Human => write!(f, "human"),
            PolicySpec::OpenAi { client, .. } => write!(
                f,
                "openai ({} at {})",
                client.config.model, client.config.base_url
            ),
        }
    }
}

/// What the model policy asks with.
pub struct ModelPolicy {
    pub client: Arc<ChatClient>,
    pub prompt: Arc<PromptConfig>,
}

impl PolicySpec {
    /// The policy called `name` (see [`PolicyName`]); `noise` is the
    /// oracle's. `model` makes the model policy's client and prompt, and is
    /// called for `openai` only.
    pub fn parse(
        name: &str,
        noise: f64,
        model: impl FnOnce() -> Result<ModelPolicy>,
    ) -> Result<PolicySpec> {
        check_range("noise", noise, 0.0, 1.0)?;
        Ok(match PolicyName::parse(name)? {
            PolicyName::Oracle => PolicySpec::Oracle { noise },
            PolicyName::Reference => PolicySpec::Reference,
            PolicyName::Human => PolicySpec::Human,
            PolicyName::OpenAi => {
                let ModelPolicy { client, prompt } = model()?;
                PolicySpec::OpenAi { client, prompt }
            }
        })
    }

    pub fn name(&self) -> PolicyName {
        match self {
            PolicySpec::Oracle { .. } => PolicyName::Oracle,
            PolicySpec::Reference => PolicyName::Reference,
            PolicySpec::Human => PolicyName::Human,
            PolicySpec::OpenAi { .. } => PolicyName::OpenAi,
        }
    }

    /// A model policy's request and token counts so far.
    pub fn usage(&self) -> Option<UsageTotals> {
        match self {
            PolicySpec::OpenAi { client, .. } => Some(client.totals()),
            _ => None,
        }
    }

    /// The policy for one task; its randomness depends on `seed` and the task only.
    pub fn build(&self, seed: u64, task: u32) -> Box<dyn Policy> {
        match self {
            PolicySpec::Oracle { noise } => Box::new(Oracle::new(
                *noise,
                SplitMix::derive(seed, &[u64::from(task)]),
            )),
            PolicySpec::Reference => Box::new(Reference),
            PolicySpec::Human => Box::new(Human),
            PolicySpec::OpenAi { client, prompt } => Box::new(OpenAiPolicy {
                client: client.clone(),
                prompt: prompt.clone(),
                rng: SplitMix::derive(seed, &[u64::from(task), 7]),
            }),
        }
    }

    /// The prompt a model policy asks with.
    pub fn prompt(&self) -> Option<&PromptConfig> {
        match self {
            PolicySpec::OpenAi { prompt, .. } => Some(prompt),
            _ => None,
        }
    }

    /// The oracle's noise (0 for every other policy), as the log records it.
    pub fn noise(&self) -> f64 {
        match self {
            PolicySpec::Oracle { noise } => *noise,
            PolicySpec::Reference | PolicySpec::Human | PolicySpec::OpenAi { .. } => 0.0,
        }
    }
}
