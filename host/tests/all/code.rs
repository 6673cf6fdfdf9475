//! The code environments (MBPP, CodeContests) through the host: programs run
//! in the sandbox, feedback says what went wrong, observations are
//! deterministic, snapshots restore, user data is read from `/data`.

use crate::common;

use leafe_host::EnvComponent;
use leafe_host::env::load as component;
use leafe_host::{Session, StepResult, Task};
use std::sync::Arc;

fn env(spec: &str) -> Arc<EnvComponent> {
    component::load(&common::runtime(), spec).unwrap()
}

fn task(index: u32, options: &[(&str, &str)]) -> Task {
    Task {
        split: "test".into(),
        index,
        seed: 0,
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn started(env: &Arc<EnvComponent>, task: &Task) -> (Session, String) {
    let mut s = Session::new(env, 0).unwrap();
    let obs = s.reset(task).unwrap();
    (s, obs)
}

fn submit(s: &mut Session, program: &str) -> StepResult {
    s.step(&format!("Here is my answer.\n```python\n{program}\n```\n"))
        .unwrap()
}

#[test]
fn mbpp_is_the_real_dataset_with_its_splits() {
    let mbpp = env("mbpp");
    assert_eq!(mbpp.info.name, "mbpp");
    let splits: Vec<(&str, u32)> = mbpp
        .info
        .splits
        .iter()
        .map(|(s, n)| (s.as_str(), *n))
        .collect();
    assert_eq!(
        splits,
        vec![
            ("test", 500),
            ("train", 374),
            ("validation", 90),
            ("prompt", 10)
        ]
    );
    // task_id 11, the first test problem.
    let (_, obs) = started(&mbpp, &task(0, &[]));
    assert!(
        obs.starts_with("Write a python function to remove first and last occurrence"),
        "{obs}"
    );
    assert!(obs.contains("assert remove_Occ(\"hello\",\"l\") == \"heo\""));
}

#[test]
fn mbpp_feedback_names_the_failing_asserts() {
    let mbpp = env("mbpp");
    let (mut s, _) = started(&mbpp, &task(0, &[]));
    // Removes only the first occurrence: passes one test of three at most.
    let wrong = "def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)";
    let r = submit(&mut s, wrong);
    assert!(!r.success() && !r.terminated);
    assert!(r.reward < 1.0);
    assert!(r.observation.contains("tests passed."), "{}", r.observation);
    assert!(
        r.observation
            .contains("failed: expected \"heo\", got 'helo'"),
        "{}",
        r.observation
    );
    assert!(
        r.observation.contains("assert remove_Occ("),
        "{}",
        r.observation
    );

    let crash = "def remove_Occ(s, ch):\n    return s[10**9]";
    let r = submit(&mut s, crash);
    assert_eq!(r.reward, 0.0);
    assert!(r.observation.contains("IndexError"), "{}", r.observation);
    assert!(
        r.observation.contains("line 2, in remove_Occ"),
        "{}",
        r.observation
    );

    let expert = s
        .expert_action()
        .unwrap()
        .expect("MBPP has reference solutions");
    let r = s.step(&expert).unwrap();
    assert!(r.success() && r.terminated);
    assert_eq!(r.reward, 1.0);
    assert_eq!(r.info["passed"], 3);
    assert_eq!(
        s.expert_action().unwrap(),
        None,
        "solved: nothing left to suggest"
    );
}

#[test]
fn slow_programs_time_out_deterministically() {
    let mbpp = env("mbpp");
    let t = task(0, &[("test-fuel", "200000000")]);
    let observe = || {
        let (mut s, _) = started(&mbpp, &t);
        submit(
            &mut s,
            "def remove_Occ(s, ch):\n    while True:\n        pass",
        )
    };
    let a = observe();
    assert!(
        a.observation.contains("time limit exceeded"),
        "{}",
        a.observation
    );
    assert_eq!(a.info["verdicts"][0], "time-limit");
    let b = observe();
    assert_eq!(a.observation, b.observation);
    assert_eq!(a.info, b.info, "fuel counts are deterministic too");

    let mut bad = Session::new(&mbpp, 0).unwrap();
    let err = bad.reset(&task(0, &[("test-fuel", "0")])).unwrap_err();
    assert!(err.to_string().contains("test-fuel"), "{err}");
}

#[test]
fn a_code_episode_snapshots_and_restores() {
    let mbpp = env("mbpp");
    let (mut s, _) = started(&mbpp, &task(3, &[]));
    let first = submit(&mut s, "print('not a solution')");
    let snapshot = s.snapshot().unwrap();
    let expert = s.expert_action().unwrap().unwrap();
    let solved = s.step(&expert).unwrap();
    assert!(solved.success());
    s.restore(&snapshot).unwrap();
    let again = s.step(&expert).unwrap();
    assert_eq!(solved.observation, again.observation);
    assert!(!first.success());
}

#[test]
fn codecontests_fixture_checks_stdin_stdout_with_tolerance() {
    let cc = env("codecontests");
    assert_eq!(cc.info.name, "codecontests");
    let n = cc.info.split_len("test").unwrap();
    for i in 0..n {
        let (mut s, obs) = started(&cc, &task(i, &[]));
        assert!(obs.contains("Example input:"), "{obs}");
        let expert = s.expert_action().unwrap().unwrap();
        let r = s.step(&expert).unwrap();
        assert!(r.success(), "problem {i}: {}", r.observation);
    }
    // Problem D prints a float: a slightly different rounding is accepted.
    let (mut s, _) = started(&cc, &task(3, &[]));
    let r = submit(
        &mut s,
        "import math\nr = int(input())\nprint(round(math.pi * r * r, 7))",
    );
    assert!(r.success(), "{}", r.observation);
    // A wrong answer shows the example's input, expected and actual output.
    let (mut s, _) = started(&cc, &task(0, &[]));
    let r = submit(&mut s, "a, b = map(int, input().split())\nprint(a - b)");
    assert!(!r.success());
    assert!(
        r.observation.contains("example 1: wrong answer"),
        "{}",
        r.observation
    );
    assert!(r.observation.contains("expected:") && r.observation.contains("got:"));
    assert_eq!(r.reward, 0.0);
}

#[test]
fn codecontests_reads_a_user_file_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = include_str!("../../../envs-wasm/code/data/codecontests-fixture.jsonl");
    let two: String = fixture.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("valid.jsonl"), &two).unwrap();
    std::fs::write(dir.path().join("test.jsonl"), fixture).unwrap();

    let file = env(&format!(
        "codecontests:{}",
        dir.path().join("valid.jsonl").display()
    ));
    assert_eq!(file.info.splits, vec![("test".to_string(), 2)]);

    let folder = env(&format!("codecontests:{}", dir.path().display()));
    assert_eq!(
        folder.info.splits,
        vec![("test".to_string(), 6), ("valid".to_string(), 2)]
    );
    let mut t = task(1, &[]);
    t.split = "valid".into();
    let (mut s, obs) = started(&folder, &t);
    assert!(obs.contains("contiguous segment"), "{obs}");
    let expert = s.expert_action().unwrap().unwrap();
    assert!(s.step(&expert).unwrap().success());

    let missing = component::load(&common::runtime(), "codecontests:/no/such/file.jsonl").err();
    assert!(format!("{:#}", missing.unwrap()).contains("/no/such/file.jsonl"));
    let no_data = component::load(&common::runtime(), "mbpp:x.jsonl").err();
    assert!(format!("{:#}", no_data.unwrap()).contains("reads no data"));
    // A bad data path names itself and says what was expected there.
    let empty = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.jsonl");
    let partial = dir.path().join("partial.jsonl");
    let python = dir.path().join("program.py");
    std::fs::write(&garbage, "not json\n").unwrap();
    std::fs::write(&partial, "{\"name\": \"x\"}\n").unwrap();
    std::fs::write(&python, "print(1)\n").unwrap();
    for (path, why) in [
        (empty.path().to_path_buf(), "holds no .jsonl files"),
        (garbage, "line 1 is not JSON"),
        (partial, "line 1 has no description"),
        (python, "not a .jsonl file"),
    ] {
        let spec = format!("codecontests:{}", path.display());
        let e = format!(
            "{:#}",
            component::load(&common::runtime(), &spec).err().unwrap()
        );
        assert!(
            e.contains(&spec) && e.contains("deepmind/code_contests"),
            "{e}"
        );
        assert!(e.contains(why), "{e}");
    }
}

#[test]
fn a_code_run_records_its_sandbox_and_replay_needs_the_same_one() {
    use crate::common::{leafe, ok};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mbpp");
    let out_s = out.to_str().unwrap();
    ok(&[
        "run",
        "--env",
        "mbpp",
        "--policy",
        "reference",
        "--tasks",
        "2",
        "--out",
        out_s,
    ]);
    let tree = std::fs::read_to_string(out.join("tree.jsonl")).unwrap();
    let header: serde_json::Value = serde_json::from_str(tree.lines().next().unwrap()).unwrap();
    assert_eq!(header["sandbox_sha256"], leafe_builtins::PYTHON_SHA256);
    assert!(env("mbpp").uses_sandbox && !env("sokoban").uses_sandbox);
    ok(&["replay", out_s]);
    // The same run as if made with another build of the interpreter component.
    let other = tree.replacen(leafe_builtins::PYTHON_SHA256, &"0".repeat(64), 1);
    std::fs::write(out.join("tree.jsonl"), other).unwrap();
    let refused = leafe(&["replay", out_s]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("ran in the Python sandbox component 0000")
            && stderr.contains("LEAFE_PYTHON_COMPONENT"),
        "{stderr}"
    );
    // An environment that runs no programs records none.
    let sokoban = dir.path().join("sokoban");
    ok(&["run", "--tasks", "1", "--out", sokoban.to_str().unwrap()]);
    let tree = std::fs::read_to_string(sokoban.join("tree.jsonl")).unwrap();
    assert!(!tree.lines().next().unwrap().contains("sandbox_sha256"));
}
