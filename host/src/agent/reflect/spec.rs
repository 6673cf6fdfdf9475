//! The one place that turns a reflector's name into the reflector and
//! builds it for a task (the names are [`ReflectorName`], which runs record).

use super::Reflector;
use super::llm::{LlmReflector, ReflectionCounts, ReflectionStats};
use super::rule::RuleReflector;
use crate::env::contract::EnvInfo;
use crate::llm::ChatClient;
use crate::tree::ReflectorName;
use crate::util::rng::SplitMix;
use anyhow::Result;
use std::sync::Arc;

/// Which reflector to build for each task.
#[derive(Clone)]
pub enum ReflectorSpec {
    Rule,
    /// The model behind an OpenAI-compatible endpoint, and how its
    /// reflections went.
    Llm(Arc<ChatClient>, Arc<ReflectionStats>),
}

impl std::fmt::Debug for ReflectorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name().as_str())
    }
}

impl ReflectorSpec {
    /// The reflector called `name` (see [`ReflectorName`]); `model` makes
    /// the model reflector's client, and is called for `llm` only.
    pub fn parse(
        name: &str,
        model: impl FnOnce() -> Result<Arc<ChatClient>>,
    ) -> Result<ReflectorSpec> {
        Ok(match ReflectorName::parse(name)? {
            ReflectorName::Rule => ReflectorSpec::Rule,
            ReflectorName::Llm => ReflectorSpec::llm(model()?),
        })
    }

    pub fn name(&self) -> ReflectorName {
        match self {
            ReflectorSpec::Rule => ReflectorName::Rule,
            ReflectorSpec::Llm(..) => ReflectorName::Llm,
        }
    }

    /// A model reflector over `client`, with fresh counts.
    pub fn llm(client: Arc<ChatClient>) -> ReflectorSpec {
        ReflectorSpec::Llm(client, Arc::default())
    }

    /// How the model's reflections went so far (`None` for the rules).
    pub fn counts(&self) -> Option<ReflectionCounts> {
        match self {
            ReflectorSpec::Rule => None,
            ReflectorSpec::Llm(_, stats) => Some(stats.counts()),
        }
    }

    pub fn build(&self, info: &EnvInfo, seed: u64, task: u32) -> Box<dyn Reflector> {
        match self {
            ReflectorSpec::Rule => Box::new(RuleReflector),
            ReflectorSpec::Llm(client, stats) => Box::new(LlmReflector {
                client: client.clone(),
                stats: stats.clone(),
                info: info.clone(),
                seed: SplitMix::derive(seed, &[u64::from(task), 11]).next_u64(),
            }),
        }
    }
}
