//! Real ScienceWorld through the remote bridge: `envs-remote/scienceworld/server.py`
//! in a virtualenv with the PyPI package `scienceworld` (its simulator is
//! Java: a Java runtime must be on PATH, which `.ci/run` installs). The
//! oracle plays the gold action sequence ScienceWorld generates to score
//! 100; a played run with one wrong `focus on` goes back by reset and
//! replay and then finishes the gold path; `replay` verifies both runs.

use super::common::{leafe_command, leafe_with_stdin, tree_nodes, venv_with};
use super::serve::Server;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

const SCIENCEWORLD: &str = "scienceworld==1.2.3";

fn server() -> Server {
    let java = Command::new("java").arg("-version").output();
    assert!(
        java.is_ok_and(|o| o.status.success()),
        "ScienceWorld needs a Java runtime on PATH (Debian: apt-get install default-jre-headless)"
    );
    let python = venv_with(SCIENCEWORLD, "scienceworld");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../envs-remote/scienceworld/server.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::null());
    Server::spawn(cmd)
}

fn run(args: &[&str], stdin: &str) -> std::process::Output {
    let out = leafe_with_stdin(args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn summary(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

/// The actions and rewards along the path to the last node.
fn last_path(out: &Path) -> (Vec<String>, f64) {
    let nodes = tree_nodes(out);
    let mut at = nodes.last().unwrap();
    let (mut actions, mut score) = (Vec::new(), 0.0);
    while let Some(parent) = at["parent"].as_u64() {
        actions.push(at["action"].as_str().unwrap().to_string());
        score += at["reward"].as_f64().unwrap();
        at = &nodes[parent as usize];
    }
    actions.reverse();
    (actions, score)
}

#[test]
fn the_bridge_plays_scienceworld_to_100_backtracks_by_replay_and_replays() {
    let server = server();
    let env = format!("remote:{}", server.url);
    let dir = tempfile::tempdir().unwrap();
    let (gold_run, played) = (dir.path().join("gold"), dir.path().join("played"));
    let task = [
        "--env",
        &env,
        "--split",
        "find-living-thing:test",
        "--task",
        "0",
        "--jobs",
        "1",
    ];

    // The oracle follows ScienceWorld's gold action sequence (the server's expert).
    // Every answer of an episode fits the protocol's schema.
    let checked =
        super::remote::check_protocol(&server.url, &["--split", "find-living-thing:test"]);
    let text = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(text.contains("a valid StepAnswer"), "{text}");

    let mut args = vec!["run", "--policy", "oracle", "--noise", "0"];
    args.extend(task);
    args.extend(["--out", gold_run.to_str().unwrap()]);
    run(&args, "");
    let s = summary(&gold_run);
    assert_eq!(
        (s["solved"].as_u64(), s["backtracks"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    let (gold, score) = last_path(&gold_run);
    assert_eq!(score, 100.0, "the rewards add up to ScienceWorld's score");
    let header = std::fs::read_to_string(gold_run.join("tree.jsonl")).unwrap();
    let header: Value = serde_json::from_str(header.lines().next().unwrap()).unwrap();
    assert_eq!(header["rollback"], "replay");
    assert_eq!(header["env_name"], "scienceworld");

    // Played by hand: the gold path with a wrong focus (which fails the
    // task) before its own; the rule reflector goes back one step.
    let k = gold.iter().position(|a| a.starts_with("focus on")).unwrap();
    let mut typed: Vec<&str> = gold[..k].iter().map(String::as_str).collect();
    typed.push("focus on air");
    typed.extend(gold[k..].iter().map(String::as_str));
    let mut args = vec!["run", "--policy", "human"];
    args.extend(task);
    args.extend(["--out", played.to_str().unwrap()]);
    let out = run(&args, &(typed.join("\n") + "\n"));
    let prompts = String::from_utf8_lossy(&out.stderr);
    assert!(
        prompts.contains("Your task is to find a(n) living thing"),
        "{prompts}"
    );
    let s = summary(&played);
    assert_eq!(s["solved"], 1, "{s}");
    assert_eq!(s["backtracks"], 1, "{s}");
    assert_eq!(s["restores"], 1, "{s}");
    assert_eq!(
        s["replayed_steps"], k,
        "back to the state after step {k}: {s}"
    );
    let (actions, score) = last_path(&played);
    assert_eq!((actions, score), (gold.clone(), 100.0));
    let failed = tree_nodes(&played)
        .into_iter()
        .find(|n| n["action"] == "focus on air")
        .unwrap();
    assert!(failed["dead_end"].is_string(), "{failed}");

    for out in [&gold_run, &played] {
        let replay = leafe_command()
            .args(["replay", out.to_str().unwrap()])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&replay.stdout);
        assert!(
            replay.status.success() && report.starts_with("replay ok: 1 tasks"),
            "{report} {}",
            String::from_utf8_lossy(&replay.stderr)
        );
    }
}
