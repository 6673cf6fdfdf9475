//! Guess the number: the smallest complete leafe environment.
//!
//! A secret number in 1..=100 (option `max` sets the top) is drawn from the
//! task; each action is a guess and the feedback says "higher" or "lower". Copy this file to start your own
//! environment (see "Write your own environment" in the README).

use leafe_guest::{EnvError, EnvInfo, Environment, Rng, Step, Task};
use serde::{Deserialize, Serialize};

/// The whole episode state: it is what a snapshot stores.
#[derive(Serialize, Deserialize)]
pub struct Guess {
    secret: u32,
    /// The largest number allowed.
    top: u32,
    /// The range the secret is known to lie in, from the feedback so far.
    low: u32,
    high: u32,
}

/// The largest secret unless the task says otherwise.
const DEFAULT_MAX: u32 = 100;

impl Environment for Guess {
    const OPTIONS: &'static [&'static str] = &["max"];

    fn info() -> EnvInfo {
        EnvInfo::new(
            "guess",
            "0.1.0",
            "Guess the secret whole number (between 1 and 100 unless told otherwise). Answer \
             with the number alone, e.g. `50`. After each guess you are told to go higher or \
             lower.",
        )
        .split("train", 1000)
        .split("test", 100)
        .max_steps(10)
    }

    fn reset(task: &Task) -> Result<(Self, String), EnvError> {
        let max: u32 = task.option_or("max", DEFAULT_MAX)?;
        if !(2..=1_000_000).contains(&max) {
            return Err(EnvError::BadTask(format!(
                "option max={max}: must be 2 to 1000000"
            )));
        }
        let secret = Rng::for_task(task).range_inclusive(1, u64::from(max)) as u32;
        let state = Guess {
            secret,
            top: max,
            low: 1,
            high: max,
        };
        Ok((
            state,
            format!("I am thinking of a number between 1 and {max}."),
        ))
    }

    fn step(&mut self, action: &str) -> Step {
        let Ok(guess) = action
            .trim()
            .trim_start_matches("guess")
            .trim()
            .parse::<u32>()
        else {
            return Step::new(format!("'{action}' is not a number."), -0.1).invalid_action();
        };
        if guess == self.secret {
            return Step::new(format!("{guess} is right!"), 1.0)
                .terminated()
                .success(true);
        }
        let hint = if guess < self.secret {
            self.low = self.low.max(guess + 1);
            "higher"
        } else {
            self.high = self.high.min(guess.saturating_sub(1));
            "lower"
        };
        Step::new(format!("{guess} is wrong: go {hint}."), -0.1)
    }

    /// Every number that may be guessed (at most the first 100 of them
    /// listed: a prompt cannot hold a million).
    fn admissible_actions(&self) -> Option<Vec<String>> {
        Some(
            (1..=self.top.min(100))
                .map(|n: u32| n.to_string())
                .collect(),
        )
    }

    /// Binary search over what the feedback has ruled out.
    fn expert_action(&self) -> Option<String> {
        Some(((self.low + self.high) / 2).to_string())
    }
}

leafe_guest::export_environment!(Guess);

#[cfg(test)]
mod tests {
    use super::*;
    use leafe_guest::Harness;

    fn started(index: u32) -> Harness<Guess> {
        let mut h = Harness::new();
        h.reset(&Task::new("test", index, 0)).unwrap();
        h
    }

    #[test]
    fn expert_finds_the_secret_within_the_limit() {
        for index in 0..100 {
            let mut h = started(index);
            let mut last = None;
            while let Some(action) = h.expert_action() {
                last = Some(h.step(&action).unwrap());
            }
            let last = last.unwrap();
            assert!(last.terminated, "task {index}: {last:?}");
            assert_eq!(last.info_json()["success"], true);
        }
    }

    #[test]
    fn feedback_points_the_right_way_and_nonsense_is_feedback() {
        let mut h = started(3);
        let secret = h.env().unwrap().secret;
        let out = h.step("0").unwrap();
        assert!(out.observation.contains("higher"));
        let out = h.step("101").unwrap();
        assert!(out.observation.contains("lower"));
        let out = h.step("banana").unwrap();
        assert_eq!(out.info_json()["invalid-action"], true);
        assert!(h.step(&format!("guess {secret}")).unwrap().terminated);
    }

    #[test]
    fn the_range_is_an_option() {
        let mut h = Harness::<Guess>::new();
        let first = h
            .reset(&Task::new("test", 5, 0).with_option("max", "4"))
            .unwrap();
        assert_eq!(first, "I am thinking of a number between 1 and 4.");
        assert!((1..=4).contains(&h.env().unwrap().secret));
        assert_eq!(h.admissible_actions().unwrap(), ["1", "2", "3", "4"]);
        for bad in ["1", "x", "2000000"] {
            let task = Task::new("test", 5, 0).with_option("max", bad);
            assert!(Harness::<Guess>::new().reset(&task).is_err(), "max={bad}");
        }
    }

    #[test]
    fn truncated_after_max_steps() {
        let mut h = started(0);
        for i in 0..10 {
            let out = h.step("0").unwrap();
            assert_eq!(out.truncated, i == 9);
        }
        assert!(h.step("0").is_err());
    }

    #[test]
    fn snapshot_round_trip_and_bad_bytes() {
        let mut h = started(5);
        h.step("50").unwrap();
        let snap = h.snapshot().unwrap();
        let mut other = Harness::<Guess>::new();
        other.restore(&snap).unwrap();
        assert_eq!(other.step("20").unwrap(), h.step("20").unwrap());
        assert!(matches!(
            other.restore(b"nonsense"),
            Err(EnvError::BadState(_))
        ));
    }

    #[test]
    fn bad_tasks_are_rejected() {
        let mut h = Harness::<Guess>::new();
        assert!(matches!(
            h.reset(&Task::new("dev", 0, 0)),
            Err(EnvError::BadTask(_))
        ));
        assert!(matches!(
            h.reset(&Task::new("test", 100, 0)),
            Err(EnvError::BadTask(_))
        ));
        let odd = Task::new("test", 0, 0).with_option("colour", "red");
        assert!(matches!(h.reset(&odd), Err(EnvError::BadTask(_))));
        assert!(matches!(h.step("1"), Err(EnvError::NotStarted)));
    }
}
