//! The types of the environment contract (`wit/leafe-env.wit`) as the host
//! sees them: an environment's description, a task, a step's outcome and the
//! errors an environment may return.

use super::bindings::leafe::env::types as wit;
use anyhow::{Result, anyhow};

/// The environment's static description (from its `info` export).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnvInfo {
    pub name: String,
    pub version: String,
    pub splits: Vec<(String, u32)>,
    pub max_steps: u32,
    pub action_hint: String,
}

impl EnvInfo {
    /// The number of tasks in `split`, or an error naming the splits there are.
    pub fn split_len(&self, split: &str) -> Result<u32> {
        self.splits
            .iter()
            .find(|(s, _)| s == split)
            .map(|(_, n)| *n)
            .ok_or_else(|| {
                let names: Vec<&str> = self.splits.iter().map(|(s, _)| s.as_str()).collect();
                anyhow!(
                    "environment '{}' has no split '{split}' (splits: {})",
                    self.name,
                    names.join(", ")
                )
            })
    }
}

/// An error the environment itself returned (see `env-error` in the WIT).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("bad task: {0}")]
    BadTask(String),
    #[error("bad state: {0}")]
    BadState(String),
    #[error("no episode started (reset or restore first)")]
    NotStarted,
    #[error("environment error: {0}")]
    Internal(String),
}

impl From<wit::EnvError> for EnvError {
    fn from(e: wit::EnvError) -> Self {
        match e {
            wit::EnvError::BadTask(m) => EnvError::BadTask(m),
            wit::EnvError::BadState(m) => EnvError::BadState(m),
            wit::EnvError::NotStarted => EnvError::NotStarted,
            wit::EnvError::Internal(m) => EnvError::Internal(m),
        }
    }
}

/// The outcome of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepResult {
    pub observation: String,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    /// The JSON `info` object, parsed (a non-object becomes `{}`).
    pub info: serde_json::Map<String, serde_json::Value>,
}

impl StepResult {
    /// A step's outcome with `info` as the contract sends it: JSON text,
    /// parsed (a non-object becomes `{}`).
    pub fn new(
        observation: String,
        reward: f64,
        terminated: bool,
        truncated: bool,
        info: &str,
    ) -> StepResult {
        let info = match serde_json::from_str::<serde_json::Value>(info) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        StepResult {
            observation,
            reward,
            terminated,
            truncated,
            info,
        }
    }

    /// `info.success`.
    pub fn success(&self) -> bool {
        self.info
            .get("success")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }
    /// `info.dead-end`.
    pub fn dead_end(&self) -> Option<String> {
        self.info.get("dead-end").map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// The task handed to `reset`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub split: String,
    pub index: u32,
    pub seed: u64,
    pub options: Vec<(String, String)>,
}

impl Task {
    /// Task `index` of `split`.
    pub fn new(split: &str, index: u32, seed: u64, options: &[(String, String)]) -> Task {
        Task {
            split: split.to_string(),
            index,
            seed,
            options: options.to_vec(),
        }
    }
}
