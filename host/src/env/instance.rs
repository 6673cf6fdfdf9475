//! What the explorer needs of an environment: the contract's calls on one
//! live instance. A wasm [`Session`] is one; a session on a remote server
//! ([`super::remote`]) another; an in-process environment (the guest SDK's
//! `Harness`, in tests) a third, which is how the LEAFE loop is tested
//! without wasm.

use super::contract::{StepResult, Task};
use super::session::{Session, SessionError};

/// One live environment instance with snapshot and restore.
pub trait EnvInstance {
    /// Start the episode of `task`; returns the first observation.
    fn reset(&mut self, task: &Task) -> Result<String, SessionError>;
    /// Apply one action.
    fn step(&mut self, action: &str) -> Result<StepResult, SessionError>;
    fn admissible_actions(&mut self) -> Result<Option<Vec<String>>, SessionError>;
    fn expert_action(&mut self) -> Result<Option<String>, SessionError>;
    /// The episode state as opaque bytes.
    fn snapshot(&mut self) -> Result<Vec<u8>, SessionError>;
    /// Continue from `state`.
    fn restore(&mut self, state: &[u8]) -> Result<(), SessionError>;
    /// Whether an earlier failure ended the instance (only a restore revives it).
    fn is_dead(&self) -> bool {
        false
    }
    /// Whether a restore is a reset and a replay of the actions since
    /// (an environment without snapshots of its own). The explorer then
    /// snapshots only the start and replays, counts and checks every step
    /// back itself.
    fn restores_by_replay(&self) -> bool {
        false
    }
}

impl EnvInstance for Session {
    fn reset(&mut self, task: &Task) -> Result<String, SessionError> {
        Session::reset(self, task)
    }
    fn step(&mut self, action: &str) -> Result<StepResult, SessionError> {
        Session::step(self, action)
    }
    fn admissible_actions(&mut self) -> Result<Option<Vec<String>>, SessionError> {
        Session::admissible_actions(self)
    }
    fn expert_action(&mut self) -> Result<Option<String>, SessionError> {
        Session::expert_action(self)
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, SessionError> {
        Session::snapshot(self)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), SessionError> {
        Session::restore(self, state)
    }
    fn is_dead(&self) -> bool {
        Session::is_dead(self)
    }
}
