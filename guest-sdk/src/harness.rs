//! [`Harness`]: runs an [`Environment`] with the contract's semantics. The
//! export macro puts one inside the component; tests use it natively.

use crate::{EnvError, Environment, MAX_STEPS_OPTION, Task, snapshot};
use serde::{Deserialize, Serialize};

/// The outcome of a step as the host sees it (see `step-result` in the WIT).
#[derive(Clone, Debug, PartialEq)]
pub struct StepResult {
    /// What the agent sees now.
    pub observation: String,
    /// The step's reward.
    pub reward: f64,
    /// The episode ended for good.
    pub terminated: bool,
    /// The step limit was reached.
    pub truncated: bool,
    /// A JSON object (keys sorted).
    pub info: String,
}

impl StepResult {
    /// `info` parsed.
    pub fn info_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.info).unwrap_or(serde_json::Value::Null)
    }
}

/// Everything a snapshot holds: the task, the step counter and the state.
#[derive(Serialize, Deserialize)]
#[serde(bound = "E: Environment")]
struct Episode<E> {
    task: Task,
    max_steps: u32,
    steps: u32,
    over: bool,
    env: E,
}

/// One environment instance with the contract's semantics: task checks,
/// step counting and truncation, snapshot/restore.
pub struct Harness<E: Environment> {
    episode: Option<Episode<E>>,
}

impl<E: Environment> Default for Harness<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Environment> Harness<E> {
    /// A harness with no episode yet.
    pub fn new() -> Self {
        Harness { episode: None }
    }

    /// The environment's info.
    pub fn info(&self) -> crate::EnvInfo {
        E::info()
    }

    fn check_task(task: &Task) -> Result<u32, EnvError> {
        let info = E::info();
        let Some((_, count)) = info.splits.iter().find(|(name, _)| *name == task.split) else {
            let names: Vec<&str> = info.splits.iter().map(|(n, _)| n.as_str()).collect();
            return Err(EnvError::BadTask(format!(
                "unknown split '{}' (this environment has: {})",
                task.split,
                names.join(", ")
            )));
        };
        if task.index >= *count {
            return Err(EnvError::BadTask(format!(
                "index {} is out of range: split '{}' has {count} tasks",
                task.index, task.split
            )));
        }
        for (key, _) in &task.options {
            if key != MAX_STEPS_OPTION && !E::OPTIONS.contains(&key.as_str()) {
                let mut known: Vec<&str> = E::OPTIONS.to_vec();
                known.push(MAX_STEPS_OPTION);
                return Err(EnvError::BadTask(format!(
                    "unknown option '{key}' (known: {})",
                    known.join(", ")
                )));
            }
        }
        let max_steps = task.option_or(MAX_STEPS_OPTION, info.max_steps)?;
        if max_steps == 0 {
            return Err(EnvError::BadTask("max-steps must be at least 1".into()));
        }
        Ok(max_steps)
    }

    /// Start an episode; returns the first observation. On error the
    /// previous episode, if any, is kept.
    pub fn reset(&mut self, task: &Task) -> Result<String, EnvError> {
        let max_steps = Self::check_task(task)?;
        let (env, observation) = E::reset(task)?;
        self.episode = Some(Episode {
            task: task.clone(),
            max_steps,
            steps: 0,
            over: false,
            env,
        });
        Ok(observation)
    }

    /// Apply one action.
    pub fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        let ep = self.episode.as_mut().ok_or(EnvError::NotStarted)?;
        if ep.over {
            return Err(EnvError::BadState(
                "the episode is over: reset or restore an earlier state".into(),
            ));
        }
        let step = ep.env.step(action);
        ep.steps += 1;
        let truncated = !step.terminated && ep.steps >= ep.max_steps;
        ep.over = step.terminated || truncated;
        let info = serde_json::to_string(&step.info)
            .map_err(|e| EnvError::Internal(format!("cannot encode info: {e}")))?;
        Ok(StepResult {
            observation: step.observation,
            reward: step.reward,
            terminated: step.terminated,
            truncated,
            info,
        })
    }

    /// Steps taken in this episode.
    pub fn steps(&self) -> Option<u32> {
        self.episode.as_ref().map(|e| e.steps)
    }

    /// The running episode's state, for white-box tests.
    pub fn env(&self) -> Option<&E> {
        self.episode.as_ref().map(|e| &e.env)
    }

    /// Valid actions now; `Some(empty)` once the episode is over.
    pub fn admissible_actions(&self) -> Option<Vec<String>> {
        let ep = self.episode.as_ref()?;
        if ep.over {
            Some(Vec::new())
        } else {
            ep.env.admissible_actions()
        }
    }

    /// The expert's next action, if the episode is running and there is one.
    pub fn expert_action(&self) -> Option<String> {
        let ep = self.episode.as_ref()?;
        if ep.over {
            None
        } else {
            ep.env.expert_action()
        }
    }

    /// The episode as snapshot bytes.
    pub fn snapshot(&self) -> Result<Vec<u8>, EnvError> {
        let ep = self.episode.as_ref().ok_or(EnvError::NotStarted)?;
        let info = E::info();
        snapshot::encode(&info.name, &info.version, ep).map_err(EnvError::Internal)
    }

    /// Continue from snapshot bytes. On error the current episode is kept.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), EnvError> {
        let info = E::info();
        let ep: Episode<E> =
            snapshot::decode(&info.name, &info.version, bytes).map_err(EnvError::BadState)?;
        self.episode = Some(ep);
        Ok(())
    }
}
