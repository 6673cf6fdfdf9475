//! The one place that names every policy and builds it for a task.

use super::Policy;
use super::human::Human;
use super::llm::OpenAiPolicy;
use super::oracle::{Oracle, Reference};
use crate::agent::prompt::PromptConfig;
use crate::llm::{ChatClient, UsageTotals};
use crate::util::rng::SplitMix;
use anyhow::{Result, bail};
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

impl PolicySpec {
    pub fn parse(name: &str, noise: f64) -> Result<PolicySpec> {
        if !(0.0..=1.0).contains(&noise) {
            bail!("--noise must be between 0 and 1, got {noise}");
        }
        match name {
            "oracle" => Ok(PolicySpec::Oracle { noise }),
            "reference" => Ok(PolicySpec::Reference),
            "human" => Ok(PolicySpec::Human),
            "openai" => bail!("the openai policy needs --base-url and --model"),
            other => {
                bail!("unknown policy '{other}' (available: oracle, reference, human, openai)")
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            PolicySpec::Oracle { .. } => "oracle",
            PolicySpec::Reference => "reference",
            PolicySpec::Human => "human",
            PolicySpec::OpenAi { .. } => "openai",
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
