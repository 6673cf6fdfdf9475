//! The `openai` policy: a model behind an OpenAI-compatible endpoint, asked
//! with the prompts of [`crate::agent::prompt`]. An answer with no
//! recognisable action is passed on as it is, so the environment answers it
//! with format feedback, which costs a step like any action, instead of a
//! crash.

use super::{Decision, Policy};
use crate::agent::Context;
use crate::agent::prompt::{PromptConfig, messages, parse_action};
use crate::llm::ChatClient;
use crate::util::rng::SplitMix;
use anyhow::Result;
use std::sync::Arc;

/// The model as a policy.
pub struct OpenAiPolicy {
    pub client: Arc<ChatClient>,
    pub prompt: Arc<PromptConfig>,
    /// Seeds each request (for servers that honour `seed`).
    pub rng: SplitMix,
}

impl Policy for OpenAiPolicy {
    fn act(&mut self, ctx: &Context) -> Result<Decision> {
        let messages = messages(&self.prompt, ctx);
        let seed = self.rng.next_u64() >> 1;
        let answers = self
            .client
            .complete(&messages, 1, Some(seed))
            .map_err(anyhow::Error::from)?;
        let answer = answers.into_iter().next().unwrap_or_default();
        Ok(Decision {
            action: parse_action(&answer, ctx.admissible.as_deref()),
            answer: Some(answer),
        })
    }
}
