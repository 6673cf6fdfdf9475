//! The one place that names every reflector and builds it for a task.

use super::Reflector;
use super::llm::LlmReflector;
use super::rule::RuleReflector;
use crate::env::contract::EnvInfo;
use crate::llm::ChatClient;
use crate::util::rng::SplitMix;
use std::sync::Arc;

/// Which reflector to build for each task.
#[derive(Clone)]
pub enum ReflectorSpec {
    Rule,
    /// The model behind an OpenAI-compatible endpoint.
    Llm(Arc<ChatClient>),
}

impl std::fmt::Debug for ReflectorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl ReflectorSpec {
    pub fn name(&self) -> &'static str {
        match self {
            ReflectorSpec::Rule => "rule",
            ReflectorSpec::Llm(_) => "llm",
        }
    }

    pub fn build(&self, info: &EnvInfo, seed: u64, task: u32) -> Box<dyn Reflector> {
        match self {
            ReflectorSpec::Rule => Box::new(RuleReflector),
            ReflectorSpec::Llm(client) => Box::new(LlmReflector {
                client: client.clone(),
                info: info.clone(),
                seed: SplitMix::derive(seed, &[u64::from(task), 11]).next_u64(),
            }),
        }
    }
}
