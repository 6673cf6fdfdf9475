//! End-to-end properties of the host with the real environment components:
//! restore is indistinguishable from never having left, the engine's
//! settings do not change what a guest computes, the compile cache survives
//! damage, and exploration is deterministic.

use leafe_host::agent::reflect::rule::RuleReflector;
use leafe_host::{
    EngineOptions, EnvComponent, ExploreConfig, Origin, PolicySpec, Record, Runtime, Session,
    Source, Task, explore_task,
};
use std::sync::Arc;

fn sokoban(options: EngineOptions) -> Arc<EnvComponent> {
    let runtime = Runtime::new(options).unwrap();
    EnvComponent::load(&runtime, Source::Builtin("sokoban".into())).unwrap()
}

fn no_cache() -> EngineOptions {
    EngineOptions {
        cache: None,
        ..Default::default()
    }
}

fn task(index: u32) -> Task {
    Task {
        split: "test".into(),
        index,
        seed: 0,
        options: vec![("max-steps".into(), "500".into())],
    }
}

/// A fixed pseudo-random walk of `n` moves.
fn walk(n: usize) -> Vec<&'static str> {
    let moves = [
        "up", "left", "down", "right", "down", "down", "left", "up", "right", "right", "up",
    ];
    (0..n)
        .map(|i| moves[(i * 7 + i / 3) % moves.len()])
        .collect()
}

#[test]
fn restoring_a_snapshot_is_the_same_as_never_having_left() {
    let env = sokoban(no_cache());
    let actions = walk(60);
    let mut live = Session::new(&env, 0).unwrap();
    live.reset(&task(4)).unwrap();
    let mut snapshots = vec![live.snapshot().unwrap()];
    let mut observations = Vec::new();
    for a in &actions {
        let out = live.step(a).unwrap();
        observations.push(out.observation);
        snapshots.push(live.snapshot().unwrap());
        if out.terminated {
            break;
        }
    }
    for k in [0, 1, 17, observations.len() - 1] {
        let mut other = Session::new(&env, 0).unwrap();
        other.restore(&snapshots[k]).unwrap();
        for (i, a) in actions
            .iter()
            .enumerate()
            .skip(k)
            .take(observations.len() - k)
        {
            assert_eq!(
                other.step(a).unwrap().observation,
                observations[i],
                "restored at {k}, step {i}"
            );
            assert_eq!(
                other.snapshot().unwrap(),
                snapshots[i + 1],
                "snapshot bytes at {i}"
            );
        }
    }
}

#[test]
fn engine_settings_do_not_change_what_the_guest_computes() {
    let trace = |options: EngineOptions| {
        let env = sokoban(options);
        let mut s = Session::new(&env, 0).unwrap();
        let mut out = vec![s.reset(&task(9)).unwrap()];
        for a in walk(40) {
            out.push(s.step(a).unwrap().observation);
            out.push(format!("{:?}", s.snapshot().unwrap()));
            out.push(format!("{:?}", s.expert_action().unwrap()));
        }
        out
    };
    let pooled = trace(no_cache());
    assert_eq!(
        pooled,
        trace(EngineOptions {
            pooling: false,
            cache: None,
            ..Default::default()
        })
    );
    let dir = tempfile::tempdir().unwrap();
    let cached = EngineOptions {
        cache: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    assert_eq!(pooled, trace(cached.clone()), "compiled");
    assert_eq!(pooled, trace(cached), "from the cache");
}

#[test]
fn the_compile_cache_is_used_and_survives_damage() {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        cache: Some(dir.path().join("cache")),
        ..Default::default()
    };
    let runtime = Runtime::new(options).unwrap();
    let load = || EnvComponent::load(&runtime, Source::Builtin("sokoban".into())).unwrap();
    assert_eq!(load().origin, Origin::Compiled);
    assert_eq!(load().origin, Origin::Cached);
    // One compiled entry, and beside it the checksum it is checked against.
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].with_extension("sum").exists());
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entries[0], &bytes).unwrap();
    let again = load();
    assert_eq!(again.origin, Origin::Compiled, "a damaged entry is rebuilt");
    let mut s = Session::new(&again, 0).unwrap();
    assert!(s.reset(&task(0)).unwrap().contains('#'));
    assert_eq!(load().origin, Origin::Cached);

    // An unusable cache directory costs a compile, nothing else.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let runtime = Runtime::new(EngineOptions {
        cache: Some(file.join("cache")),
        ..Default::default()
    })
    .unwrap();
    let env = EnvComponent::load(&runtime, Source::Builtin("guess".into())).unwrap();
    assert_eq!(env.origin, Origin::Compiled);
}

#[test]
fn exploration_backtracks_on_guess_and_is_deterministic() {
    let runtime = Runtime::new(no_cache()).unwrap();
    let env = EnvComponent::load(&runtime, Source::Builtin("guess".into())).unwrap();
    let cfg = ExploreConfig {
        method: leafe_host::Method::Leafe,
        reflect_every: 0,
        budget: 60,
        budget_unit: Default::default(),
        max_depth: 6,
        snapshot_every: 2,
    };
    let explore = |index| {
        let task = Task {
            split: "test".into(),
            index,
            seed: 3,
            options: vec![],
        };
        let mut policy = PolicySpec::Oracle { noise: 0.9 }.build(3, index);
        explore_task(
            &env.clone().into(),
            &task,
            policy.as_mut(),
            &mut RuleReflector,
            &cfg,
        )
        .unwrap()
    };
    let mut backtracks = 0;
    for index in 0..8 {
        let (a, b) = (explore(index), explore(index));
        assert_eq!(a.records, b.records, "task {index}");
        assert!(a.end.steps <= cfg.budget);
        backtracks += a.end.backtracks;
        let nodes: Vec<_> = a
            .records
            .iter()
            .filter_map(|r| {
                if let Record::Node(n) = r {
                    Some(n)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(nodes.len() as u32, a.end.nodes);
        assert_eq!(
            nodes.iter().filter(|n| n.experience.is_some()).count() as u32,
            a.end.backtracks
        );
        assert_eq!(a.end.solved, nodes.iter().any(|n| n.success));
    }
    assert!(
        backtracks > 0,
        "mostly random guessing must fail and backtrack"
    );
}
