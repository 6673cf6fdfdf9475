//! The `leafe-host` binary end to end: the main job, replay, resume, play,
//! envs, and a clear one-line error for every kind of bad input.

use crate::common::{leafe, leafe_command, leafe_with_stdin, ok, tree_nodes};
use std::path::{Path, PathBuf};

/// The command fails with one `error:` line mentioning `needle`: exit status 1
/// for errors of the job, 2 for command-line errors (which add a `--help` hint).
fn fails(args: &[&str], needle: &str) {
    let out = leafe(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let usage = stderr.contains("try '--help'");
    assert_eq!(
        out.status.code(),
        Some(if usage { 2 } else { 1 }),
        "{args:?}: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    if !usage {
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?}: one line expected: {stderr}"
        );
    }
}

fn run_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "run", "--tasks", "6", "--noise", "0.5", "--opt", "boxes=3", "--opt", "size=8x8", "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(out.display().to_string());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run(out: &Path, extra: &[&str]) -> String {
    let args = run_args(out, extra);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn run_writes_tree_and_summary_and_replay_verifies_them() {
    let dir = tmp();
    let out = dir.path().join("run");
    let table = run(&out, &[]);
    assert!(table.contains("solve rate"), "{table}");
    assert!(table.contains("tree.jsonl,summary.json}"), "{table}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["tasks"], 6);
    assert!(
        summary["backtracks"].as_u64().unwrap() > 0,
        "noise 0.5 should cause backtracks: {summary}"
    );
    // Training data is export's job alone: run writes no second definition of it.
    assert!(!out.join("distill.jsonl").exists());
    let nodes = tree_nodes(&out);
    let revisions: Vec<&serde_json::Value> = nodes
        .iter()
        .filter(|n| !n["experience"].is_null())
        .collect();
    assert!(!revisions.is_empty());
    for n in &revisions {
        assert_ne!(n["rejected"], n["action"], "{n}");
    }
    // The summary counts what export trains on: one cf record per correction
    // (up to --cf-per-task, here more than any task has).
    let corrections = summary["corrections"].as_u64().unwrap();
    assert!(corrections > 0, "{summary}");
    let data = dir.path().join("cf.jsonl");
    ok(&[
        "export",
        out.to_str().unwrap(),
        "--reh-fraction",
        "0",
        "--cf-per-task",
        "1000",
        "--out",
        data.to_str().unwrap(),
    ]);
    let records = std::fs::read_to_string(&data).unwrap();
    assert_eq!(records.lines().count() as u64, corrections);
    for line in records.lines() {
        // The context is the state at the branch point, without the lesson.
        assert!(!line.contains("Go back"), "{line}");
    }
    let replay = ok(&["replay", out.to_str().unwrap()]);
    assert!(replay.starts_with("replay ok: 6 tasks"), "{replay}");
}

#[test]
fn runs_are_byte_identical_whatever_the_parallelism_and_snapshot_interval() {
    let dir = tmp();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(&a, &["--jobs", "1"]);
    run(&b, &["--jobs", "2"]);
    let tree = |p: &Path| std::fs::read(p.join("tree.jsonl")).unwrap();
    assert_eq!(tree(&a), tree(&b));
    // Sparse snapshots: restores replay from the nearest snapshot, same observations.
    let c = dir.path().join("c");
    run(&c, &["--snapshot-every", "5"]);
    let observations = |p: &Path| -> Vec<String> {
        String::from_utf8(tree(p))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "node")
            .map(|v| v["obs_sha256"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(observations(&a), observations(&c));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.join("summary.json")).unwrap()).unwrap();
    assert!(summary["replayed_steps"].as_u64().unwrap() > 0, "{summary}");
    ok(&["replay", c.to_str().unwrap()]);
}

#[test]
fn a_run_in_parts_gathered_and_resumed_is_the_run_of_jobs_1() {
    let dir = tmp();
    let (whole, main) = (dir.path().join("whole"), dir.path().join("main"));
    run(&whole, &["--jobs", "1"]);
    let part = |out: &Path, only: &str| -> serde_json::Value {
        serde_json::from_str(&run(out, &["--only-tasks", only])).unwrap()
    };
    // The driver's directory: settings checked, header written, nothing run.
    let prepared = part(&main, "");
    assert_eq!(prepared["tasks"], serde_json::json!([0, 1, 2, 3, 4, 5]));
    assert_eq!(prepared["done"], serde_json::json!([]));
    assert!(!main.join("summary.json").exists());
    // Each part in a directory of its own, as on other machines; tasks 4,5 together.
    std::fs::create_dir_all(main.join("tasks")).unwrap();
    for only in ["0", "1", "2", "3", "5,4"] {
        let out = dir.path().join(format!("part-{only}"));
        let done = part(&out, only);
        assert_eq!(
            done["done"].as_array().unwrap().len(),
            only.split(',').count()
        );
        for file in std::fs::read_dir(out.join("tasks")).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), main.join("tasks").join(file.file_name())).unwrap();
        }
    }
    let gathered: serde_json::Value =
        serde_json::from_str(&run(&main, &["--only-tasks", "", "--resume"])).unwrap();
    assert_eq!(gathered["done"], prepared["tasks"]);
    run(&main, &["--resume"]);
    let tree = |p: &Path| std::fs::read(p.join("tree.jsonl")).unwrap();
    assert_eq!(tree(&main), tree(&whole));
    assert!(!main.join("tasks").exists());
    ok(&["replay", main.to_str().unwrap()]);
    fails(
        &run_args(&main, &["--only-tasks", "7", "--resume"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "task 7 is not one of the run's tasks (0..6)",
    );
    fails(
        &["run", "--only-tasks", "1,x"],
        "expected task indices separated by commas, got 'x'",
    );
}

#[test]
fn tampered_and_truncated_trees_are_caught_and_resume_completes_a_run() {
    let dir = tmp();
    let out = dir.path().join("run");
    run(&out, &["--jobs", "1"]);
    let tree_path = out.join("tree.jsonl");
    let original = std::fs::read_to_string(&tree_path).unwrap();

    // A changed observation hash: replay names the node.
    let node_line = original
        .lines()
        .position(|l| l.contains("\"id\":3,"))
        .unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    let v: serde_json::Value = serde_json::from_str(&lines[node_line]).unwrap();
    let (task, hash) = (
        v["task"].as_u64().unwrap(),
        v["obs_sha256"].as_str().unwrap().to_string(),
    );
    lines[node_line] = lines[node_line].replace(&hash, &"0".repeat(64));
    std::fs::write(&tree_path, lines.join("\n") + "\n").unwrap();
    fails(
        &["replay", out.to_str().unwrap()],
        &format!("task {task} node 3: the observation hash differs"),
    );

    // Garbage in the middle: the line is named.
    lines[node_line] = "{not json".into();
    std::fs::write(&tree_path, lines.join("\n") + "\n").unwrap();
    fails(
        &["replay", out.to_str().unwrap()],
        &format!("line {} is corrupt", node_line + 1),
    );

    // A crash mid-write: a torn last line and no summary.
    let cut = original.len() - original.lines().last().unwrap().len() / 2 - 1;
    let cut = original[..cut].rfind("\n{\"type\":\"node\"").unwrap() + 40;
    std::fs::write(&tree_path, &original[..cut]).unwrap();
    std::fs::remove_file(out.join("summary.json")).unwrap();
    fails(&["replay", out.to_str().unwrap()], "torn line");
    fails(
        &run_args(&out, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "already holds a run",
    );
    fails(
        &run_args(&out, &["--resume", "--budget", "7"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "other settings (budget",
    );
    let resumed = run(&out, &["--resume", "--jobs", "1"]);
    assert!(resumed.contains("solve rate"));
    assert_eq!(
        std::fs::read_to_string(&tree_path).unwrap(),
        original,
        "resume reproduces the run"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["resumed_tasks"].as_u64().unwrap() >= 1);
}

#[test]
fn bad_input_gets_one_clear_line_and_a_failure_status() {
    let dir = tmp();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").unwrap()).unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("out");

    fails(
        &["run", "--env", "chess", "--out", o],
        "unknown environment 'chess'",
    );
    fails(
        &["run", "--env", junk.to_str().unwrap(), "--out", o],
        "not a WebAssembly file",
    );
    fails(
        &["run", "--env", core.to_str().unwrap(), "--out", o],
        "not a component",
    );
    fails(
        &["run", "--env", "/nonexistent/env.wasm", "--out", o],
        "cannot read",
    );
    fails(&["run", "--split", "dev", "--out", o], "no split 'dev'");
    fails(&["run", "--task", "5000", "--out", o], "out of range");
    fails(&["run", "--tasks", "0", "--out", o], "at least 1");
    fails(
        &["run", "--budget", "0", "--out", o],
        "--budget must be between 1",
    );
    fails(
        &["run", "--noise", "2", "--out", o],
        "--noise must be between 0 and 1",
    );
    fails(
        &["run", "--policy", "telepathy", "--out", o],
        "unknown policy",
    );
    fails(&["run", "--opt", "size=99x99", "--out", o], "size=99x99");
    fails(
        &["run", "--opt", "colour=red", "--out", o],
        "unknown option 'colour'",
    );
    fails(
        &["run", "--opt", "nonsense", "--out", o],
        "expected KEY=VALUE",
    );
    fails(&["run", "--tasks", "many"], "invalid value 'many'");
    fails(
        &["run", "--out", under_file.to_str().unwrap()],
        "cannot create output directory",
    );
    fails(
        &["replay", dir.path().join("nothing").to_str().unwrap()],
        "cannot read",
    );
    fails(
        &["envs", "--env", junk.to_str().unwrap()],
        "not a WebAssembly file",
    );
    assert!(
        !out.join("summary.json").exists(),
        "no summary for a failed run"
    );
}

#[test]
fn envs_lists_builtins_and_components_given_by_path() {
    let text = ok(&["envs", "--env", leafe_builtins::test_components::GUESS_PATH]);
    assert!(text.contains("sokoban 0.1.0 [built-in: sokoban]"), "{text}");
    assert!(
        text.contains("splits: train (100000), test (1000)"),
        "{text}"
    );
    assert!(text.contains("guess 0.1.0 [file:"), "{text}");
}

#[test]
fn a_component_given_by_path_runs_and_replays_like_a_builtin() {
    let dir = tmp();
    let out = dir.path().join("guess");
    let env = leafe_builtins::test_components::GUESS_PATH;
    let table = ok(&[
        "run",
        "--env",
        env,
        "--tasks",
        "5",
        "--noise",
        "0.6",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(table.contains("env "), "{table}");
    ok(&["replay", out.to_str().unwrap()]);
    // The built-in is the same component, so it may stand in for the file.
    ok(&["replay", out.to_str().unwrap(), "--env", "guess"]);
    let other = PathBuf::from(leafe_builtins::test_components::SOKOBAN_PATH);
    fails(
        &[
            "replay",
            out.to_str().unwrap(),
            "--env",
            other.to_str().unwrap(),
        ],
        "replay needs the same environment",
    );
}

#[test]
fn play_moves_undoes_and_branches() {
    let out = leafe_with_stdin(
        &["play", "--env", "sokoban", "--task", "2"],
        "help\nleft\nup\nundo\nbranch 0\nhint\njump\ntree\nbranch 9\nquit\n",
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "[state 0]",
        "[state 1]",
        "[state 2]",
        "expert: ",
        "Invalid action 'jump'",
        "  0: start",
        "* 3: from 0 by 'jump'",
        "no state 9",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
}

#[test]
fn runs_without_out_get_a_new_directory_each_time() {
    let dir = tmp();
    let run_here = || {
        let out = leafe_command()
            .args(["run", "--tasks", "2"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run_here().contains("runs/sokoban-test-1/"));
    assert!(run_here().contains("runs/sokoban-test-2/"));
    assert!(dir.path().join("runs/sokoban-test-1/summary.json").exists());
    fails(&["run", "--resume"], "--out");
}

#[test]
fn exec_runs_a_program_and_reports_a_verdict_for_anything() {
    let dir = tmp();
    let prog = dir.path().join("prog.py");
    std::fs::write(
        &prog,
        "import sys\nn = int(input())\nprint(n * 2)\nsys.exit(4)\n",
    )
    .unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "21\n").unwrap();
    let (p, i) = (prog.to_str().unwrap(), input.to_str().unwrap());
    let out = leafe(&["exec", p, "--stdin", i]);
    assert_eq!(out.status.code(), Some(0), "a verdict was reached");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("verdict: ok · exit code 4"));

    let json: serde_json::Value =
        serde_json::from_str(&ok(&["exec", p, "--stdin", i, "--json"])).unwrap();
    assert_eq!(json["verdict"], "ok");
    assert_eq!(json["exit_code"], 4);
    assert_eq!(json["stdout"], "42\n");
    assert!(json["fuel_used"].as_u64().unwrap() > 0);
    // Which build of the interpreter gave the verdict.
    assert_eq!(json["sandbox_sha256"], leafe_builtins::PYTHON_SHA256);
    assert!(json["wall_us"].as_u64().is_some());

    // Limits from the flags; a program that hits one still exits 0.
    let out = leafe_with_stdin(
        &[
            "exec",
            "-",
            "--json",
            "--wall-ms",
            "300",
            "--fuel",
            "1000000000000",
        ],
        "while True: pass",
    );
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verdict"], "time-limit");
    let out = leafe_with_stdin(
        &["exec", "-", "--json", "--output-kb", "1"],
        "print('x' * 5000)",
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verdict"], "output-limit");
    assert_eq!(json["stdout"].as_str().unwrap().len(), 1024);
    let out = leafe_with_stdin(
        &["exec", "-", "--json", "--memory-mb", "64"],
        "x = bytearray(200 * 2**20)",
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verdict"], "memory-limit");
}

#[test]
fn exec_runs_assert_and_stdin_stdout_test_files() {
    let dir = tmp();
    let prog = dir.path().join("add.py");
    std::fs::write(&prog, "def add(a, b):\n    return a + b\n").unwrap();
    let asserts = dir.path().join("tests.py");
    std::fs::write(
        &asserts,
        "import math\nassert add(1, 2) == 3\nassert add(2, 2) == 5\nassert add(None, 1) == 1\n",
    )
    .unwrap();
    let p = prog.to_str().unwrap();
    let report = ok(&["exec", p, "--tests", asserts.to_str().unwrap()]);
    assert!(report.contains("test 1   pass"), "{report}");
    assert!(report.contains("test 2   fail"), "{report}");
    assert!(report.contains("expected 5, got 4"), "{report}");
    assert!(report.contains("TypeError"), "{report}");
    assert!(report.ends_with("passed 1/3\n"), "{report}");

    let sum = dir.path().join("sum.py");
    std::fs::write(&sum, "a, b = map(int, input().split())\nprint(a + b)\n").unwrap();
    let io = dir.path().join("io.jsonl");
    std::fs::write(
        &io,
        "{\"input\": \"1 2\\n\", \"output\": \"3\\n\"}\n{\"input\": \"5 5\\n\", \"output\": \"11\"}\n",
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "exec",
        sum.to_str().unwrap(),
        "--tests",
        io.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        (json["passed"].as_u64(), json["total"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(json["sandbox_sha256"], leafe_builtins::PYTHON_SHA256);
    assert_eq!(json["tests"][1]["verdict"], "wrong-answer");
    assert!(
        json["tests"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("expected \"11\", got \"10\"")
    );

    let lists = dir.path().join("io.json");
    std::fs::write(&lists, r#"{"input": ["1 1\n"], "output": ["2\n"]}"#).unwrap();
    let report = ok(&[
        "exec",
        sum.to_str().unwrap(),
        "--tests",
        lists.to_str().unwrap(),
    ]);
    assert!(report.ends_with("passed 1/1\n"), "{report}");

    let empty = dir.path().join("empty.py");
    std::fs::write(&empty, "print('no asserts here')\n").unwrap();
    fails(
        &["exec", p, "--tests", empty.to_str().unwrap()],
        "has no tests",
    );
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "not json\n").unwrap();
    fails(
        &["exec", p, "--tests", bad.to_str().unwrap()],
        "bad.jsonl:1",
    );
    fails(
        &["exec", "/no/such/prog.py"],
        "cannot read /no/such/prog.py",
    );
    fails(&["exec", p, "--output-kb", "0"], "--output-kb");
    fails(&["exec", p, "--fuel", "0"], "--fuel must be at least 1");
}

#[test]
fn eval_reports_pass_rates_and_per_task_results() {
    let dir = tmp();
    let eval_dir = dir.path().join("eval");
    let out = ok(&[
        "eval",
        "--env",
        "mbpp",
        "--tasks",
        "8",
        "--policy",
        "reference",
        "--out",
        eval_dir.to_str().unwrap(),
    ]);
    assert!(out.contains("pass@1    100.0%"), "{out}");
    let results = std::fs::read_to_string(eval_dir.join("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 8);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["pass_at"]["pass@1"], 1.0);
    assert!(summary["busy_seconds"].as_f64().unwrap() > 0.0, "{summary}");
    // Which interpreter build judged the programs (builds differ).
    let sandbox = summary["sandbox_sha256"].as_str().unwrap_or_default();
    assert!(
        sandbox.len() == 64 && sandbox.bytes().all(|b| b.is_ascii_hexdigit()),
        "{summary}"
    );
    // Again, the earlier evaluation's longest tasks first: the same results.
    let again = dir.path().join("again");
    ok(&[
        "eval",
        "--env",
        "mbpp",
        "--tasks",
        "8",
        "--policy",
        "reference",
        "--jobs",
        "2",
        "--longest-first",
        eval_dir.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    let without_times = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("busy_seconds");
                v
            })
            .collect()
    };
    assert_eq!(
        without_times(&std::fs::read_to_string(again.join("results.jsonl")).unwrap()),
        without_times(&results)
    );
    fails(
        &[
            "eval",
            "--env",
            "mbpp",
            "--tasks",
            "2",
            "--longest-first",
            "/nonexistent",
        ],
        "--longest-first: cannot read /nonexistent/results.jsonl",
    );

    // The noisy oracle on sokoban: Pass@k from several samples per task.
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--env",
        "sokoban",
        "--tasks",
        "3",
        "--policy",
        "oracle",
        "--noise",
        "0.3",
        "--samples",
        "4",
        "--k",
        "1,2,4,8",
        "--json",
    ]))
    .unwrap();
    let pass = &json["pass_at"];
    let (p1, p4) = (
        pass["pass@1"].as_f64().unwrap(),
        pass["pass@4"].as_f64().unwrap(),
    );
    assert!(p1 <= p4, "{json}");
    assert!(
        pass.get("pass@8").is_none(),
        "k above --samples is skipped: {json}"
    );
    fails(&["eval", "--env", "mbpp", "--samples", "0"], "--samples");
    fails(
        &["eval", "--env", "sokoban", "--policy", "nobody"],
        "unknown policy",
    );
}

#[test]
fn run_explores_code_tasks_with_the_reference_policy() {
    let dir = tmp();
    let out = dir.path().join("run");
    let table = ok(&[
        "run",
        "--env",
        "codecontests",
        "--policy",
        "reference",
        "--tasks",
        "6",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(table.contains("solve rate 100.0%"), "{table}");
    let replay = ok(&["replay", out.to_str().unwrap()]);
    assert!(replay.starts_with("replay ok"), "{replay}");
}

#[test]
fn methods_spend_the_same_budget_differently() {
    let dir = tmp();
    let nodes_of = |method: &str| -> (serde_json::Value, Vec<serde_json::Value>) {
        let out = dir.path().join(method);
        let table = ok(&[
            "run",
            "--tasks",
            "8",
            "--noise",
            "0.6",
            "--opt",
            "boxes=3",
            "--opt",
            "size=8x8",
            "--budget",
            "60",
            "--method",
            method,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(table.contains(&format!("method {method}")), "{table}");
        let records: Vec<serde_json::Value> = std::fs::read_to_string(out.join("tree.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let header = records[0].clone();
        let nodes = records
            .into_iter()
            .filter(|r| r["type"] == "node")
            .collect();
        (header, nodes)
    };
    let first_nodes = |nodes: &[serde_json::Value]| -> Vec<serde_json::Value> {
        // The first node of every rollout after the first.
        nodes
            .iter()
            .filter(|n| n["branch"].as_u64() > Some(0))
            .filter(|n| {
                let parent = n["parent"].as_u64().unwrap();
                nodes.iter().any(|p| {
                    p["task"] == n["task"]
                        && p["id"].as_u64() == Some(parent)
                        && p["branch"] != n["branch"]
                })
            })
            .cloned()
            .collect()
    };
    for method in ["leafe", "sample", "refine"] {
        let (header, nodes) = nodes_of(method);
        assert_eq!(header["method"], method);
        let restarts = first_nodes(&nodes);
        assert!(
            !restarts.is_empty(),
            "{method}: some rollouts failed and were followed up"
        );
        let from_root = restarts.iter().all(|n| n["parent"] == 0);
        let with_lesson = restarts.iter().all(|n| n["experience"].is_string());
        match method {
            "leafe" => assert!(
                !from_root && with_lesson,
                "leafe branches from where it failed"
            ),
            "sample" => assert!(
                from_root && restarts.iter().all(|n| n["experience"].is_null()),
                "sample restarts without lessons"
            ),
            _ => assert!(from_root && with_lesson, "refine restarts with the lessons"),
        }
        let replay = ok(&["replay", dir.path().join(method).to_str().unwrap()]);
        assert!(replay.starts_with("replay ok"), "{replay}");
    }
    // A run continues only with the settings it started with.
    let sample = dir.path().join("sample");
    fails(
        &[
            "run",
            "--tasks",
            "8",
            "--noise",
            "0.6",
            "--opt",
            "boxes=3",
            "--opt",
            "size=8x8",
            "--budget",
            "60",
            "--method",
            "leafe",
            "--out",
            sample.to_str().unwrap(),
            "--resume",
        ],
        "method",
    );
}

#[test]
fn export_writes_traceable_chat_records_for_each_kind_of_data() {
    let dir = tmp();
    let run_dir = dir.path().join("leafe");
    run(&run_dir, &["--budget", "120"]);
    let out = dir.path().join("leafe.jsonl");
    let said = ok(&[
        "export",
        run_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--beta",
        "0.5",
        "--reh-fraction",
        "1",
    ]);
    assert!(said.starts_with("wrote "), "{said}");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tree: Vec<serde_json::Value> = std::fs::read_to_string(run_dir.join("tree.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["type"] == "node")
        .collect();
    let node = |task: &serde_json::Value, id: &serde_json::Value| {
        tree.iter()
            .find(|n| &n["task"] == task && &n["id"] == id)
            .unwrap()
            .clone()
    };
    let cf: Vec<&serde_json::Value> = records.iter().filter(|r| r["kind"] == "cf").collect();
    let reh: Vec<&serde_json::Value> = records.iter().filter(|r| r["kind"] == "reh").collect();
    assert!(!cf.is_empty() && !reh.is_empty(), "{said}");
    for r in &cf {
        let source = node(&r["source"]["task"], &r["source"]["node"]);
        assert!(
            source["experience"].is_string(),
            "a cf record comes from a correction"
        );
        let messages = r["messages"].as_array().unwrap();
        let (target, context) = messages.split_last().unwrap();
        assert_eq!(target["role"], "assistant");
        assert!(target.get("weight").is_none(), "the target is trained on");
        assert_eq!(
            target["content"],
            format!("Action: {}", source["action"].as_str().unwrap())
        );
        assert!(
            context
                .iter()
                .filter(|m| m["role"] == "assistant")
                .all(|m| m["weight"] == 0)
        );
        // The experience is *not* in the input: the model must learn to do without it.
        assert!(context.iter().all(|m| {
            !m["content"]
                .as_str()
                .unwrap()
                .contains("Lessons from earlier attempts")
        }));
        assert_eq!(r["weight"], 1.0);
    }
    assert!(reh.iter().all(|r| r["weight"] == 0.5));
    assert!(cf.len() <= 3 * 6, "at most 3 per task");

    // RFT and world-model data from a sampling run.
    let sample = dir.path().join("sample");
    run(&sample, &["--method", "sample", "--budget", "120"]);
    let said = ok(&["export", sample.to_str().unwrap(), "--data", "rft"]);
    assert!(said.contains(" rft)"), "{said}");
    assert!(sample.join("chat-rft.jsonl").exists());
    ok(&["export", sample.to_str().unwrap(), "--data", "iwm"]);
    let iwm = std::fs::read_to_string(sample.join("chat-iwm.jsonl")).unwrap();
    let transitions = std::fs::read_to_string(sample.join("tree.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"type\":\"node\"") && !l.contains("\"parent\":null"))
        .count();
    assert_eq!(iwm.lines().count(), transitions);

    fails(
        &[
            "export",
            run_dir.to_str().unwrap(),
            sample.to_str().unwrap(),
        ],
        "--out",
    );
    fails(
        &["export", run_dir.to_str().unwrap(), "--reh-fraction", "2"],
        "--reh-fraction",
    );
    // GRPO's data comes from groups of independent rollouts only.
    fails(
        &[
            "export",
            sample.to_str().unwrap(),
            "--data",
            "grpo",
            "--out",
            "/dev/null",
        ],
        "needs a `run --method group` run",
    );
    fails(
        &["export", dir.path().join("nothing").to_str().unwrap()],
        "cannot read",
    );
}

#[test]
fn report_compares_evals_and_runs_in_markdown_and_svg() {
    let dir = tmp();
    let eval = |name: &str, noise: &str| {
        let out = dir.path().join(name);
        ok(&[
            "eval",
            "--env",
            "sokoban",
            "--policy",
            "oracle",
            "--noise",
            noise,
            "--tasks",
            "4",
            "--samples",
            "4",
            "--k",
            "1,4",
            "--out",
            out.to_str().unwrap(),
        ]);
        out
    };
    let (noisy, clean) = (eval("noisy", "0.9"), eval("clean", "0.0"));
    let run_dir = dir.path().join("explored");
    run(&run_dir, &[]);
    let svg = dir.path().join("curve.svg");
    let md = ok(&[
        "report",
        noisy.to_str().unwrap(),
        clean.to_str().unwrap(),
        run_dir.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(
        md.contains("| eval | env | split | policy | tasks | samples | pass@1 | pass@2 | pass@4 |"),
        "{md}"
    );
    assert!(
        md.contains("| clean | sokoban | test | oracle | 4 | 4 | 100.0 | 100.0 | 100.0 |"),
        "{md}"
    );
    assert!(
        md.contains("| explored | sokoban | test | oracle | leafe | 6 |"),
        "{md}"
    );
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.matches("<polyline").count() == 2);
    assert!(picture.contains(">noisy<") && picture.contains(">clean<"));

    fails(&["report", dir.path().to_str().unwrap()], "summary.json");
    fails(
        &[
            "report",
            run_dir.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
        "needs at least one eval",
    );
}

#[test]
fn the_human_policy_reads_actions_from_the_terminal() {
    let dir = tmp();
    let out = dir.path().join("human");
    let run = leafe_with_stdin(
        &[
            "run",
            "--env",
            "guess",
            "--policy",
            "human",
            "--task",
            "0",
            "--budget",
            "5",
            "--max-depth",
            "0",
            "--out",
            out.to_str().unwrap(),
        ],
        "50\nseventy\n",
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("I am thinking of a number"), "{stderr}");
    assert!(stderr.contains("... (100 in all)"), "{stderr}");
    // Two actions typed, then the input ended: the task records the error, the run finishes.
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("standard input ended"), "{stdout}");
    let tree = std::fs::read_to_string(out.join("tree.jsonl")).unwrap();
    assert!(tree.contains("\"action\":\"50\"") && tree.contains("\"action\":\"seventy\""));
}

/// Every file under `dir`, with its bytes.
fn snapshot_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn refused_runs_and_evaluations_leave_what_is_there_untouched() {
    let dir = tmp();
    let out = dir.path().join("run");
    run(&out, &[]);
    let before = snapshot_of(&out);
    assert!(before.iter().any(|(p, _)| p.ends_with("summary.json")));
    let o = out.to_str().unwrap();
    fails(&["run", "--tasks", "6", "--out", o], "already holds a run");
    fails(
        &[
            "run", "--tasks", "6", "--noise", "0.1", "--out", o, "--resume",
        ],
        "other settings (noise",
    );
    fails(
        &[
            "eval", "--env", "sokoban", "--policy", "oracle", "--tasks", "2", "--out", o,
        ],
        "already holds a run",
    );
    assert_eq!(snapshot_of(&out), before, "nothing of the run changed");

    let eval = dir.path().join("eval");
    let e = eval.to_str().unwrap();
    let args = [
        "eval", "--env", "sokoban", "--policy", "oracle", "--tasks", "2", "--out", e,
    ];
    ok(&args);
    fails(&args, "already holds a run or an evaluation (summary.json)");
    ok(&[&args[..], &["--force"]].concat());
}

#[test]
fn flags_out_of_bounds_are_clear_errors() {
    fails(
        &[
            "eval", "--env", "sokoban", "--policy", "oracle", "--k", "0,1",
        ],
        "--k values must be at least 1",
    );
    fails(
        &[
            "eval",
            "--env",
            "sokoban",
            "--policy",
            "oracle",
            "--samples",
            "0",
        ],
        "--samples must be between 1 and 10000",
    );
    fails(
        &[
            "eval",
            "--env",
            "sokoban",
            "--policy",
            "oracle",
            "--samples",
            "4000000000",
        ],
        "--samples must be between",
    );
    fails(
        &["run", "--budget", "0"],
        "--budget must be between 1 and 100000",
    );
    fails(
        &["run", "--budget", "4000000000"],
        "--budget must be between",
    );
    fails(
        &["run", "--wall-ms", "999999999999"],
        "--wall-ms must be between",
    );
    fails(
        &["run", "--memory-mb", "99999999"],
        "--memory-mb must be between",
    );
    fails(
        &["exec", "x.py", "--output-kb", "99999999"],
        "--output-kb must be between",
    );
    fails(&["run", "--jobs", "0"], "--jobs must be at least 1");
    // Too many jobs are lowered, with a note, not refused.
    let dir = tmp();
    let prog = dir.path().join("p.py");
    std::fs::write(&prog, "print(2)\n").unwrap();
    let out = leafe(&["exec", prog.to_str().unwrap(), "--jobs", "100000"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than 4 per core"));
    // A memory limit the interpreter cannot start in is refused before the
    // interpreter is compiled, saying what it needs.
    fails(
        &[
            "exec",
            prog.to_str().unwrap(),
            "--memory-mb",
            "2",
            "--no-cache",
        ],
        "below the",
    );
}

#[test]
fn eval_episodes_take_the_tasks_own_max_steps() {
    let dir = tmp();
    let steps = |max_steps: &str| -> Vec<u64> {
        let out = dir.path().join(format!("eval-{max_steps}"));
        ok(&[
            "eval",
            "--env",
            "guess",
            "--tasks",
            "6",
            "--policy",
            "oracle",
            "--noise",
            "1.0",
            "--opt",
            &format!("max-steps={max_steps}"),
            "--out",
            out.to_str().unwrap(),
        ]);
        std::fs::read_to_string(out.join("results.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["steps"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    // guess truncates at 10 steps by default; random guesses need more.
    assert!(steps("300").iter().any(|s| *s > 10), "above the default");
    // guess runs no programs: its summary names no sandbox build.
    let summary = std::fs::read_to_string(dir.path().join("eval-300/summary.json")).unwrap();
    assert!(!summary.contains("sandbox_sha256"), "{summary}");
    assert!(steps("3").iter().all(|s| *s <= 3), "below it");
    fails(
        &["eval", "--env", "guess", "--opt", "max-steps=lots"],
        "option max-steps=\"lots\" is not valid",
    );
}

/// `--budget-unit env` charges every return to an earlier state the steps a
/// reset-and-replay would re-execute; the summary counts both units either
/// way, and the header records the unit and the prompt.
#[test]
fn the_budget_unit_decides_what_a_backtrack_costs() {
    let dir = tmp();
    let summary_of = |unit: &str| -> (serde_json::Value, serde_json::Value) {
        let out = dir.path().join(unit);
        run(&out, &["--budget", "60", "--budget-unit", unit]);
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        let header: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(out.join("tree.jsonl"))
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        (summary, header)
    };
    let runs = [summary_of("policy"), summary_of("env")];
    for (unit, (s, header)) in ["policy", "env"].into_iter().zip(&runs) {
        assert_eq!(header["budget_unit"], unit);
        assert_eq!(s["budget_unit"], unit);
        assert!(
            header["prompt"]["system"]
                .as_str()
                .unwrap()
                .contains("{action_hint}")
        );
        assert_eq!(header["prompt"]["history_chars"], 24_000);
        let u = |k: &str| s[k].as_u64().unwrap();
        assert_eq!(
            u("env_steps"),
            u("steps") + u("replayed_steps") + u("replay_avoided_steps")
        );
        for t in s["per_task"].as_array().unwrap() {
            let t = |k: &str| t[k].as_u64().unwrap();
            let spent = match unit {
                "policy" => t("steps"),
                _ => t("steps") + t("replayed_steps") + t("replay_avoided_steps"),
            };
            assert!(spent <= 60, "{unit}: {spent} steps spent of 60");
        }
        if unit == "env" {
            assert!(u("replay_avoided_steps") > 0, "backtracks were charged");
            assert!(
                u("steps") < runs[0].0["steps"].as_u64().unwrap(),
                "the same budget buys fewer actions when going back costs steps"
            );
        }
    }
}

/// The rule reflector's mid-rollout check: when K steps bring no reward it
/// goes back to where they began, saying so with the environment's feedback.
#[test]
fn the_rule_reflector_checks_every_k_steps() {
    let dir = tmp();
    let out = dir.path().join("run");
    run(&out, &["--reflect-every", "6", "--budget", "80"]);
    let nodes = tree_nodes(&out);
    let stalled: Vec<&serde_json::Value> = nodes
        .iter()
        .filter(|n| {
            n["experience"]
                .as_str()
                .is_some_and(|e| e.contains("brought no reward; the last feedback was:"))
        })
        .collect();
    assert!(!stalled.is_empty(), "some windows of 6 steps stalled");
    for n in &stalled {
        // It names the first step of the stalled window: an earlier child
        // of the same state, K steps before the check.
        let replaced = nodes.iter().find(|o| {
            o["task"] == n["task"] && o["parent"] == n["parent"] && o["action"] == n["rejected"]
        });
        let replaced = replaced.expect("the rejected step is in the tree");
        assert!(replaced["id"].as_u64() < n["id"].as_u64());
    }
    let replay = ok(&["replay", out.to_str().unwrap()]);
    assert!(replay.starts_with("replay ok"), "{replay}");
}
