//! # leafe-host
//!
//! Runs environment components (WASI components exporting the
//! `leafe:env/environment` interface of `wit/leafe-env.wit`) with hard limits,
//! snapshots and restores their state, explores tasks with backtracking, and
//! replays any recorded branch deterministically.
//!
//! The crate is layered; each layer imports only the ones before it:
//!
//! 1. `util` (hashing, seeded randomness, work sharing, progress, atomic
//!    writes) and `wasm` (the engine, limits, compile cache, guest store
//!    state): internal;
//! 2. [`tree`]: the run's data model (`tree.jsonl`, paths, run files) and
//!    [`llm`]: an OpenAI-compatible chat client;
//! 3. [`sandbox`]: the Python sandbox (a fresh CPython component per run);
//! 4. [`env`]: environment components, their runtime and sessions;
//! 5. [`agent`]: the LEAFE loop — the explorer, policies, reflectors, prompts;
//! 6. [`jobs`]: the library side of every `leafe-host` command.
//!
//! A test (`host/tests/all/layers.rs`) keeps it so. Where each module
//! lives, and where to add things: `docs/ARCHITECTURE.md`.
//!
//! ## One task explored, from a library
//!
//! ```
//! use leafe_host::{EngineOptions, ExploreConfig, Method, PolicySpec, ReflectorSpec, Runtime, Task};
//! use leafe_host::tree::Record;
//!
//! # fn main() -> anyhow::Result<()> {
//! let runtime = Runtime::new(EngineOptions::default())?;
//! // A built-in name, a component's path, or remote:URL (an environment server).
//! let sokoban = leafe_host::Environment::open(&runtime, "sokoban")?;
//! let task = Task::new("test", 0, 0, &[]);
//! let mut policy = PolicySpec::Oracle { noise: 0.4 }.build(0, task.index);
//! let mut reflector = ReflectorSpec::Rule.build(sokoban.info(), 0, task.index);
//! let config = ExploreConfig {
//!     method: Method::Leafe,
//!     reflect_every: 0,
//!     budget: 100,
//!     budget_unit: Default::default(),
//!     max_depth: 10,
//!     snapshot_every: 1,
//! };
//! let run = leafe_host::explore_task(&sokoban, &task, policy.as_mut(), reflector.as_mut(), &config)?;
//! for record in &run.records {
//!     if let Record::Node(node) = record {
//!         println!("node {} <- {:?}: reward {}", node.id, node.action, node.reward);
//!     }
//! }
//! println!("solved: {}, backtracks: {}", run.end.solved, run.end.backtracks);
//! # Ok(())
//! # }
//! ```

pub mod agent;
pub mod env;
pub mod jobs;
pub mod llm;
pub mod sandbox;
pub mod tree;
pub(crate) mod util;
pub(crate) mod wasm;

pub use agent::explore::{ExploreConfig, ExploreError, TaskRun, explore, explore_task};
pub use agent::policy::{Policy, spec::PolicySpec};
pub use agent::reflect::{Reflector, spec::ReflectorSpec};
pub use agent::{Context, EnvInstance, Experience};
pub use env::component::{EnvComponent, Source};
pub use env::contract::{EnvError, EnvInfo, StepResult, Task};
pub use env::environment::Environment;
pub use env::runtime::Runtime;
pub use env::session::{GuestFailure, Session, SessionError};
pub use sandbox::{PythonSandbox, RunLimits, RunResult, Verdict};
pub use tree::{BudgetUnit, Header, Method, Node, PromptConfig, Record, TaskEnd};
pub use util::hash::sha256_hex;
pub use util::setting::BadSetting;
pub use wasm::cache::{Origin, default_dir as default_cache_dir};
pub use wasm::engine::EngineOptions;
pub use wasm::limits::Limits;
