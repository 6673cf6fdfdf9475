//! A snapshot as it leaves the process: the component's state plus what
//! names the environment and the episode (the component's sha256, the task,
//! the last observation). Any process running the same component continues
//! it: a `serve` replica (`POST /sessions` with `state`), the Python
//! package's `restore`, the same process later.

use super::contract::Task;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// The format tag inside every saved state.
pub const FORMAT: &str = "leafe-session-state/1";

/// A snapshot with its envelope (JSON; the component's state in base64).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    pub format: String,
    /// The environment's name (its `info`).
    pub env: String,
    pub component_sha256: String,
    pub split: String,
    pub task: u32,
    pub seed: u64,
    pub options: Vec<(String, String)>,
    pub observation: String,
    /// The component's own snapshot, base64.
    state: String,
}

impl SavedState {
    pub fn new(
        env: &str,
        component_sha256: &str,
        task: &Task,
        observation: &str,
        state: &[u8],
    ) -> SavedState {
        SavedState {
            format: FORMAT.into(),
            env: env.into(),
            component_sha256: component_sha256.into(),
            split: task.split.clone(),
            task: task.index,
            seed: task.seed,
            options: task.options.clone(),
            observation: observation.into(),
            state: BASE64.encode(state),
        }
    }

    /// The envelope as bytes (JSON).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a saved state serialises")
    }

    /// Read an envelope; the error says why the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Result<SavedState, String> {
        let saved: SavedState =
            serde_json::from_slice(bytes).map_err(|e| format!("not a leafe snapshot: {e}"))?;
        if saved.format != FORMAT {
            return Err(format!("not a leafe snapshot: format '{}'", saved.format));
        }
        Ok(saved)
    }

    /// Refuse a snapshot of another environment or another build of it:
    /// `Err` says which one it is of and what runs here.
    pub fn check_component(&self, env: &str, component_sha256: &str) -> Result<(), String> {
        if self.env == env && self.component_sha256 == component_sha256 {
            return Ok(());
        }
        Err(format!(
            "the snapshot is of {} (component sha256 {}) but this is {env} ({component_sha256})",
            self.env, self.component_sha256
        ))
    }

    /// The component's own snapshot.
    pub fn state(&self) -> Result<Vec<u8>, String> {
        BASE64
            .decode(&self.state)
            .map_err(|e| format!("bad state: {e}"))
    }

    /// The episode's task.
    pub fn task(&self) -> Task {
        Task::new(&self.split, self.task, self.seed, &self.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_round_trips_and_bad_bytes_are_refused() {
        let task = Task::new("test", 3, 9, &[("size".into(), "8x8".into())]);
        let saved = SavedState::new("sokoban", "ab12", &task, "#P#", &[0, 1, 255]);
        let back = SavedState::decode(&saved.encode()).unwrap();
        assert_eq!(back, saved);
        assert_eq!(back.check_component("sokoban", "ab12"), Ok(()));
        for (env, sha) in [("sokoban", "cd34"), ("guess", "ab12")] {
            let refused = back.check_component(env, sha).unwrap_err();
            assert!(
                refused.contains("of sokoban (component sha256 ab12)") && refused.contains(sha),
                "{refused}"
            );
        }
        assert_eq!(back.task(), task);
        assert_eq!(back.state().unwrap(), vec![0, 1, 255]);
        assert!(
            SavedState::decode(b"garbage")
                .unwrap_err()
                .starts_with("not a leafe snapshot")
        );
        let other = String::from_utf8(saved.encode())
            .unwrap()
            .replace(FORMAT, "leafe-session-state/0");
        assert!(
            SavedState::decode(other.as_bytes())
                .unwrap_err()
                .contains("format")
        );
    }
}
