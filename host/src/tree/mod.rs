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
    /// The Python sandbox component's sha256, for an environment that runs
    /// programs (absent otherwise, and in older logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_sha256: Option<String>,
    pub split: String,
    pub tasks: Vec<u32>,
    pub seed: u64,
    pub options: Vec<(String, String)>,
    pub policy: PolicyName,
    pub noise: f64,
    /// `leafe`, `sample`, `refine` or `group` (logs from before methods
    /// existed are `leafe`).
    #[serde(default)]
    pub method: Method,
    /// Absent in older logs: `rule`.
    #[serde(default)]
    pub reflector: ReflectorName,
    /// Mid-rollout reflection every this many steps (0: only on failure).
    #[serde(default)]
    pub reflect_every: u32,
    pub budget: u32,
    /// What the budget counts (absent in older logs: policy decisions).
    #[serde(default)]
    pub budget_unit: BudgetUnit,
    pub max_depth: u32,
    pub snapshot_every: u32,
    /// How going back to a state worked (absent in older logs: snapshots).
    #[serde(default)]
    pub rollback: Rollback,
    /// Everything that shapes a model policy's prompt, so that `export`
    /// rebuilds the prompts the policy saw (absent in older logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptConfig>,
}

/// Prompt settings shared by every task of a run (built and used by
/// `agent::prompt`, which also holds the defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptConfig {
    /// The system prompt template: `{name}`, `{action_hint}` and
    /// `{answer_format}` are filled in.
    pub system: String,
    /// The history's budget in characters (about 4 per token); the oldest
    /// turns after the first observation are dropped to fit it.
    pub history_chars: usize,
    /// `{answer_format}` where the environment lists its valid actions.
    pub action_line_format: String,
    /// `{answer_format}` where it does not (the whole answer is the action).
    pub free_format: String,
}

/// Every policy there is, by the name a run records (`--policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyName {
    Oracle,
    Reference,
    Human,
    #[serde(rename = "openai")]
    OpenAi,
}

impl PolicyName {
    pub const ALL: [PolicyName; 4] = [
        PolicyName::Oracle,
        PolicyName::Reference,
        PolicyName::Human,
        PolicyName::OpenAi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::Oracle => "oracle",
            PolicyName::Reference => "reference",
            PolicyName::Human => "human",
            PolicyName::OpenAi => "openai",
        }
    }

    /// The policy called `name`, or an error that lists them all.
    pub fn parse(name: &str) -> Result<PolicyName, UnknownName> {
        parse_name(name, "policy", &Self::ALL, |p| p.as_str())
    }
}

/// Every reflector there is, by the name a run records (`--reflector`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReflectorName {
    /// The environment's feedback read by rules (dead ends, failures, no progress).
    #[default]
    Rule,
    /// A model asked for a lesson as JSON.
    Llm,
}

impl ReflectorName {
    pub const ALL: [ReflectorName; 2] = [ReflectorName::Rule, ReflectorName::Llm];

    pub fn as_str(self) -> &'static str {
        match self {
            ReflectorName::Rule => "rule",
            ReflectorName::Llm => "llm",
        }
    }

    /// The reflector called `name`, or an error that lists them all.
    pub fn parse(name: &str) -> Result<ReflectorName, UnknownName> {
        parse_name(name, "reflector", &Self::ALL, |r| r.as_str())
    }
}

/// A policy or reflector name that is none of the known ones.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} '{name}' (available: {available})")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
    pub available: String,
}

fn parse_name<T: Copy>(
    name: &str,
    kind: &'static str,
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> Result<T, UnknownName> {
    all.iter()
        .copied()
        .find(|&t| as_str(t) == name)
        .ok_or_else(|| UnknownName {
            kind,
            name: name.to_string(),
            available: all
                .iter()
                .map(|&t| as_str(t))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// How a task's interaction budget is spent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
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
    /// GRPO's groups: independent rollouts from the start, each played to
    /// its end whether or not an earlier one succeeded, as many as the
    /// budget allows and at most `max_depth + 1`.
    Group,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Leafe => "leafe",
            Method::Sample => "sample",
            Method::Refine => "refine",
            Method::Group => "group",
        }
    }
}

/// What a task's budget counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum BudgetUnit {
    /// Policy decisions: one per action chosen (what an LLM call costs).
    /// Going back to a state is free.
    #[default]
    Policy,
    /// Environment steps executed, as an implementation without snapshots
    /// pays them: every action chosen, plus, for each return to an earlier
    /// state, the steps a reset-and-replay from the task start re-executes.
    Env,
}

impl BudgetUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetUnit::Policy => "policy",
            BudgetUnit::Env => "env",
        }
    }
}

/// How the explorer goes back to an earlier state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rollback {
    /// Restore the nearest snapshot (a component's own state bytes) and
    /// replay the few steps since it.
    #[default]
    Snapshot,
    /// Reset the task and replay every step of the path (an environment
    /// without snapshots: a remote one); each replayed step is counted in
    /// the task's `replayed_steps` and its observation checked.
    Replay,
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
    /// The model's whole answer the action was read from (reasoning and
    /// action), for a model policy; absent for policies that only act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
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
    /// With `experience`: the lessons already in force before it, oldest
    /// first (the prompt showed them all; `export` needs their length).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_experiences: Vec<String>,
}

impl Node {
    /// The state a task starts in (after `reset`): node 0, no parent, no
    /// action, nothing recorded yet but its observation.
    pub fn root(task: u32, observation: String) -> Node {
        Node {
            task,
            id: 0,
            parent: None,
            branch: 0,
            depth: 0,
            action: None,
            answer: None,
            obs_sha256: crate::util::hash::sha256_hex(observation.as_bytes()),
            observation,
            reward: 0.0,
            terminated: false,
            truncated: false,
            success: false,
            dead_end: None,
            snapshot: None,
            experience: None,
            rejected: None,
            earlier_experiences: Vec::new(),
        }
    }

    /// Every lesson the policy was shown when it chose this node's action,
    /// if this is the first node of a revised rollout.
    pub fn lessons_shown(&self) -> Vec<String> {
        let mut all = self.earlier_experiences.clone();
        all.extend(self.experience.clone());
        all
    }
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

impl TaskEnd {
    /// Environment steps a reset-and-replay implementation would have
    /// executed: the steps taken plus, for every return to an earlier state,
    /// the path from the task start to it ([`BudgetUnit::Env`]).
    pub fn env_steps(&self) -> u32 {
        self.steps + self.replayed_steps + self.replay_avoided_steps
    }

    /// What the budget has spent, in `unit`.
    pub fn spent(&self, unit: BudgetUnit) -> u32 {
        match unit {
            BudgetUnit::Policy => self.steps,
            BudgetUnit::Env => self.env_steps(),
        }
    }
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
