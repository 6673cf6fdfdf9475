//! What was written is read back robustly, and what a component does cannot
//! break the host: malformed trees are clear errors naming the line, a
//! non-finite reward is the environment's error on that step, and a nested
//! sandbox run never gets more than the host's own limits.

use crate::common::{leafe_command, runtime};
use leafe_builtins::test_components::BROKEN_PATH;
use leafe_host::tree::log;
use leafe_host::{
    EngineOptions, EnvComponent, EnvError, Runtime, Session, SessionError, Source, Task,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A finished two-task run of the guess environment; its tree's lines.
fn guess_run(dir: &Path) -> (PathBuf, Vec<Value>) {
    let out = dir.join("run");
    let status = leafe_command()
        .args(["run", "--env", "guess", "--tasks", "2", "--noise", "0.6"])
        .args(["--jobs", "1", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let text = std::fs::read_to_string(out.join("tree.jsonl")).unwrap();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, lines)
}

fn write_tree(out: &Path, lines: &[Value]) {
    let mut text = String::new();
    for l in lines {
        text.push_str(&serde_json::to_string(l).unwrap());
        text.push('\n');
    }
    std::fs::write(out.join("tree.jsonl"), text).unwrap();
}

/// The line number (1-based) of the `n`th node record.
fn node_line(lines: &[Value], n: usize) -> usize {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l["type"] == "node")
        .nth(n)
        .unwrap()
        .0
        + 1
}

fn leafe_fails(args: &[&str], needle: &str) {
    let out = leafe_command().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_trees_are_errors_naming_the_line_for_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (out, good) = guess_run(dir.path());
    let second = node_line(&good, 2);
    type Mutation = Box<dyn Fn(&mut Vec<Value>)>;
    let mutations: Vec<(&str, Mutation, String)> = vec![
        (
            "parent out of range",
            Box::new(move |l| l[second - 1]["parent"] = 999.into()),
            format!("line {second}"),
        ),
        (
            "parent is itself",
            Box::new(move |l| l[second - 1]["parent"] = 2.into()),
            format!("line {second}"),
        ),
        (
            "duplicate id",
            Box::new(move |l| l[second - 1]["id"] = 1.into()),
            format!("line {second}"),
        ),
        (
            "a second root",
            Box::new(move |l| l[second - 1]["parent"] = Value::Null),
            format!("line {second}"),
        ),
        (
            "another format",
            Box::new(|l| l[0]["format"] = 99.into()),
            "line 1".to_string(),
        ),
        (
            "a task twice",
            Box::new(|l| {
                let first_task: Vec<Value> = l
                    .iter()
                    .skip(1)
                    .take_while(|r| r["type"] != "task-end")
                    .cloned()
                    .chain(l.iter().find(|r| r["type"] == "task-end").cloned())
                    .collect();
                l.extend(first_task);
            }),
            "appears a second time".to_string(),
        ),
    ];
    for (what, mutate, needle) in &mutations {
        let mut lines = good.clone();
        mutate(&mut lines);
        write_tree(&out, &lines);
        let err = log::read(&out.join("tree.jsonl")).err();
        let err = format!(
            "{:#}",
            err.unwrap_or_else(|| panic!("{what}: read accepted it"))
        );
        assert!(err.contains(needle.as_str()), "{what}: {err}");
        for args in [
            vec!["replay", out.to_str().unwrap()],
            vec!["export", out.to_str().unwrap()],
            vec!["report", out.to_str().unwrap()],
        ] {
            // `report` reads the summary, not the tree: only the tree readers fail.
            if args[0] != "report" {
                leafe_fails(&args, needle);
            }
        }
        leafe_fails(
            &[
                "run",
                "--env",
                "guess",
                "--tasks",
                "2",
                "--noise",
                "0.6",
                "--jobs",
                "1",
                "--out",
                out.to_str().unwrap(),
                "--resume",
            ],
            needle,
        );
    }
    // A task without its end: resumable, but not replayed or exported as if whole.
    let mut lines = good.clone();
    let last_end = lines.iter().rposition(|r| r["type"] == "task-end").unwrap();
    lines.remove(last_end);
    write_tree(&out, &lines);
    leafe_fails(&["replay", out.to_str().unwrap()], "has no task-end");
    leafe_fails(&["export", out.to_str().unwrap()], "has no task-end");
}

#[test]
fn a_non_finite_reward_is_the_environments_error_on_that_step() {
    let env = EnvComponent::load(&runtime(), Source::File(BROKEN_PATH.into())).unwrap();
    let task = Task::new("test", 0, 0, &[]);
    for action in ["nan", "inf"] {
        let mut session = Session::new(&env, 0).unwrap();
        session.reset(&task).unwrap();
        match session.step(action) {
            Err(SessionError::Env(EnvError::Internal(m))) => {
                assert!(m.contains("non-finite reward"), "{m}")
            }
            other => panic!("{action}: {other:?}"),
        }
    }
    // Through the CLI: the task records the error, and the tree stays readable.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = leafe_command()
        .args([
            "run",
            "--env",
            BROKEN_PATH,
            "--policy",
            "human",
            "--tasks",
            "1",
        ])
        .args(["--budget", "1", "--out", out.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"nan\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{run:?}");
    assert!(stdout.contains("non-finite reward"), "{stdout}");
    log::read(&out.join("tree.jsonl")).unwrap();
    let replay = leafe_command()
        .args(["replay", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(replay.status.success(), "{replay:?}");
}

fn broken_with(options: EngineOptions) -> (std::sync::Arc<Runtime>, Session) {
    let rt = Runtime::new(EngineOptions {
        cache: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("leafe-cache")),
        ..options
    })
    .unwrap();
    let env = EnvComponent::load(&rt, Source::File(BROKEN_PATH.into())).unwrap();
    let mut session = Session::new(&env, 0).unwrap();
    session.reset(&Task::new("test", 0, 0, &[])).unwrap();
    (rt, session)
}

#[test]
fn nested_sandbox_runs_get_no_more_than_the_hosts_limits() {
    // The component asks for u32::MAX ms (49 days) and u64::MAX fuel.
    let (_rt, mut session) = broken_with(EngineOptions {
        nested_wall_ms: Some(300),
        ..Default::default()
    });
    let start = Instant::now();
    let out = session.step("python-loop").unwrap();
    assert_eq!(out.observation, "{\"time-limit\": 1}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );

    // A thousand such runs in one call share one budget (10 x 300 ms).
    let start = Instant::now();
    let out = session.step("python-loops").unwrap();
    assert_eq!(out.observation, "{\"time-limit\": 1000}");
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "{:?}",
        start.elapsed()
    );

    // --fuel caps the fuel the same way: the loop ends on fuel, not time.
    let (_rt, mut session) = broken_with(EngineOptions {
        nested_fuel: Some(50_000_000),
        ..Default::default()
    });
    let start = Instant::now();
    assert_eq!(
        session.step("python-loop").unwrap().observation,
        "{\"time-limit\": 1}"
    );
    assert!(start.elapsed() < Duration::from_secs(60));
}

fn journal_len(out: &Path) -> usize {
    std::fs::read_dir(out.join("tasks")).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        })
        .count()
    })
}

#[test]
fn a_run_killed_at_any_moment_keeps_its_finished_tasks_and_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path, jobs: &str| -> Vec<String> {
        [
            "run",
            "--env",
            "mbpp",
            "--policy",
            "reference",
            "--tasks",
            "100",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--jobs".into(), jobs.into(), "--out".into()])
        .chain([out.display().to_string()])
        .collect()
    };
    let reference = dir.path().join("reference");
    let out = leafe_command()
        .args(args(&reference, "1"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let killed = dir.path().join("killed");
    // Kill -9 when the journal holds this many tasks (the first at once,
    // before any task can have finished), then resume.
    let mut resumes = 0;
    for (i, at_least) in [0usize, 7, 23, 41, 66].into_iter().enumerate() {
        let mut cmd = leafe_command();
        cmd.args(args(&killed, "2"));
        if i > 0 {
            cmd.arg("--resume");
            resumes += 1;
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while journal_len(&killed) < at_least && start.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            !killed.join("summary.json").exists(),
            "the run finished before kill {i}: make it longer"
        );
        if i > 0 {
            // Finished tasks are on disk the moment they finish; the log of
            // an unfinished run is not passed off as whole.
            assert!(journal_len(&killed) >= at_least);
            let replay = leafe_command()
                .args(["replay", killed.to_str().unwrap()])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&replay.stderr);
            assert!(stderr.contains("has not finished"), "{stderr}");
        }
    }
    // Resume redoes only what the journal does not hold.
    let journaled = journal_len(&killed);
    let out = leafe_command()
        .args(args(&killed, "2"))
        .arg("--resume")
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["resumed_tasks"], journaled as u64,
        "after {resumes} resumes"
    );
    assert!(
        !killed.join("tasks").exists(),
        "the journal is removed at the end"
    );
    assert_eq!(
        std::fs::read(killed.join("tree.jsonl")).unwrap(),
        std::fs::read(reference.join("tree.jsonl")).unwrap(),
        "the tree is the same as one uninterrupted run's"
    );
}

/// `exec` of a small program with its own compile cache directory.
fn exec_with_cache(cache: &Path, program: &Path) -> std::process::Child {
    leafe_command()
        .env("LEAFE_CACHE_DIR", cache)
        .args(["exec", program.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn right_verdict(child: std::process::Child) {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (run["verdict"].as_str(), run["stdout"].as_str()),
        (Some("ok"), Some("42\n"))
    );
}

fn cache_entries(cache: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    entries.sort();
    entries
}

#[test]
fn a_damaged_cache_entry_is_rebuilt_and_concurrent_fills_do_not_corrupt_it() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("p.py");
    std::fs::write(&program, "print(6 * 7)\n").unwrap();
    // Two processes fill an empty cache at once.
    let cache = dir.path().join("cache");
    let (a, b) = (
        exec_with_cache(&cache, &program),
        exec_with_cache(&cache, &program),
    );
    right_verdict(a);
    right_verdict(b);
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 1, "{entries:?}");
    right_verdict(exec_with_cache(&cache, &program));

    // Damage the entry in place: the next start notices, rebuilds, and runs right.
    let entry = &entries[0];
    let mut bytes = std::fs::read(entry).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 4096] {
        *b ^= 0x5a;
    }
    std::fs::write(entry, &bytes).unwrap();
    right_verdict(exec_with_cache(&cache, &program));
    let rebuilt = std::fs::read(entry).unwrap();
    assert_ne!(rebuilt, bytes, "the damaged entry was replaced");
    let sum = std::fs::read_to_string(entry.with_extension("sum")).unwrap();
    assert_eq!(
        sum.lines().next(),
        Some(leafe_host::sha256_hex(&rebuilt).as_str())
    );
}
