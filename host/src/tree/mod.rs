//! The run's data model: the branch-tree log `tree.jsonl` (a header line,
//! then for each task a `task-start` line, one `node` line per environment
//! state reached, and a `task-end` line; no timestamps, so the same run
//! gives the same bytes), how it is written and read back, paths through
//! a task's tree, and the files of a run directory. Depends on nothing
//! above [`crate::util`].

pub mod journal;
pub mod log;
pub mod path;
pub mod rundir;

use serde::{Deserialize, Serialize};

/// The version of this log format.
pub const FORMAT: u32 = 1;

/// What produced the log; `run --resume` refuses a different one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    /// `--env` as given: a built-in name or a path.
    pub env: String,
    pub env_name: String,
    pub env_version: String,
    pub component_sha256: String,
    pub split: String,
    pub tasks: Vec<u32>,
    pub seed: u64,
    pub options: Vec<(String, String)>,
    pub policy: String,
    pub noise: f64,
    /// `leafe`, `sample` or `refine` (logs from before methods existed are `leafe`).
    #[serde(default)]
    pub method: Method,
    /// `rule` or `llm` (absent in older logs: `rule`).
    #[serde(default = "rule")]
    pub reflector: String,
    /// Mid-rollout reflection every this many steps (0: only on failure).
    #[serde(default)]
    pub reflect_every: u32,
    pub budget: u32,
    pub max_depth: u32,
    pub snapshot_every: u32,
}

fn rule() -> String {
    "rule".into()
}

/// How a task's interaction budget is spent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// LEAFE: reflect on a failure, go back to the state it names (a
    /// snapshot restore) and try a revised action there; the rollback tree
    /// is expanded breadth-first.
    #[default]
    Leafe,
    /// Independent rollouts from the start, no feedback carried over.
    Sample,
    /// Iterative refinement: each new rollout starts from the beginning with
    /// the lessons of all earlier ones in the prompt; no rollback.
    Refine,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Leafe => "leafe",
            Method::Sample => "sample",
            Method::Refine => "refine",
        }
    }
}

/// One environment state reached: the root of a task (after `reset`), or
/// the result of `action` taken in the parent state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub task: u32,
    pub id: u32,
    pub parent: Option<u32>,
    /// The rollout this node was reached in (0 = the first one).
    pub branch: u32,
    /// How many backtracks led to this rollout.
    pub depth: u32,
    pub action: Option<String>,
    pub observation: String,
    pub obs_sha256: String,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    pub success: bool,
    pub dead_end: Option<String>,
    /// Content address of the snapshot taken in this state, if one was.
    pub snapshot: Option<String>,
    /// On the first node of a revised rollout: the experience that led to it
    /// and the action it replaced at the parent state.
    pub experience: Option<String>,
    pub rejected: Option<String>,
}

/// What a task came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskEnd {
    pub task: u32,
    pub solved: bool,
    /// Environment steps taken (all rollouts; replays for restores excluded).
    pub steps: u32,
    pub backtracks: u32,
    pub restores: u32,
    /// Steps re-executed because a state had no snapshot.
    pub replayed_steps: u32,
    /// Steps from the task start to each backtrack target: what
    /// reset-and-replay would have re-executed instead of restoring.
    pub replay_avoided_steps: u32,
    pub nodes: u32,
    /// Set when the environment failed and the task could not go on.
    pub error: Option<String>,
}

/// One line of `tree.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    Header(Header),
    TaskStart { task: u32 },
    Node(Node),
    TaskEnd(TaskEnd),
}
