//! The backtracking explorer: LEAFE's first stage, with a rule-based
//! reflector or any other [`Reflector`].
//!
//! Per task, under a budget ([`BudgetUnit`]): roll out with the policy
//! until success, a terminal failure, a dead end or truncation. On failure
//! the reflector names a state to go back to and an experience; that branch
//! request joins a FIFO queue (the rollback tree is expanded breadth-first,
//! up to `max_depth` backtracks deep). Going back is a snapshot restore into
//! a fresh instance, plus a replay of the few steps since the nearest
//! snapshotted ancestor when a state has no snapshot of its own; in an
//! environment without snapshots (a remote one) it is a reset and a replay
//! of the whole path, every step counted and checked.

use super::policy::Policy;
use super::reflect::Reflector;
use super::{Context, EnvInstance, Experience};
use crate::env::contract::{EnvError, EnvInfo, Task};
use crate::env::environment::Environment;
use crate::env::session::SessionError;
use crate::tree::path::ancestors;
use crate::tree::{BudgetUnit, Method, Node, Record, TaskEnd};
use crate::util::hash::sha256_hex;
use crate::util::setting::{BadSetting, check_range};
use anyhow::{Result, bail};
use std::collections::{BTreeMap, VecDeque};

/// Exploration settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExploreConfig {
    pub method: Method,
    /// Also reflect every this many steps of a rollout (0: only on failure).
    pub reflect_every: u32,
    /// Steps per task, over all rollouts, counted in `budget_unit`.
    pub budget: u32,
    pub budget_unit: BudgetUnit,
    /// How many backtracks deep the rollback tree may grow.
    pub max_depth: u32,
    /// Snapshot every Nth node (the root always); 1 = every state.
    pub snapshot_every: u32,
}

impl ExploreConfig {
    /// The most `budget` may be: past it a task's tree would not fit in
    /// memory or time on any machine this runs on.
    pub const MAX_BUDGET: u32 = 100_000;

    /// Every setting in its range; the error names the field.
    pub fn validate(&self) -> Result<(), BadSetting> {
        check_range("budget", self.budget, 1, Self::MAX_BUDGET)?;
        check_range("snapshot_every", self.snapshot_every, 1, u32::MAX)
    }
}

/// The records of one task (task-start, nodes, task-end) and its outcome.
pub struct TaskRun {
    pub records: Vec<Record>,
    pub end: TaskEnd,
}

/// Why a task could not go on: whose fault it was.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// The environment failed (an error it returned, a trap, a limit).
    #[error(transparent)]
    Env(#[from] SessionError),
    /// The policy could not act (a dead endpoint, end of input, ...).
    #[error("policy error: {0:#}")]
    Policy(#[source] anyhow::Error),
    /// Replaying recorded actions gave another observation.
    #[error(
        "replaying to node {node} gave a different observation: the environment is not \
         deterministic"
    )]
    Nondeterministic { node: u32 },
}

struct BranchRequest {
    from: u32,
    depth: u32,
    experiences: Vec<Experience>,
    /// Going on with a rollout paused for a mid-rollout check (not a new branch).
    resumes: bool,
}

impl BranchRequest {
    /// The branch a lesson asks for: back to the state it names, one
    /// backtrack deeper, with the lesson added to those in force.
    fn revised(&self, lesson: Experience) -> BranchRequest {
        let mut experiences = self.experiences.clone();
        let from = lesson.node;
        experiences.push(lesson);
        BranchRequest {
            from,
            depth: self.depth + 1,
            experiences,
            resumes: false,
        }
    }
}

/// The growing tree of one task and the live instance walking it.
struct Explorer<'a> {
    session: &'a mut dyn EnvInstance,
    cfg: &'a ExploreConfig,
    nodes: Vec<Node>,
    snapshots: BTreeMap<String, Vec<u8>>,
    /// The node the live session is in, if it is alive.
    at: Option<u32>,
    end: TaskEnd,
}

impl Explorer<'_> {
    fn path(&self, id: u32) -> Vec<&Node> {
        ancestors(&self.nodes, id)
    }

    fn budget_left(&self) -> bool {
        self.end.spent(self.cfg.budget_unit) < self.cfg.budget
    }

    /// Whether a rollout from `from` can take a step within the budget once
    /// it has gone back there (in env steps, going back costs the path).
    fn room_for_rollout_from(&self, from: u32) -> bool {
        let back = match self.cfg.budget_unit {
            BudgetUnit::Env if self.at != Some(from) || self.session.is_dead() => {
                self.path(from).len() as u32 - 1
            }
            _ => 0,
        };
        self.end.spent(self.cfg.budget_unit) + back < self.cfg.budget
    }

    fn add_node(&mut self, mut node: Node, snapshot_wanted: bool) -> Result<u32, ExploreError> {
        // Without snapshots of its own, only the start is kept (a reset).
        let snapshot_wanted =
            node.id == 0 || (snapshot_wanted && !self.session.restores_by_replay());
        if snapshot_wanted {
            let bytes = self.session.snapshot()?;
            let hash = sha256_hex(&bytes);
            self.snapshots.entry(hash.clone()).or_insert(bytes);
            node.snapshot = Some(hash);
        }
        let id = node.id;
        self.nodes.push(node);
        self.at = Some(id);
        Ok(id)
    }

    /// Put the live session into state `target`.
    fn go_to(&mut self, target: u32) -> Result<(), ExploreError> {
        if self.at == Some(target) && !self.session.is_dead() {
            return Ok(());
        }
        let path: Vec<u32> = self.path(target).iter().map(|n| n.id).collect();
        let base = path
            .iter()
            .rposition(|id| self.nodes[*id as usize].snapshot.is_some())
            .unwrap_or(0);
        // The root is always snapshotted, so there is always a base.
        let hash = self.nodes[path[base] as usize].snapshot.as_ref();
        let bytes = &self.snapshots[hash.expect("the task root is always snapshotted")];
        self.session.restore(bytes)?;
        self.end.restores += 1;
        for id in &path[base + 1..] {
            let node = &self.nodes[*id as usize];
            let action = node.action.clone().unwrap_or_default();
            let out = self.session.step(&action)?;
            self.end.replayed_steps += 1;
            if sha256_hex(out.observation.as_bytes()) != node.obs_sha256 {
                return Err(ExploreError::Nondeterministic { node: *id });
            }
        }
        self.end.replay_avoided_steps += base as u32;
        self.at = Some(target);
        Ok(())
    }

    /// One rollout from `req.from`; returns the last node reached, and
    /// whether the rollout only paused there for a mid-rollout check.
    fn rollout(
        &mut self,
        req: &BranchRequest,
        branch: u32,
        info: &EnvInfo,
        policy: &mut dyn Policy,
    ) -> Result<(u32, bool), ExploreError> {
        self.go_to(req.from)?;
        let mut at = req.from;
        let mut first = !req.resumes;
        let mut taken = 0;
        while self.budget_left() {
            let admissible = self.session.admissible_actions()?;
            let expert = if policy.needs_expert() {
                self.session.expert_action()?
            } else {
                None
            };
            let decision = {
                let path = self.path(at);
                let ctx = Context {
                    info,
                    path: &path,
                    experiences: &req.experiences,
                    admissible,
                    expert,
                };
                policy.act(&ctx).map_err(ExploreError::Policy)?
            };
            let out = self.session.step(&decision.action)?;
            self.end.steps += 1;
            let id = self.nodes.len() as u32;
            let lesson = req.experiences.last().filter(|_| first && req.depth > 0);
            let node = Node {
                task: self.end.task,
                id,
                parent: Some(at),
                branch,
                depth: req.depth,
                action: Some(decision.action),
                answer: decision.answer,
                obs_sha256: sha256_hex(out.observation.as_bytes()),
                observation: out.observation.clone(),
                reward: out.reward,
                terminated: out.terminated,
                truncated: out.truncated,
                success: out.success(),
                dead_end: out.dead_end(),
                snapshot: None,
                experience: lesson.map(|e| e.text.clone()),
                rejected: lesson.and_then(|e| e.avoid.clone()),
                earlier_experiences: match lesson {
                    Some(_) => req.experiences[..req.experiences.len() - 1]
                        .iter()
                        .map(|e| e.text.clone())
                        .collect(),
                    None => Vec::new(),
                },
            };
            let ends = node.success || node.terminated || node.truncated || node.dead_end.is_some();
            at = self.add_node(node, id.is_multiple_of(self.cfg.snapshot_every))?;
            first = false;
            taken += 1;
            if ends {
                break;
            }
            let every = self.cfg.reflect_every;
            if every > 0 && taken % every == 0 && self.budget_left() {
                return Ok((at, true));
            }
        }
        Ok((at, false))
    }

    /// Grow the tree from `root`: roll out, reflect, go back and revise,
    /// breadth-first, until a success, the budget or the depth ends it.
    fn grow(
        &mut self,
        root: Node,
        info: &EnvInfo,
        policy: &mut dyn Policy,
        reflector: &mut dyn Reflector,
    ) -> Result<(), ExploreError> {
        let mut branch_queue = VecDeque::from([BranchRequest {
            from: 0,
            depth: 0,
            experiences: vec![],
            resumes: false,
        }]);
        self.add_node(root, true)?;
        let mut branch = 0;
        while let Some(req) = branch_queue.pop_front() {
            if !self.room_for_rollout_from(req.from) {
                continue; // a branch nearer the start may still fit
            }
            if req.depth > 0 && !req.resumes {
                self.end.backtracks += 1;
            }
            let (leaf, paused) = self.rollout(&req, branch, info, policy)?;
            if self.nodes[leaf as usize].success {
                self.end.solved = true;
                if self.cfg.method != Method::Group {
                    break;
                }
            }
            if paused {
                // Every K steps: a lesson means going back now; none, going on.
                let lesson = (self.cfg.method == Method::Leafe && req.depth < self.cfg.max_depth)
                    .then(|| reflector.check(&self.path(leaf), self.cfg.reflect_every as usize))
                    .flatten();
                match lesson {
                    Some(lesson) => {
                        branch += 1;
                        branch_queue.push_back(req.revised(lesson));
                    }
                    None => branch_queue.push_front(BranchRequest {
                        from: leaf,
                        resumes: true,
                        ..req
                    }),
                }
                continue;
            }
            branch += 1;
            if req.depth >= self.cfg.max_depth || !self.budget_left() {
                continue;
            }
            let next = match self.cfg.method {
                Method::Leafe => reflector
                    .reflect(&self.path(leaf))
                    .map(|lesson| req.revised(lesson)),
                Method::Sample | Method::Group => Some(BranchRequest {
                    from: 0,
                    depth: req.depth + 1,
                    experiences: Vec::new(),
                    resumes: false,
                }),
                Method::Refine => {
                    let path = self.path(leaf);
                    let lesson = reflector
                        .reflect(&path)
                        .unwrap_or_else(|| outcome_lesson(&path));
                    let mut experiences = req.experiences.clone();
                    // Refinement starts over: the lesson is advice, not a rollback.
                    experiences.push(Experience::advice(lesson.text));
                    Some(BranchRequest {
                        from: 0,
                        depth: req.depth + 1,
                        experiences,
                        resumes: false,
                    })
                }
            };
            if let Some(next) = next {
                branch_queue.push_back(next);
            }
        }
        Ok(())
    }
}

/// What a failed rollout came to, for refinement when the reflector has
/// nothing to say: its last feedback.
fn outcome_lesson(path: &[&Node]) -> Experience {
    let last = path.last().map(|n| n.observation.as_str()).unwrap_or("");
    Experience::advice(format!(
        "An earlier attempt failed after {} steps; its last feedback was: {}",
        path.len().saturating_sub(1),
        leafe_judge::clip(last.trim(), 400)
    ))
}

/// Explore one task in a fresh instance of `env`. An environment or policy
/// failure ends the task (recorded in [`TaskEnd::error`]); only a bad task,
/// a broken setup or a remote server that stopped answering (the task could
/// not be told apart from the server's failure) is an `Err`.
pub fn explore_task(
    env: &Environment,
    task: &Task,
    policy: &mut dyn Policy,
    reflector: &mut dyn Reflector,
    cfg: &ExploreConfig,
) -> Result<TaskRun> {
    let mut session = env.instance(task.seed)?;
    explore(session.as_mut(), env.info(), task, policy, reflector, cfg)
}

/// Explore one task in `session`, any [`EnvInstance`] of the environment
/// `info` describes.
pub fn explore(
    session: &mut dyn EnvInstance,
    info: &EnvInfo,
    task: &Task,
    policy: &mut dyn Policy,
    reflector: &mut dyn Reflector,
    cfg: &ExploreConfig,
) -> Result<TaskRun> {
    cfg.validate()?;
    let first = match session.reset(task) {
        Ok(obs) => obs,
        Err(SessionError::Env(EnvError::BadTask(why))) => bail!("bad task: {why}"),
        Err(e) => bail!("task {}: reset failed: {e}", task.index),
    };
    let mut ex = Explorer {
        session,
        cfg,
        nodes: Vec::new(),
        snapshots: BTreeMap::new(),
        at: None,
        end: TaskEnd {
            task: task.index,
            solved: false,
            steps: 0,
            backtracks: 0,
            restores: 0,
            replayed_steps: 0,
            replay_avoided_steps: 0,
            nodes: 0,
            error: None,
        },
    };
    let root = Node::root(task.index, first);
    let outcome = ex.grow(root, info, policy, reflector);
    match outcome {
        Err(ExploreError::Env(SessionError::Remote(why))) => {
            bail!(
                "task {}: the environment server stopped answering ({why})",
                task.index
            )
        }
        Err(e) => ex.end.error = Some(e.to_string()),
        Ok(()) => {}
    }
    ex.end.nodes = ex.nodes.len() as u32;
    let mut records = Vec::with_capacity(ex.nodes.len() + 2);
    records.push(Record::TaskStart { task: task.index });
    records.extend(ex.nodes.into_iter().map(Record::Node));
    records.push(Record::TaskEnd(ex.end.clone()));
    Ok(TaskRun {
        records,
        end: ex.end,
    })
}
