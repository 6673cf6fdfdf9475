//! Readers of untrusted bytes, fed seeded corruptions of real files: a run's
//! `tree.jsonl`, a journal task, a snapshot envelope, the session
//! protocol's answers. Each must answer with a value or an error, quickly,
//! never a panic.

use super::common::leafe;
use leafe_host::env::protocol::{Created, EnvList, StepAnswer, decode};
use leafe_host::env::saved::SavedState;
use leafe_host::tree::log;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// SplitMix64: the same corruptions on every machine.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// `bytes` with a few seeded changes: bytes overwritten, a span cut out or
/// repeated, a newline added or removed.
fn corrupt(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] = 0xff,
            1 => b[at] = b"{}[]\",:0\n"[rng.below(9)],
            2 => b[at] = rng.below(256) as u8,
            3 => {
                let end = (at + rng.below(64)).min(b.len());
                b.drain(at..end);
            }
            4 => {
                let end = (at + rng.below(64)).min(b.len());
                let copy = b[at..end].to_vec();
                b.splice(at..at, copy);
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// `f` on `input` must return within a second, without a panic.
fn survives<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{what} panicked"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{what} took {:?}",
        started.elapsed()
    );
    out
}

#[test]
fn corrupted_trees_journals_and_snapshots_are_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let done = leafe(&[
        "run",
        "--env",
        "sokoban",
        "--tasks",
        "3",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let tree = std::fs::read(run.join("tree.jsonl")).unwrap();
    assert!(log::read(&run.join("tree.jsonl")).is_ok());
    let mut rng = Rng(11);
    let (mut refused, mut read) = (0, 0);
    let path = dir.path().join("tree.jsonl");
    for case in 0..2000 {
        let bytes = corrupt(&tree, &mut rng);
        std::fs::write(&path, &bytes).unwrap();
        match survives(&format!("tree case {case}"), || log::read(&path)) {
            Ok(log) => {
                read += 1;
                // What a reader then asks of it holds up too.
                let _ = (
                    log.header(),
                    log.nodes_by_task(),
                    log.ends(),
                    log.unfinished_task(),
                );
            }
            Err(_) => refused += 1,
        }
        survives(&format!("task case {case}"), || {
            log::read_task(&path, &bytes).ok()
        });
    }
    assert!(
        refused > 100,
        "only {refused} of 200 corruptions refused ({read} read)"
    );

    // A snapshot envelope as a server receives it.
    let task = leafe_host::Task::new("test", 3, 9, &[("size".into(), "6x6".into())]);
    let saved = SavedState::new("sokoban", "ab12", &task, "#P#", &[0, 1, 255, 7]).encode();
    let mut refused = 0;
    for case in 0..3000 {
        let bytes = corrupt(&saved, &mut rng);
        let decoded = survives(&format!("envelope case {case}"), || {
            SavedState::decode(&bytes)
        });
        match decoded {
            Ok(s) => {
                survives("state", || s.state().ok());
                survives("task", || s.task());
            }
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 1500, "only {refused} of 3000 envelopes refused");
}

#[test]
fn protocol_answers_of_any_shape_are_values_or_errors() {
    let samples = [
        r#"{"envs": [{"name": "x", "splits": [["test", 3]], "max_steps": 5, "sha256": "ab"}]}"#,
        r#"{"id": "s1", "observation": "start", "admissible": ["a", "b"]}"#,
        r#"{"observation": "o", "reward": 0.5, "terminated": false, "truncated": true, "info": {"admissible": ["a"]}}"#,
    ];
    let mut rng = Rng(5);
    for sample in samples {
        for case in 0..1000 {
            let bytes = corrupt(sample.as_bytes(), &mut rng);
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            survives(&format!("answer case {case}"), || {
                let _ = decode::<EnvList>(value.clone());
                let _ = decode::<Created>(value.clone());
                let _ = decode::<StepAnswer>(value);
            });
        }
    }
}

#[test]
fn corrupted_request_bodies_get_an_answer_below_500_and_the_server_stays_up() {
    use super::serve::{Server, call};
    let server = Server::start(&["--concurrency", "4", "--max-sessions", "64"]);
    let (status, _, opened) = call(
        "POST",
        &format!("{}/reset", server.url),
        Some(r#"{"env": "guess"}"#),
        None,
    );
    assert_eq!(status, 200, "{opened}");
    let episode = opened["observation"]["episode_id"]
        .as_str()
        .unwrap()
        .to_string();
    let step = format!(r#"{{"episode_id": "{episode}", "action": {{"message": "50"}}}}"#);
    let routes: [(&str, String); 4] = [
        (
            "/run_code",
            r#"{"code": "print(sum(range(10)))", "language": "python", "run_timeout": 5}"#.into(),
        ),
        (
            "/sessions",
            r#"{"env": "guess", "split": "test", "task": 2, "seed": 1, "options": {}}"#.into(),
        ),
        ("/reset", r#"{"env": "guess", "task": 3, "seed": 2}"#.into()),
        ("/step", step),
    ];
    let mut rng = Rng(17);
    for (route, valid) in &routes {
        let url = format!("{}{route}", server.url);
        let mut answered = std::collections::BTreeMap::<u16, usize>::new();
        for _ in 0..500 {
            let body = String::from_utf8_lossy(&corrupt(valid.as_bytes(), &mut rng)).into_owned();
            let (status, _, reply) = call("POST", &url, Some(&body), None);
            assert!(status < 500, "{route} {body:?}: {status} {reply}");
            *answered.entry(status).or_default() += 1;
        }
        assert!(answered.keys().any(|s| *s >= 400), "{route}: {answered:?}");
    }
    let (status, _, _) = call("GET", &format!("{}/health", server.url), None, None);
    assert_eq!(status, 200);
}
