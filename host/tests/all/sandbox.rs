//! Adversarial tests: a misbehaving environment component must end its own
//! session with a clear error, never crash or hang the host, and reach
//! nothing outside its sandbox.

use leafe_builtins::test_components::BROKEN_PATH;
use leafe_host::{EngineOptions, Limits, Runtime};
use leafe_host::{EnvComponent, Source};
use leafe_host::{EnvError, GuestFailure, Session, SessionError, Task};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn broken(limits: Limits) -> Arc<EnvComponent> {
    let runtime = Runtime::new(EngineOptions {
        limits,
        cache: None,
        ..Default::default()
    })
    .unwrap();
    EnvComponent::load(&runtime, Source::File(BROKEN_PATH.into())).unwrap()
}

fn small_limits() -> Limits {
    Limits {
        fuel_per_call: 2_000_000_000,
        wall_ms_per_call: 2_000,
        memory_bytes: 64 << 20,
        output_bytes: 64 << 10,
    }
}

fn task() -> Task {
    Task {
        split: "test".into(),
        index: 0,
        seed: 0,
        options: vec![],
    }
}

fn started(env: &Arc<EnvComponent>) -> Session {
    let mut s = Session::new(env, 0).unwrap();
    s.reset(&task()).unwrap();
    s
}

/// Step `action`, expect the session to die with `check`, then prove the
/// host and a restored session still work.
fn dies(env: &Arc<EnvComponent>, action: &str, check: impl Fn(&GuestFailure) -> bool) -> Duration {
    let mut s = started(env);
    let snap = s.snapshot().unwrap();
    let start = Instant::now();
    let err = s.step(action).unwrap_err();
    let took = start.elapsed();
    match &err {
        SessionError::Guest(f) if check(f) => {}
        other => panic!("{action}: unexpected outcome {other:?}"),
    }
    assert!(!err.to_string().is_empty());
    assert!(
        matches!(s.step("ok"), Err(SessionError::Dead(_))),
        "{action}: dead sessions refuse calls"
    );
    s.restore(&snap).unwrap();
    assert_eq!(
        s.step("ok").unwrap().observation,
        "step 1",
        "{action}: restored into a fresh instance"
    );
    took
}

#[test]
fn traps_loops_bombs_and_floods_each_end_with_their_own_error() {
    let env = broken(small_limits());
    dies(
        &env,
        "trap",
        |f| matches!(f, GuestFailure::Trap(m) if m.contains("panics on purpose")),
    );
    dies(&env, "alloc", |f| {
        matches!(f, GuestFailure::MemoryLimit { .. })
    });
    dies(&env, "recurse", |f| {
        matches!(f, GuestFailure::StackOverflow)
            || matches!(f, GuestFailure::Trap(m) if m.contains("stack overflow"))
    });
    dies(&env, "print", |f| {
        matches!(f, GuestFailure::OutputLimit(_, "stdout"))
    });
    dies(&env, "stderr", |f| {
        matches!(f, GuestFailure::OutputLimit(_, "stderr"))
    });
    // WASI preview 2 carries only success or failure: exit(3) arrives as 1.
    dies(&env, "exit", |f| matches!(f, GuestFailure::Exit(1)));
    // An infinite loop is stopped by fuel...
    dies(&env, "loop", |f| matches!(f, GuestFailure::OutOfFuel(_)));
}

#[test]
fn an_infinite_loop_is_stopped_by_the_wall_clock_when_fuel_is_plentiful() {
    let env = broken(Limits {
        fuel_per_call: u64::MAX / 4,
        wall_ms_per_call: 300,
        ..small_limits()
    });
    let took = dies(&env, "loop", |f| matches!(f, GuestFailure::Timeout(300)));
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn sleeping_does_not_block_the_host() {
    let env = broken(small_limits());
    let mut s = started(&env);
    let start = Instant::now();
    let out = s.step("sleep").unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    // A year passed on the virtual clock, none on ours.
    assert_eq!(out.observation, format!("slept {}s", 3600 * 24 * 365));
}

#[test]
fn the_guest_sees_no_env_files_network_or_real_time_and_is_deterministic() {
    let env = broken(small_limits());
    let probe = |seed| {
        let mut s = Session::new(&env, seed).unwrap();
        s.reset(&task()).unwrap();
        s.step("probe").unwrap().observation
    };
    let seen: serde_json::Value = serde_json::from_str(&probe(0)).unwrap();
    assert_eq!(seen["env"], serde_json::json!([]));
    assert_eq!(seen["args"], serde_json::json!([]));
    for key in ["read", "list", "write", "net"] {
        assert!(
            seen[key].as_str().unwrap().starts_with("Err"),
            "{key}: {}",
            seen[key]
        );
    }
    assert!(!std::path::Path::new("/tmp/leafe-escape").exists());
    assert!(
        seen["now"].as_u64().unwrap() < 1_100_000_000,
        "the wall clock is virtual"
    );
    assert_eq!(probe(0), probe(0), "same seed, same view");
    assert_ne!(probe(0), probe(1), "the seed reaches WASI randomness");
}

#[test]
fn one_failing_session_leaves_the_others_alone() {
    let env = broken(small_limits());
    let mut good = started(&env);
    let mut bad = started(&env);
    assert!(bad.step("trap").is_err());
    assert_eq!(good.step("ok").unwrap().observation, "step 1");
    let threads: Vec<_> = ["loop", "ok", "alloc", "ok"]
        .into_iter()
        .map(|a| {
            let env = env.clone();
            std::thread::spawn(move || started(&env).step(a).is_ok())
        })
        .collect();
    let ok: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(ok, [false, true, false, true]);
}

#[test]
fn corrupt_snapshot_bytes_are_an_error_and_keep_the_session() {
    let env = broken(small_limits());
    let mut s = started(&env);
    s.step("ok").unwrap();
    let good = s.snapshot().unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let truncated = &good[..good.len() / 2];
    let sokoban = {
        let runtime = Runtime::new(EngineOptions {
            cache: None,
            ..Default::default()
        })
        .unwrap();
        let env = EnvComponent::load(&runtime, Source::Builtin("sokoban".into())).unwrap();
        let mut s = Session::new(&env, 0).unwrap();
        s.reset(&Task {
            split: "test".into(),
            index: 0,
            seed: 0,
            options: vec![],
        })
        .unwrap();
        s.snapshot().unwrap()
    };
    for (what, bytes) in [
        ("empty", &[][..]),
        ("garbage", b"definitely not a snapshot"),
        ("flipped", &flipped),
        ("truncated", truncated),
        ("foreign", &sokoban),
    ] {
        match s.restore(bytes) {
            Err(SessionError::Env(EnvError::BadState(m))) => assert!(!m.is_empty(), "{what}"),
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(
            s.step("ok").unwrap().observation.split(' ').next(),
            Some("step"),
            "{what}"
        );
    }
}

#[test]
fn files_that_are_not_environment_components_are_refused() {
    let runtime = Runtime::new(EngineOptions {
        cache: None,
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let cases = [
        (write("text.wasm", b"hello"), "not a WebAssembly file"),
        (
            write("core.wasm", &wat::parse_str("(module)").unwrap()),
            "core WebAssembly module",
        ),
        (
            write("empty.wasm", &wat::parse_str("(component)").unwrap()),
            "does not export",
        ),
        (
            write(
                "imports.wasm",
                &wat::parse_str(r#"(component (import "x:y/z" (func)))"#).unwrap(),
            ),
            "imports",
        ),
        (dir.path().join("missing.wasm"), "cannot read"),
    ];
    for (path, needle) in cases {
        let err = EnvComponent::load(&runtime, Source::File(path.clone()))
            .err()
            .unwrap();
        let text = format!("{err:#}");
        assert!(text.contains(needle), "{}: {text}", path.display());
    }
}
