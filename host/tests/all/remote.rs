//! Remote environments (`--env remote:URL`). A `leafe-host serve` process
//! speaks the protocol, so the bridge is tested against one: the same run
//! through the bridge (reset and replay) and on the component (snapshots)
//! makes the same tree, `replay` verifies it through the bridge, and a
//! server that dies mid-run is a clear error that `--resume` recovers from
//! on a restarted server. ScienceWorld's own server is in `scienceworld.rs`.

use super::common::{leafe, leafe_command, ok, tree_nodes};
use super::serve::Server;
use serde_json::Value;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A run's nodes less their snapshot hashes (which only the component has).
fn nodes_without_snapshots(out: &Path) -> Vec<Value> {
    tree_nodes(out)
        .into_iter()
        .map(|mut n| {
            n.as_object_mut().unwrap().remove("snapshot");
            n
        })
        .collect()
}

fn header(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("tree.jsonl")).unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

/// A sokoban run with backtracks: the settings shared by both sides.
const RUN: [&str; 12] = [
    "run", "--tasks", "4", "--noise", "0.5", "--budget", "80", "--opt", "size=8x8", "--opt",
    "boxes=3", "--jobs",
];

fn run(env: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&str> = RUN.to_vec();
    args.extend(["2", "--env", env, "--out", out.to_str().unwrap()]);
    args.extend(extra);
    leafe(&args)
}

/// The same run on the sokoban component (DIR/local) and through `server`
/// (DIR/remote), which must give the same tree: same observations, so the
/// same decisions and lessons. Returns the directory and the remote spec.
fn same_run_both_ways(server: &Server) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    let spec = format!("remote:{}#sokoban", server.url);
    for (env, out) in [("sokoban", &local), (spec.as_str(), &remote)] {
        let o = run(env, out, &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        nodes_without_snapshots(&local),
        nodes_without_snapshots(&remote)
    );
    (dir, spec)
}

#[test]
fn a_remote_run_makes_the_components_tree_by_reset_and_replay() {
    let server = Server::start(&[]);
    let (dir, spec) = same_run_both_ways(&server);
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    assert_eq!(header(&local)["rollback"], "snapshot");
    assert_eq!(header(&remote)["rollback"], "replay");
    assert_eq!(header(&remote)["env"], spec);
    assert_eq!(
        header(&local)["component_sha256"],
        header(&remote)["component_sha256"],
        "the server reports the component's hash"
    );
    let (l, r) = (
        json(&local.join("summary.json")),
        json(&remote.join("summary.json")),
    );
    assert!(l["backtracks"].as_u64().unwrap() > 0, "{l}");
    assert_eq!(l["backtracks"], r["backtracks"]);
    assert_eq!(l["replayed_steps"], 0, "every state is snapshotted: {l}");
    // Every return to a state replays its whole path.
    let replayed = r["replayed_steps"].as_u64().unwrap();
    assert!(replayed > r["backtracks"].as_u64().unwrap(), "{r}");
    assert_eq!(r["env_steps"], l["env_steps"], "{l} {r}");
    // Only the start is kept of a remote state.
    let snapshots = tree_nodes(&remote)
        .iter()
        .filter(|n| !n["snapshot"].is_null())
        .count();
    assert_eq!(snapshots, 4, "one per task");

    let report = ok(&["replay", remote.to_str().unwrap()]);
    assert!(report.starts_with("replay ok: 4 tasks"), "{report}");
    // Export rebuilds the prompts through the bridge too.
    let data = dir.path().join("data.jsonl");
    ok(&[
        "export",
        remote.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
    ]);
    let local_data = dir.path().join("local.jsonl");
    ok(&[
        "export",
        local.to_str().unwrap(),
        "--out",
        local_data.to_str().unwrap(),
    ]);
    assert_eq!(
        records_without_source(&data),
        records_without_source(&local_data)
    );
}

/// Exported records less `source` (which names the run and its `--env`).
fn records_without_source(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(!text.is_empty());
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("source");
            v
        })
        .collect()
}

#[test]
fn a_dead_server_is_a_clear_error_and_resume_finishes_on_a_restarted_one() {
    let gone = leafe(&["run", "--env", "remote:http://127.0.0.1:9", "--tasks", "1"]);
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(gone.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach the environment server"),
        "{stderr}"
    );
    let server = Server::start(&[]);
    let spec = format!("remote:{}", server.url);
    let many = leafe(&["run", "--env", &spec, "--tasks", "1"]);
    let stderr = String::from_utf8_lossy(&many.stderr);
    assert!(stderr.contains("name one, remote:"), "{stderr}");
    let wrong = leafe(&["run", "--env", &format!("{spec}#chess"), "--tasks", "1"]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("no environment 'chess'"), "{stderr}");

    // Kill the server once the first task is in the journal.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let spec = format!("{spec}#sokoban");
    let args = [
        "run",
        "--env",
        &spec,
        "--tasks",
        "40",
        "--noise",
        "1.0",
        "--budget",
        "150",
        "--jobs",
        "1",
        "--opt",
        "size=8x8",
        "--out",
        out.to_str().unwrap(),
    ];
    let child = leafe_command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !journal_has_a_task(&out) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no task finished"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let port = server.url.rsplit(':').next().unwrap().to_string();
    drop(server);
    let failed = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stopped answering"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.join("summary.json").exists());

    // The same address again: the run finishes what is left.
    let _again = Server::start(&["--bind", &format!("127.0.0.1:{port}")]);
    let resumed = leafe(&[&args[..], &["--resume"]].concat());
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["tasks"], 40);
    assert_eq!(summary["errors"], 0, "{summary}");
    assert!(summary["resumed_tasks"].as_u64().unwrap() >= 1, "{summary}");
    // What was kept and what was redone make the uninterrupted run's tree.
    let local = dir.path().join("local");
    let mut local_args = args.to_vec();
    local_args[2] = "sokoban";
    let last = local_args.len() - 1;
    let local_dir = local.to_str().unwrap().to_string();
    local_args[last] = &local_dir;
    ok(&local_args);
    assert_eq!(
        nodes_without_snapshots(&local),
        nodes_without_snapshots(&out)
    );
}

fn journal_has_a_task(out: &Path) -> bool {
    std::fs::read_dir(out.join("tasks"))
        .map(|d| d.count() > 0)
        .unwrap_or(false)
}

#[test]
fn a_busy_server_is_waited_for() {
    // One session at a time on the server, two tasks at a time in the run:
    // the second reset is answered 429 until the first task closes its session.
    let server = Server::start(&["--max-sessions", "1"]);
    let (dir, _) = same_run_both_ways(&server);
    let summary = json(&dir.path().join("remote/summary.json"));
    assert_eq!(summary["errors"], 0);
}

/// A server that answers each request with `route(method, path)`:
/// (status, JSON body). Returns its base URL; it lives as long as the test.
fn scripted_server(route: fn(&str, &str) -> (u16, String)) -> String {
    use std::io::{BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                while let Some((method, path, _)) = super::common::read_request(&mut reader) {
                    let (status, text) = route(&method, &path);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if stream.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

const ONE_ENV: &str = r#"{"envs": [{"name": "fake", "splits": [["test", 3]], "max_steps": 5}]}"#;

#[test]
fn an_envs_answer_that_is_not_an_object_is_an_error_naming_the_server() {
    use leafe_host::env::remote::RemoteEnv;
    for body in ["[]", r#""hello""#, "17", r#"{"environments": []}"#] {
        // fn pointers cannot capture: one server per answer, picked by a static.
        static BODY: std::sync::Mutex<&str> = std::sync::Mutex::new("");
        *BODY.lock().unwrap() = body;
        let url = scripted_server(|_, _| (200, BODY.lock().unwrap().to_string()));
        let err = RemoteEnv::connect(&format!("remote:{url}"))
            .err()
            .unwrap_or_else(|| panic!("{body} was taken for a list of environments"));
        let message = format!("{err:#}");
        assert!(message.contains(&format!("{url}/envs")), "{message}");
        assert!(message.contains("envs"), "{message}");
    }
}

#[test]
fn a_step_answer_without_reward_or_terminated_is_an_error_naming_the_field() {
    use leafe_host::agent::EnvInstance;
    use leafe_host::env::remote::RemoteEnv;
    use std::sync::{Arc, Mutex};
    // fn pointers cannot capture: the step answer of the case at hand.
    static STEP: Mutex<&str> = Mutex::new("");
    let cases = [
        (
            r#"{"observation": "o", "terminated": false, "truncated": false}"#,
            "reward",
        ),
        (
            r#"{"observation": "o", "reward": "1", "terminated": false, "truncated": false}"#,
            "reward",
        ),
        (
            r#"{"observation": "o", "reward": 0.5, "truncated": false}"#,
            "terminated",
        ),
        (
            r#"{"observation": "o", "reward": 0.5, "terminated": 0, "truncated": false}"#,
            "terminated",
        ),
        (
            r#"{"observation": "o", "reward": 0.5, "terminated": false}"#,
            "truncated",
        ),
    ];
    for (answer, field) in cases {
        *STEP.lock().unwrap() = answer;
        let url = scripted_server(|_, path| match path {
            "/envs" => (200, ONE_ENV.into()),
            "/sessions" => (200, r#"{"id": "s1", "observation": "start"}"#.into()),
            _ => (200, STEP.lock().unwrap().to_string()),
        });
        let env = Arc::new(RemoteEnv::connect(&format!("remote:{url}")).unwrap());
        let mut session = env.session();
        let task = leafe_host::Task::new("test", 0, 0, &[]);
        assert_eq!(session.reset(&task).unwrap(), "start");
        let err = session
            .step("go")
            .err()
            .unwrap_or_else(|| panic!("{answer} was taken for a step result"));
        let message = err.to_string();
        // `reward: invalid type ...`, or `missing field `terminated``.
        let named =
            message.contains(&format!("{field}: ")) || message.contains(&format!("`{field}`"));
        assert!(named, "{message}");
        assert!(
            message.contains(&format!("{url}/sessions/s1/step")),
            "{message}"
        );
    }
}

/// `envs-remote/check-protocol.py URL` in a venv with `jsonschema`.
pub fn check_protocol(url: &str, extra: &[&str]) -> std::process::Output {
    let python = super::common::venv_with("jsonschema==4.26.0", "jsonschema");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../envs-remote/check-protocol.py");
    std::process::Command::new(python)
        .arg(script)
        .arg(url)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_protocol_checker_passes_leafe_serve_and_fails_a_server_that_misspeaks() {
    let server = super::serve::Server::start(&[]);
    for env in ["sokoban", "household", "mbpp"] {
        let out = check_protocol(&server.url, &["--env", env]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{env}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("a valid StepAnswer"), "{text}");
        assert!(
            text.contains("the server speaks the session protocol"),
            "{text}"
        );
    }
    // Right envelope, wrong types: a step's reward as text, no `truncated`.
    let junk = scripted_server(|method, path| match (method, path) {
        ("GET", "/envs") => (200, ONE_ENV.into()),
        ("POST", "/sessions") => (201, r#"{"id": "s1", "observation": "start"}"#.into()),
        (_, p) if p.ends_with("/admissible") => (200, r#"{"actions": null}"#.into()),
        (_, p) if p.ends_with("/expert") => (200, r#"{"action": "go"}"#.into()),
        (_, p) if p.ends_with("/step") => (
            200,
            r#"{"observation": "o", "reward": "1", "terminated": false}"#.into(),
        ),
        _ => (404, r#"{"message": "no"}"#.into()),
    });
    let out = check_protocol(&junk, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL POST step 'go': StepAnswer: reward"),
        "{text}"
    );
    assert!(
        text.contains("'truncated' is a required property"),
        "{text}"
    );
    // The closed session still answers: a misfit too.
    assert!(text.contains("FAIL a closed session: status 200"), "{text}");
}
