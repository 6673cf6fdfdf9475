//! Policies choose the next action. Built in: `oracle`, the environment's
//! expert (`expert-action`) with a `noise` chance of a random admissible move,
//! which makes the mistakes backtracking exists to repair. It honours
//! experiences: an action an experience rejected in a state is not taken
//! there again.

use crate::component::EnvInfo;
use crate::llm::ChatClient;
use crate::llm_policy::{OpenAiPolicy, PromptConfig};
use crate::reflect::Experience;
use crate::rng::SplitMix;
use crate::tree::Node;
use anyhow::{Result, bail};
use std::sync::Arc;

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

/// Chooses actions.
pub trait Policy: Send {
    /// Whether [`Context::expert`] should be filled in.
    fn needs_expert(&self) -> bool {
        false
    }
    fn act(&mut self, ctx: &Context) -> Result<String>;
}

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
    pub fn usage(&self) -> Option<crate::llm::UsageTotals> {
        match self {
            PolicySpec::OpenAi { client, .. } => Some(client.totals()),
            _ => None,
        }
    }

    /// The policy for one task; its randomness depends on `seed` and the task only.
    pub fn build(&self, seed: u64, task: u32) -> Box<dyn Policy> {
        match self {
            PolicySpec::Oracle { noise } => Box::new(Oracle {
                noise: *noise,
                rng: SplitMix::derive(seed, &[u64::from(task)]),
            }),
            PolicySpec::Reference => Box::new(Reference),
            PolicySpec::Human => Box::new(Human),
            PolicySpec::OpenAi { client, prompt } => Box::new(OpenAiPolicy {
                client: client.clone(),
                prompt: prompt.clone(),
                rng: SplitMix::derive(seed, &[u64::from(task), 7]),
            }),
        }
    }
}

/// The person at the terminal.
pub struct Human;

impl Policy for Human {
    fn act(&mut self, ctx: &Context) -> Result<String> {
        use std::io::{BufRead, Write};
        let mut err = std::io::stderr().lock();
        let here = ctx.current();
        writeln!(err, "\n{}", here.observation)?;
        for e in ctx.experiences {
            writeln!(err, "lesson: {}", e.text)?;
        }
        match &ctx.admissible {
            Some(actions) if actions.len() > 20 => writeln!(
                err,
                "actions: {}, ... ({} in all)",
                actions[..20].join(", "),
                actions.len()
            )?,
            Some(actions) => writeln!(err, "actions: {}", actions.join(", "))?,
            None => {}
        }
        write!(err, "> ")?;
        err.flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            bail!("standard input ended: the human policy has no more actions");
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// The expert's answer, without noise and without exploring.
pub struct Reference;

impl Policy for Reference {
    fn needs_expert(&self) -> bool {
        true
    }

    fn act(&mut self, ctx: &Context) -> Result<String> {
        match &ctx.expert {
            Some(answer) => Ok(answer.clone()),
            None => bail!(
                "environment '{}' has no reference answer here (the reference policy needs \
                 the environment's expert-action)",
                ctx.info.name
            ),
        }
    }
}

/// The expert, with noise.
pub struct Oracle {
    noise: f64,
    rng: SplitMix,
}

impl Policy for Oracle {
    fn needs_expert(&self) -> bool {
        true
    }

    fn act(&mut self, ctx: &Context) -> Result<String> {
        let admissible: Vec<&String> = ctx.admissible.iter().flatten().collect();
        let mut rejected = ctx.rejected_here();
        // Lessons are advice: when they rule out every move, they are set aside.
        let all_rejected = |r: &[&str]| {
            !admissible.is_empty() && admissible.iter().all(|a| r.contains(&a.as_str()))
        };
        if all_rejected(&rejected) {
            rejected.clear();
        }
        let allowed: Vec<&String> = admissible
            .iter()
            .copied()
            .filter(|a| !rejected.contains(&a.as_str()))
            .collect();
        // Draw every time, so one choice does not shift the later ones.
        let roll = self.rng.unit();
        let pick = self.rng.next_u64();
        let expert = ctx
            .expert
            .as_ref()
            .filter(|a| !rejected.contains(&a.as_str()));
        match (expert, allowed.is_empty()) {
            (Some(a), true) => Ok(a.clone()),
            (Some(a), false) if roll >= self.noise => Ok(a.clone()),
            (_, false) => Ok(allowed[(pick % allowed.len() as u64) as usize].clone()),
            (None, true) => bail!(
                "the oracle has nothing to play: environment '{}' gives no expert action and no \
                 admissible actions here",
                ctx.info.name
            ),
        }
    }
}
