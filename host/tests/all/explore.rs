//! The LEAFE loop on its own, without wasm: the explorer drives an
//! in-process environment (the guest SDK's `Harness`, which gives a
//! component's exact semantics) with scripted policies and reflectors, so
//! every path of the loop is tested in milliseconds.

use leafe_guest::{Environment, Harness, Step};
use leafe_host::agent::reflect::rule::RuleReflector;
use leafe_host::{
    Context, EnvError, EnvInfo, EnvInstance, Experience, ExploreConfig, Method, Node, Policy,
    Record, Reflector, SessionError, StepResult, Task, TaskRun, explore,
};
use serde::{Deserialize, Serialize};

/// A corridor of `LENGTH` cells: `forward` advances (reward 1), `trap` is a
/// dead end, `wait` does nothing. The end of the corridor is success.
#[derive(Serialize, Deserialize)]
struct Corridor {
    at: u32,
    trapped: bool,
}

const LENGTH: u32 = 4;

impl Environment for Corridor {
    fn info() -> leafe_guest::EnvInfo {
        leafe_guest::EnvInfo::new("corridor", "0.1.0", "forward, trap or wait")
            .split("test", 3)
            .max_steps(50)
    }
    fn reset(_task: &leafe_guest::Task) -> Result<(Self, String), leafe_guest::EnvError> {
        Ok((
            Corridor {
                at: 0,
                trapped: false,
            },
            "cell 0".into(),
        ))
    }
    fn step(&mut self, action: &str) -> Step {
        match action {
            _ if self.trapped => Step::new("still trapped", 0.0).dead_end("trapped"),
            "forward" => {
                self.at += 1;
                let step = Step::new(format!("cell {}", self.at), 1.0);
                match self.at == LENGTH {
                    true => step.terminated().success(true),
                    false => step,
                }
            }
            "trap" => {
                self.trapped = true;
                Step::new(format!("trapped at cell {}", self.at), -1.0).dead_end("a trap")
            }
            "wait" => Step::new(format!("cell {}", self.at), 0.0),
            _ => Step::new("no such action", 0.0).invalid_action(),
        }
    }
    fn admissible_actions(&self) -> Option<Vec<String>> {
        Some(["forward", "trap", "wait"].map(String::from).to_vec())
    }
}

/// The `Harness` as an [`EnvInstance`].
struct Native<E: Environment>(Harness<E>);

fn env_error(e: leafe_guest::EnvError) -> SessionError {
    SessionError::Env(match e {
        leafe_guest::EnvError::BadTask(m) => EnvError::BadTask(m),
        leafe_guest::EnvError::BadState(m) => EnvError::BadState(m),
        leafe_guest::EnvError::NotStarted => EnvError::NotStarted,
        leafe_guest::EnvError::Internal(m) => EnvError::Internal(m),
    })
}

impl<E: Environment> EnvInstance for Native<E> {
    fn reset(&mut self, task: &Task) -> Result<String, SessionError> {
        let task = leafe_guest::Task {
            split: task.split.clone(),
            index: task.index,
            seed: task.seed,
            options: task.options.clone(),
        };
        self.0.reset(&task).map_err(env_error)
    }
    fn step(&mut self, action: &str) -> Result<StepResult, SessionError> {
        let r = self.0.step(action).map_err(env_error)?;
        Ok(StepResult::new(
            r.observation,
            r.reward,
            r.terminated,
            r.truncated,
            &r.info,
        ))
    }
    fn admissible_actions(&mut self) -> Result<Option<Vec<String>>, SessionError> {
        Ok(self.0.admissible_actions())
    }
    fn expert_action(&mut self) -> Result<Option<String>, SessionError> {
        Ok(self.0.expert_action())
    }
    fn snapshot(&mut self) -> Result<Vec<u8>, SessionError> {
        self.0.snapshot().map_err(env_error)
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), SessionError> {
        self.0.restore(state).map_err(env_error)
    }
}

fn info() -> EnvInfo {
    let i = Corridor::info();
    EnvInfo {
        name: i.name,
        version: i.version,
        splits: i.splits,
        max_steps: i.max_steps,
        action_hint: i.action_hint,
    }
}

/// Plays `script` in order, skipping actions a lesson rejected here; then
/// `forward` for ever. Records what it was shown.
#[derive(Default)]
struct Scripted {
    script: Vec<&'static str>,
    seen_lessons: Vec<Vec<String>>,
    fail_at: Option<usize>,
    calls: usize,
}

impl Policy for Scripted {
    fn act(&mut self, ctx: &Context) -> anyhow::Result<leafe_host::agent::policy::Decision> {
        self.calls += 1;
        if self.fail_at == Some(self.calls) {
            anyhow::bail!("the endpoint answered HTTP 401");
        }
        self.seen_lessons
            .push(ctx.experiences.iter().map(|e| e.text.clone()).collect());
        let rejected = ctx.rejected_here();
        while let Some(next) = self.script.first().copied() {
            self.script.remove(0);
            if !rejected.contains(&next) {
                return Ok(next.to_string().into());
            }
        }
        Ok(String::from("forward").into())
    }
}

/// Answers mid-rollout checks from a script (`None`: go on).
struct Checker {
    checks: Vec<Option<&'static str>>,
    asked: usize,
}

impl Reflector for Checker {
    fn reflect(&mut self, path: &[&Node]) -> Option<Experience> {
        RuleReflector.reflect(path)
    }
    fn check(&mut self, path: &[&Node], _window: usize) -> Option<Experience> {
        self.asked += 1;
        let answer = self.checks.get(self.asked - 1).copied().flatten()?;
        let before = path[path.len() - 2];
        Some(Experience {
            node: before.id,
            obs_sha256: before.obs_sha256.clone(),
            avoid: path.last().unwrap().action.clone(),
            text: answer.to_string(),
        })
    }
}

fn config(method: Method) -> ExploreConfig {
    ExploreConfig {
        method,
        reflect_every: 0,
        budget: 40,
        budget_unit: Default::default(),
        max_depth: 5,
        snapshot_every: 1,
    }
}

fn explore_with(
    policy: &mut dyn Policy,
    reflector: &mut dyn Reflector,
    cfg: &ExploreConfig,
) -> TaskRun {
    let mut env = Native(Harness::<Corridor>::new());
    explore(
        &mut env,
        &info(),
        &Task::new("test", 0, 0, &[]),
        policy,
        reflector,
        cfg,
    )
    .unwrap()
}

fn nodes(run: &TaskRun) -> Vec<&Node> {
    run.records
        .iter()
        .filter_map(|r| match r {
            Record::Node(n) => Some(n),
            _ => None,
        })
        .collect()
}

#[test]
fn leafe_rolls_back_to_the_state_before_the_mistake_and_revises_it() {
    let mut policy = Scripted {
        script: vec!["forward", "trap", "trap"],
        ..Default::default()
    };
    let run = explore_with(&mut policy, &mut RuleReflector, &config(Method::Leafe));
    assert!(run.end.solved && run.end.error.is_none(), "{:?}", run.end);
    assert_eq!((run.end.backtracks, run.end.restores), (1, 1));
    let nodes = nodes(&run);
    // root, forward, trap | revised from node 1: forward x3.
    assert_eq!(nodes.len(), 6);
    let revised = nodes[3];
    assert_eq!(revised.parent, Some(1));
    assert_eq!((revised.branch, revised.depth), (1, 1));
    assert_eq!(revised.rejected.as_deref(), Some("trap"));
    assert_eq!(revised.action.as_deref(), Some("forward"));
    assert!(revised.experience.as_deref().unwrap().contains("dead end"));
    // The lesson was in force on the revised rollout, and only there.
    assert!(policy.seen_lessons[..2].iter().all(Vec::is_empty));
    assert!(policy.seen_lessons[2..].iter().all(|l| l.len() == 1));
    assert_eq!(run.end.steps, 5);
    assert_eq!(run.end.nodes, 6);
}

#[test]
fn the_budget_bounds_every_branch_together() {
    let mut policy = Scripted {
        script: vec!["trap"; 100],
        ..Default::default()
    };
    let mut cfg = config(Method::Leafe);
    cfg.budget = 3;
    let run = explore_with(&mut policy, &mut RuleReflector, &cfg);
    assert!(!run.end.solved);
    assert_eq!(run.end.steps, 3);
    assert_eq!(nodes(&run).len(), 4);
}

#[test]
fn the_depth_limit_stops_backtracking() {
    let mut policy = Scripted {
        script: vec!["trap"; 100],
        ..Default::default()
    };
    let mut cfg = config(Method::Leafe);
    cfg.max_depth = 0;
    let run = explore_with(&mut policy, &mut RuleReflector, &cfg);
    assert_eq!((run.end.backtracks, run.end.steps), (0, 1));
    cfg.max_depth = 2;
    let mut policy = Scripted {
        script: vec!["trap"; 100],
        ..Default::default()
    };
    let run = explore_with(&mut policy, &mut RuleReflector, &cfg);
    // Every lesson rules out `trap` at the root, so the scripted policy moves on.
    assert!(run.end.backtracks <= 2, "{:?}", run.end);
    assert!(nodes(&run).iter().all(|n| n.depth <= 2));
}

#[test]
fn sample_restarts_from_the_root_without_lessons() {
    let mut policy = Scripted {
        script: vec!["forward", "trap"],
        ..Default::default()
    };
    let run = explore_with(&mut policy, &mut RuleReflector, &config(Method::Sample));
    assert!(run.end.solved);
    let nodes = nodes(&run);
    let second = nodes.iter().find(|n| n.branch == 1).unwrap();
    assert_eq!(second.parent, Some(0));
    assert!(second.experience.is_none());
    assert!(policy.seen_lessons.iter().all(Vec::is_empty));
}

#[test]
fn refine_restarts_with_the_lessons_as_advice() {
    let mut policy = Scripted {
        script: vec!["forward", "trap"],
        ..Default::default()
    };
    let run = explore_with(&mut policy, &mut RuleReflector, &config(Method::Refine));
    assert!(run.end.solved);
    let second = *nodes(&run).iter().find(|n| n.branch == 1).unwrap();
    assert_eq!(second.parent, Some(0), "refinement starts over");
    // The restarted rollout is shown the lesson, but nothing is ruled out.
    assert!(policy.seen_lessons.last().unwrap().len() == 1);
    assert!(second.rejected.is_none());
}

#[test]
fn mid_rollout_checks_branch_on_a_lesson_and_go_on_without_one() {
    let mut cfg = config(Method::Leafe);
    cfg.reflect_every = 1;
    // First check: no mistake (the rollout goes on, no backtrack); second:
    // the last step was one (back one step, a new branch).
    let mut checker = Checker {
        checks: vec![None, Some("waiting wastes steps")],
        asked: 0,
    };
    let mut policy = Scripted {
        script: vec!["forward", "wait"],
        ..Default::default()
    };
    let run = explore_with(&mut policy, &mut checker, &cfg);
    assert!(run.end.solved, "{:?}", run.end);
    assert_eq!(run.end.backtracks, 1);
    let nodes = nodes(&run);
    assert_eq!(nodes[1].branch, 0);
    assert_eq!(
        nodes[2].branch, 0,
        "a check without a lesson does not branch"
    );
    let revised = nodes.iter().find(|n| n.experience.is_some()).unwrap();
    assert_eq!(revised.parent, Some(1));
    assert_eq!(revised.rejected.as_deref(), Some("wait"));
}

#[test]
fn sparse_snapshots_replay_to_the_same_tree() {
    let script = vec!["forward", "forward", "wait", "trap"];
    let mut dense = Scripted {
        script: script.clone(),
        ..Default::default()
    };
    let a = explore_with(&mut dense, &mut RuleReflector, &config(Method::Leafe));
    let mut cfg = config(Method::Leafe);
    cfg.snapshot_every = 100;
    let mut sparse = Scripted {
        script,
        ..Default::default()
    };
    let b = explore_with(&mut sparse, &mut RuleReflector, &cfg);
    let strip = |run: &TaskRun| -> Vec<(Option<String>, String)> {
        nodes(run)
            .iter()
            .map(|n| (n.action.clone(), n.observation.clone()))
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(a.end.replayed_steps, 0);
    assert_eq!(
        b.end.replayed_steps, 3,
        "back to node 3 from the root snapshot"
    );
}

#[test]
fn a_policy_failure_is_the_policys_error_not_the_environments() {
    let mut policy = Scripted {
        fail_at: Some(2),
        ..Default::default()
    };
    let run = explore_with(&mut policy, &mut RuleReflector, &config(Method::Leafe));
    let error = run.end.error.as_deref().unwrap();
    assert!(error.starts_with("policy error: "), "{error}");
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(!error.contains("environment"), "{error}");
    assert_eq!(run.end.steps, 1);
}
