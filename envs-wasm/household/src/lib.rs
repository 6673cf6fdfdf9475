//! `household`: an ALFWorld-style home, as a leafe environment.
//!
//! Each task is a procedurally generated room (seeded from the task) with
//! numbered receptacles (`countertop 1`, `drawer 3`, `fridge 1`; the
//! openable ones closed at the start) and objects placed where they can go,
//! and one of ALFWorld's six goals: pick and place; clean, heat or cool then
//! place; examine in light; pick two and place. Commands, feedback and the
//! list of admissible commands follow ALFWorld's text engine (`go to`,
//! `open`, `close`, `take X from Y`, `put X in/on Y`, `clean/heat/cool X
//! with Y`, `use X`, `examine X`, `inventory`, `look`; anything else is
//! `Nothing happens.`). Reward 1 on success. The expert plans from the true
//! state; a task that can no longer be finished within the steps left is a
//! dead end.

mod catalog;
mod world;

use leafe_guest::{EnvError, EnvInfo, Environment, Step, Task};
use world::World;

/// The episode: the world and the step count.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Household {
    world: World,
    steps: u32,
    max_steps: u32,
}

/// Steps per episode unless the task says otherwise (ALFWorld's 50).
const MAX_STEPS: u32 = 50;

const ACTION_HINT: &str = "A household (ALFWorld): reach the goal stated after \"Your task \
is to:\". Answer with one command: go to X, open X, close X, take X from Y, put X in/on Y, \
clean X with Y, heat X with Y, cool X with Y, use X, examine X, inventory or look, where X and \
Y are numbered names such as `apple 1` or `countertop 2`. Anything else: Nothing happens.";

impl Environment for Household {
    const OPTIONS: &'static [&'static str] = &["grammar"];

    fn info() -> EnvInfo {
        EnvInfo::new("household", "0.1.0", ACTION_HINT)
            .split("train", world::TRAIN)
            .split("valid_seen", world::VALID_SEEN)
            .split("valid_unseen", world::VALID_UNSEEN)
            .max_steps(MAX_STEPS)
    }

    fn reset(task: &Task) -> Result<(Self, String), EnvError> {
        let new_grammar = match task.option("grammar").unwrap_or("old") {
            "old" => false,
            "new" => true,
            other => {
                return Err(EnvError::BadTask(format!(
                    "option grammar={other}: expected old (put X in/on Y) or new (move X to Y)"
                )));
            }
        };
        let max_steps = task.option_or("max-steps", MAX_STEPS)?;
        let world = World::generate(task, new_grammar)?;
        let first = world.intro();
        Ok((
            Household {
                world,
                steps: 0,
                max_steps,
            },
            first,
        ))
    }

    fn step(&mut self, action: &str) -> Step {
        self.steps += 1;
        let Some(feedback) = self.world.apply(action) else {
            return Step::new("Nothing happens.", 0.0).invalid_action();
        };
        if self.world.won() {
            return Step::new(feedback, 1.0).terminated().success(true);
        }
        let step = Step::new(feedback, 0.0);
        let left = self.max_steps.saturating_sub(self.steps);
        match self.world.plan_length(left + 1) {
            Some(needed) if needed <= left => step,
            _ => step.dead_end(format!(
                "the task needs more than the {left} steps left to finish"
            )),
        }
    }

    fn admissible_actions(&self) -> Option<Vec<String>> {
        Some(self.world.admissible())
    }

    fn expert_action(&self) -> Option<String> {
        self.world.expert()
    }
}

leafe_guest::export_environment!(Household);

#[cfg(test)]
mod tests;
