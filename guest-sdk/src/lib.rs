//! # leafe-guest: write a leafe environment in plain Rust
//!
//! An environment is a struct holding the whole episode state. It derives
//! `Serialize + Deserialize` (that *is* its snapshot), implements
//! [`Environment`], and is exported as a WASI component with one macro:
//!
//! ```
//! use leafe_guest::{EnvInfo, EnvError, Environment, Rng, Step, Task};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Coin { heads: bool }
//!
//! impl Environment for Coin {
//!     fn info() -> EnvInfo {
//!         EnvInfo::new("coin", "0.1.0", "Say heads or tails.").split("test", 10).max_steps(3)
//!     }
//!     fn reset(task: &Task) -> Result<(Self, String), EnvError> {
//!         let heads = Rng::for_task(task).chance(0.5);
//!         Ok((Coin { heads }, "A coin was tossed. heads or tails?".into()))
//!     }
//!     fn step(&mut self, action: &str) -> Step {
//!         let right = (action.trim() == "heads") == self.heads;
//!         Step::new(if right { "Right!" } else { "Wrong." }, if right { 1.0 } else { 0.0 })
//!             .terminated()
//!             .success(right)
//!     }
//! }
//!
//! leafe_guest::export_environment!(Coin);
//! # fn main() {
//! # let mut h = leafe_guest::Harness::<Coin>::new();
//! # h.reset(&Task::new("test", 0, 0)).unwrap();
//! # assert!(h.step("heads").unwrap().terminated);
//! # }
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`: the `.wasm`
//! in `target/wasm32-wasip2/release/` is the component. Test it natively with
//! [`Harness`], which runs the environment exactly as the component does
//! (step counting, truncation, snapshots), with plain `cargo test`.
//!
//! What the SDK does for you:
//! - snapshot/restore: your struct, encoded with postcard inside a versioned,
//!   checksummed envelope ([`snapshot`]); foreign or corrupt bytes are a clear
//!   [`EnvError::BadState`], never a trap;
//! - the step limit: `truncated` is set after `max-steps` steps (the task
//!   option `max-steps` overrides [`EnvInfo::max_steps`]);
//! - task checks: unknown splits, out-of-range indices and unknown options are
//!   rejected before your `reset` runs;
//! - a deterministic, serialisable RNG ([`Rng`]);
//! - untrusted Python run by the host, one fresh sandboxed interpreter per
//!   call ([`sandbox::run_python`]; `envs-wasm/code` is the example).
//!
//! Keep the state deterministic: no `HashMap` iteration order, no clocks, no
//! host randomness; use [`Rng`] and ordered collections.

#![warn(missing_docs)]

// The generated bindings name this crate by its path, from inside it too.
extern crate self as leafe_guest;

mod harness;
pub mod rng;
pub mod sandbox;
pub mod snapshot;

pub use harness::{Harness, StepResult};
pub use rng::Rng;
pub use serde_json::{Map, Value, json};

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

/// Bindings generated from `wit/leafe-env.wit` (used by [`export_environment!`]).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "env",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_env_world",
        default_bindings_module: "leafe_guest::bindings",
        runtime_path: "leafe_guest::__private::wit_bindgen::rt",
    });
}

/// The option every environment accepts: override the episode length.
pub const MAX_STEPS_OPTION: &str = "max-steps";

/// Which episode to play (see `task` in the WIT contract).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    /// The split, e.g. `train` or `test`.
    pub split: String,
    /// The task's index within the split.
    pub index: u32,
    /// Randomness of the episode beyond the task itself.
    pub seed: u64,
    /// Environment-specific `key=value` options, in the order given.
    pub options: Vec<(String, String)>,
}

impl Task {
    /// A task without options.
    pub fn new(split: &str, index: u32, seed: u64) -> Self {
        Task {
            split: split.into(),
            index,
            seed,
            options: Vec::new(),
        }
    }

    /// Add an option (builder style).
    pub fn with_option(mut self, key: &str, value: &str) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// The value of option `key`, the last one given wins.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Option `key` parsed as `T`, or `default` when absent; a value that
    /// does not parse is a [`EnvError::BadTask`] naming the option.
    pub fn option_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, EnvError> {
        match self.option(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| EnvError::BadTask(format!("option {key}={v:?} is not valid"))),
        }
    }
}

/// Static description of an environment (see `env-info` in the WIT contract).
#[derive(Clone, Debug, PartialEq)]
pub struct EnvInfo {
    /// Short name, e.g. `sokoban`; snapshots carry it.
    pub name: String,
    /// Version of the environment; a snapshot only restores into the same one.
    pub version: String,
    /// Each split with its number of tasks.
    pub splits: Vec<(String, u32)>,
    /// Default episode length.
    pub max_steps: u32,
    /// The action grammar and observation legend, for a policy's prompt.
    pub action_hint: String,
}

impl EnvInfo {
    /// An environment with no splits yet and a default of 100 steps.
    pub fn new(name: &str, version: &str, action_hint: &str) -> Self {
        EnvInfo {
            name: name.into(),
            version: version.into(),
            splits: Vec::new(),
            max_steps: 100,
            action_hint: action_hint.into(),
        }
    }
    /// Add a split with `count` tasks.
    pub fn split(mut self, name: &str, count: u32) -> Self {
        self.splits.push((name.into(), count));
        self
    }
    /// Set the default episode length.
    pub fn max_steps(mut self, steps: u32) -> Self {
        self.max_steps = steps;
        self
    }
}

/// Errors an environment returns (see `env-error` in the WIT contract).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvError {
    /// Unknown split, index out of range, bad option.
    BadTask(String),
    /// Corrupt or foreign snapshot bytes, or a step after the episode ended.
    BadState(String),
    /// A call that needs an episode before `reset` or `restore`.
    NotStarted,
    /// Anything else that went wrong inside the environment.
    Internal(String),
}

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvError::BadTask(m) => write!(f, "bad task: {m}"),
            EnvError::BadState(m) => write!(f, "bad state: {m}"),
            EnvError::NotStarted => write!(f, "no episode: call reset or restore first"),
            EnvError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for EnvError {}

/// What one action did, as the environment reports it. The SDK adds the
/// step count and `truncated`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// What the agent sees now, including feedback on the action.
    pub observation: String,
    /// The benchmark's reward for this step.
    pub reward: f64,
    /// The episode ended for good (solved, or failed beyond repair).
    pub terminated: bool,
    /// Becomes the JSON `info` object; keys are sorted, so it is deterministic.
    pub info: Map<String, Value>,
}

impl Step {
    /// A non-terminal step.
    pub fn new(observation: impl Into<String>, reward: f64) -> Self {
        Step {
            observation: observation.into(),
            reward,
            terminated: false,
            info: Map::new(),
        }
    }
    /// Mark the episode as over.
    pub fn terminated(mut self) -> Self {
        self.terminated = true;
        self
    }
    /// Report the benchmark's success rule (`info.success`).
    pub fn success(self, success: bool) -> Self {
        self.with_info("success", Value::Bool(success))
    }
    /// Report that the task can no longer be solved, and why (`info.dead-end`).
    pub fn dead_end(self, why: impl Into<String>) -> Self {
        self.with_info("dead-end", Value::String(why.into()))
    }
    /// Report that the action was not understood (`info.invalid-action`).
    pub fn invalid_action(self) -> Self {
        self.with_info("invalid-action", Value::Bool(true))
    }
    /// Add any other info key.
    pub fn with_info(mut self, key: &str, value: Value) -> Self {
        self.info.insert(key.into(), value);
        self
    }
}

/// An environment: the whole episode state in one serialisable struct.
pub trait Environment: serde::Serialize + serde::de::DeserializeOwned + 'static {
    /// Task options this environment understands besides `max-steps`.
    const OPTIONS: &'static [&'static str] = &[];

    /// Name, version, splits, default episode length and action hint.
    fn info() -> EnvInfo;

    /// Start the episode for `task` (already checked against [`Environment::info`]
    /// and [`Environment::OPTIONS`]); returns the state and the first observation.
    fn reset(task: &Task) -> Result<(Self, String), EnvError>;

    /// Apply one action. Text you do not understand is feedback, not an error:
    /// return a [`Step`] that says so (see [`Step::invalid_action`]).
    fn step(&mut self, action: &str) -> Step;

    /// The actions valid now, if the environment can enumerate them.
    fn admissible_actions(&self) -> Option<Vec<String>> {
        None
    }

    /// The expert's next action (a solver or planner), if there is one.
    fn expert_action(&self) -> Option<String> {
        None
    }
}

/// Export `$env` (a type implementing [`Environment`]) as the component's
/// `leafe:env/environment` interface. Call it once, at the crate root.
#[macro_export]
macro_rules! export_environment {
    ($env:ty) => {
        const _: () = {
            use $crate::bindings::exports::leafe::env::environment as __wit;
            use $crate::bindings::leafe::env::types as __types;

            ::std::thread_local! {
                static HARNESS: ::std::cell::RefCell<$crate::Harness<$env>> =
                    ::std::cell::RefCell::new($crate::Harness::new());
            }

            struct LeafeExport;

            impl __wit::Guest for LeafeExport {
                fn info() -> __types::EnvInfo {
                    <$env as $crate::Environment>::info().into()
                }
                fn reset(task: __types::Task) -> Result<String, __types::EnvError> {
                    HARNESS
                        .with_borrow_mut(|h| h.reset(&task.into()))
                        .map_err(Into::into)
                }
                fn step(action: String) -> Result<__types::StepResult, __types::EnvError> {
                    HARNESS
                        .with_borrow_mut(|h| h.step(&action))
                        .map(Into::into)
                        .map_err(Into::into)
                }
                fn admissible_actions() -> Option<Vec<String>> {
                    HARNESS.with_borrow(|h| h.admissible_actions())
                }
                fn expert_action() -> Option<String> {
                    HARNESS.with_borrow(|h| h.expert_action())
                }
                fn snapshot() -> Result<Vec<u8>, __types::EnvError> {
                    HARNESS.with_borrow(|h| h.snapshot()).map_err(Into::into)
                }
                fn restore(state: Vec<u8>) -> Result<(), __types::EnvError> {
                    HARNESS
                        .with_borrow_mut(|h| h.restore(&state))
                        .map_err(Into::into)
                }
            }

            // Natively (unit tests) there is no component to export from, and
            // the export names are not valid native symbol names.
            #[cfg(target_arch = "wasm32")]
    $crate::bindings::__export_env_world!(LeafeExport with_types_in $crate::bindings);
        };
    };
}

mod convert {
    //! Between the SDK's types and the generated WIT bindings.
    use super::*;
    use crate::bindings::leafe::env::types as wit;

    impl From<wit::Task> for Task {
        fn from(t: wit::Task) -> Self {
            Task {
                split: t.split,
                index: t.index,
                seed: t.seed,
                options: t.options,
            }
        }
    }
    impl From<EnvInfo> for wit::EnvInfo {
        fn from(i: EnvInfo) -> Self {
            wit::EnvInfo {
                name: i.name,
                version: i.version,
                splits: i.splits,
                max_steps: i.max_steps,
                action_hint: i.action_hint,
            }
        }
    }
    impl From<EnvError> for wit::EnvError {
        fn from(e: EnvError) -> Self {
            match e {
                EnvError::BadTask(m) => wit::EnvError::BadTask(m),
                EnvError::BadState(m) => wit::EnvError::BadState(m),
                EnvError::NotStarted => wit::EnvError::NotStarted,
                EnvError::Internal(m) => wit::EnvError::Internal(m),
            }
        }
    }
    impl From<StepResult> for wit::StepResult {
        fn from(s: StepResult) -> Self {
            wit::StepResult {
                observation: s.observation,
                reward: s.reward,
                terminated: s.terminated,
                truncated: s.truncated,
                info: s.info,
            }
        }
    }
}
