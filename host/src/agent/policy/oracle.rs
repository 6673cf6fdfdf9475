//! The environment's expert as a policy: `reference` plays its answer as
//! it is; `oracle` plays it with a `noise` chance of a random admissible
//! move, which makes the mistakes backtracking exists to repair, and honours
//! experiences: an action an experience rejected in a state is not taken
//! there again.

use super::{Decision, Policy};
use crate::agent::Context;
use crate::util::rng::SplitMix;
use anyhow::{Result, bail};

/// The expert's answer, without noise and without exploring.
pub struct Reference;

impl Policy for Reference {
    fn needs_expert(&self) -> bool {
        true
    }

    fn act(&mut self, ctx: &Context) -> Result<Decision> {
        match &ctx.expert {
            Some(answer) => Ok(answer.clone().into()),
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

impl Oracle {
    /// The expert with a `noise` chance of a random admissible move.
    pub fn new(noise: f64, rng: SplitMix) -> Oracle {
        Oracle { noise, rng }
    }
}

impl Policy for Oracle {
    fn needs_expert(&self) -> bool {
        true
    }

    fn act(&mut self, ctx: &Context) -> Result<Decision> {
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
            (Some(a), true) => Ok(a.clone().into()),
            (Some(a), false) if roll >= self.noise => Ok(a.clone().into()),
            (_, false) => Ok(allowed[(pick % allowed.len() as u64) as usize]
                .clone()
                .into()),
            (None, true) => bail!(
                "the oracle has nothing to play: environment '{}' gives no expert action and no \
                 admissible actions here",
                ctx.info.name
            ),
        }
    }
}
