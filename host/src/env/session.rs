//! A session: one live environment instance, with every call into it
//! guarded by fuel, an epoch deadline and memory/output caps.
//!
//! A guest that traps, runs out of fuel or time, or exceeds a cap ends its
//! instance with a [`GuestFailure`]; the session then refuses further calls
//! until it is restored from a snapshot, which takes a *fresh* instance, so
//! nothing of the failed one survives. Other sessions are unaffected.

use super::bindings::Env;
use super::bindings::leafe::env::types as wit;
use super::component::EnvComponent;
use super::contract::{EnvError, EnvInfo, StepResult, Task};
use super::runtime::Runtime;
use crate::wasm::guest::{CallClock, GuestState};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Store, Trap};

/// How a guest instance died.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuestFailure {
    #[error("ran out of fuel ({0} units per call)")]
    OutOfFuel(u64),
    #[error("ran past its wall-clock limit of {0} ms")]
    Timeout(u64),
    #[error("exceeded its memory limit of {limit} bytes (asked for {asked})")]
    MemoryLimit { limit: usize, asked: usize },
    #[error("wrote more than {0} bytes to {1}")]
    OutputLimit(usize, &'static str),
    #[error("overflowed its stack (too deep a recursion)")]
    StackOverflow,
    #[error("exited with status {0}")]
    Exit(i32),
    #[error("trapped: {0}")]
    Trap(String),
}

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("the environment {0}")]
    Guest(GuestFailure),
    #[error("the environment instance failed earlier ({0}); restore a snapshot to go on")]
    Dead(String),
    #[error("cannot instantiate the environment: {0}")]
    Instantiate(String),
    /// A remote environment's server stopped answering (or lost the session).
    #[error("the environment server stopped answering ({0})")]
    Remote(String),
}

impl From<wit::EnvError> for SessionError {
    fn from(e: wit::EnvError) -> Self {
        SessionError::Env(e.into())
    }
}

/// Counters of the work a session did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub calls: u64,
    pub fuel: u64,
    pub instantiations: u64,
}

/// One instance: its store and its bindings.
pub struct Instance {
    store: Store<GuestState>,
    env: Env,
}

impl Instance {
    pub fn new(component: &EnvComponent, seed: u64) -> Result<Instance, SessionError> {
        let mut store = component
            .new_store(seed)
            .map_err(|e| SessionError::Instantiate(e.to_string()))?;
        let env = component
            .pre
            .instantiate(&mut store)
            .map_err(|e| SessionError::Instantiate(format!("{e:#}")))?;
        Ok(Instance { store, env })
    }

    /// Run `f` against the guest under the runtime's limits.
    fn guarded<R>(
        &mut self,
        runtime: &Runtime,
        stats: Option<&mut SessionStats>,
        f: impl FnOnce(&Env, &mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, GuestFailure> {
        let limits = runtime.limits;
        let store = &mut self.store;
        store
            .set_fuel(limits.fuel_per_call)
            .map_err(|e| GuestFailure::Trap(e.to_string()))?;
        store.data_mut().call = CallClock::start(Duration::from_millis(limits.wall_ms_per_call));
        store.set_epoch_deadline(1);
        let result = f(&self.env, store);
        if let Some(stats) = stats {
            stats.calls += 1;
            stats.fuel += limits.fuel_per_call - store.get_fuel().unwrap_or(0);
        }
        result.map_err(|e| classify(e, store, runtime))
    }

    pub fn info(&mut self, runtime: &Runtime) -> Result<EnvInfo, SessionError> {
        let i = self
            .guarded(runtime, None, |env, s| {
                env.leafe_env_environment().call_info(s)
            })
            .map_err(SessionError::Guest)?;
        Ok(EnvInfo {
            name: i.name,
            version: i.version,
            splits: i.splits,
            max_steps: i.max_steps,
            action_hint: i.action_hint,
        })
    }
}

/// Turn a failed call into the reason, as precisely as we can tell.
fn classify(e: wasmtime::Error, store: &Store<GuestState>, runtime: &Runtime) -> GuestFailure {
    let limits = runtime.limits;
    if let Some(asked) = store.data().limiter.denied {
        return GuestFailure::MemoryLimit {
            limit: limits.memory_bytes,
            asked,
        };
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        match trap {
            Trap::OutOfFuel => return GuestFailure::OutOfFuel(limits.fuel_per_call),
            Trap::Interrupt => return GuestFailure::Timeout(limits.wall_ms_per_call),
            Trap::StackOverflow => return GuestFailure::StackOverflow,
            // Rust and C guests keep their own stack at the bottom of linear
            // memory: overflowing it runs off the start of memory.
            Trap::MemoryOutOfBounds => {
                return GuestFailure::Trap(
                    "memory access out of bounds (a stack overflow in the guest's own stack, \
                     or a bug)"
                        .into(),
                );
            }
            _ => {}
        }
    }
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return GuestFailure::Exit(exit.0);
    }
    // A full pipe refuses writes: the guest traps or panics on the refusal.
    let data = store.data();
    for (pipe, name) in [(&data.stdout, "stdout"), (&data.stderr, "stderr")] {
        if pipe.contents().len() >= limits.output_bytes {
            return GuestFailure::OutputLimit(limits.output_bytes, name);
        }
    }
    // A panicking Rust guest prints its message to stderr before trapping.
    let stderr = store.data().stderr.contents();
    let tail = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(600)..]);
    // The root cause says what happened; the outer layers are backtrace context.
    let first_line = match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{}", e.root_cause()),
    };
    if tail.trim().is_empty() {
        GuestFailure::Trap(first_line)
    } else {
        GuestFailure::Trap(format!("{first_line}; stderr: {}", tail.trim()))
    }
}

/// One live environment instance with snapshot/restore.
pub struct Session {
    component: Arc<EnvComponent>,
    seed: u64,
    instance: Instance,
    dead: Option<String>,
    pub stats: SessionStats,
}

impl Session {
    /// A fresh instance; `seed` seeds its WASI randomness.
    pub fn new(component: &Arc<EnvComponent>, seed: u64) -> Result<Session, SessionError> {
        let instance = Instance::new(component, seed)?;
        Ok(Session {
            component: component.clone(),
            seed,
            instance,
            dead: None,
            stats: SessionStats {
                instantiations: 1,
                ..Default::default()
            },
        })
    }

    pub fn component(&self) -> &Arc<EnvComponent> {
        &self.component
    }

    /// Whether an earlier failure ended the instance.
    pub fn is_dead(&self) -> bool {
        self.dead.is_some()
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&Env, &mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, SessionError> {
        if let Some(why) = &self.dead {
            return Err(SessionError::Dead(why.clone()));
        }
        let runtime = self.component.runtime.clone();
        self.instance
            .guarded(&runtime, Some(&mut self.stats), f)
            .map_err(|failure| {
                self.dead = Some(failure.to_string());
                SessionError::Guest(failure)
            })
    }

    /// Start the episode of `task`; returns the first observation.
    pub fn reset(&mut self, task: &Task) -> Result<String, SessionError> {
        let t = wit::Task {
            split: task.split.clone(),
            index: task.index,
            seed: task.seed,
            options: task.options.clone(),
        };
        Ok(self.call(|env, s| env.leafe_env_environment().call_reset(s, &t))??)
    }

    /// Apply one action.
    pub fn step(&mut self, action: &str) -> Result<StepResult, SessionError> {
        let r = self.call(|env, s| env.leafe_env_environment().call_step(s, action))??;
        // A reward the log could not hold (JSON has no NaN or infinity) is
        // the environment's fault, reported on this step.
        if !r.reward.is_finite() {
            return Err(SessionError::Env(EnvError::Internal(format!(
                "the environment returned a non-finite reward ({}) for action {action:?}",
                r.reward
            ))));
        }
        Ok(StepResult::new(
            r.observation,
            r.reward,
            r.terminated,
            r.truncated,
            &r.info,
        ))
    }

    pub fn admissible_actions(&mut self) -> Result<Option<Vec<String>>, SessionError> {
        self.call(|env, s| env.leafe_env_environment().call_admissible_actions(s))
    }

    pub fn expert_action(&mut self) -> Result<Option<String>, SessionError> {
        self.call(|env, s| env.leafe_env_environment().call_expert_action(s))
    }

    /// The episode state as opaque bytes.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, SessionError> {
        Ok(self.call(|env, s| env.leafe_env_environment().call_snapshot(s))??)
    }

    /// Continue from `state` in a fresh instance. On any error the current
    /// instance (dead or alive) is kept as it was.
    pub fn restore(&mut self, state: &[u8]) -> Result<(), SessionError> {
        let mut fresh = Instance::new(&self.component, self.seed)?;
        self.stats.instantiations += 1;
        let runtime = self.component.runtime.clone();
        let outcome = fresh
            .guarded(&runtime, Some(&mut self.stats), |env, s| {
                env.leafe_env_environment().call_restore(s, state)
            })
            .map_err(SessionError::Guest)?;
        outcome?;
        self.instance = fresh;
        self.dead = None;
        Ok(())
    }
}
