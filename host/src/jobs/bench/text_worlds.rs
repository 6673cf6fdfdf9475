//! The text-world components' figures for `leafe-host bench`: steps per
//! second through the component boundary (the expert playing whole
//! episodes), snapshot size and time, and reaching the middle of an episode
//! by restore against replaying it from the start.

use super::report::BenchReport;
use crate::env::component::{EnvComponent, Source};
use crate::env::contract::Task;
use crate::env::runtime::Runtime;
use crate::env::session::Session;
use anyhow::{Context, Result};
use std::time::{Duration, Instant};

/// Add the figures of built-in environment `name` (episodes of split
/// `split`) to `report`.
pub fn run(
    report: &mut BenchReport,
    runtime: &std::sync::Arc<Runtime>,
    name: &str,
    split: &str,
    reps: u32,
) -> Result<()> {
    let env = EnvComponent::load(runtime, Source::Builtin(name.into()))?;
    let (mut steps, mut stepping) = (0u32, Duration::ZERO);
    let (mut snapshots, mut snapshotting, mut bytes) = (0u32, Duration::ZERO, 0usize);
    let (mut restore_time, mut replay_time, mut compared) = (Duration::ZERO, Duration::ZERO, 0u32);
    for index in 0..reps * 10 {
        let task = Task::new(split, index, 0, &[]);
        let mut s = Session::new(&env, 0)?;
        s.reset(&task)?;
        let mut actions = Vec::new();
        let mut middle = None;
        while let Some(action) = s.expert_action()? {
            let start = Instant::now();
            let out = s.step(&action)?;
            stepping += start.elapsed();
            steps += 1;
            actions.push(action);
            let start = Instant::now();
            let snap = s.snapshot()?;
            snapshotting += start.elapsed();
            snapshots += 1;
            bytes += snap.len();
            if middle.is_none() && actions.len() >= 4 {
                middle = Some((actions.len(), snap));
            }
            if out.terminated || out.truncated {
                break;
            }
        }
        let Some((k, snap)) = middle else { continue };
        let start = Instant::now();
        s.restore(&snap)?;
        restore_time += start.elapsed();
        let start = Instant::now();
        let mut fresh = Session::new(&env, 0)?;
        fresh.reset(&task)?;
        for a in &actions[..k] {
            fresh.step(a)?;
        }
        replay_time += start.elapsed();
        compared += 1;
    }
    let per = |d: Duration, n: u32| d / n.max(1);
    report.rate(
        &format!("{name}: env steps/s (expert episodes, {split})"),
        f64::from(steps) / stepping.as_secs_f64(),
        "steps/s",
        None,
    );
    report.rate(
        &format!(
            "{name}: snapshots/s (mean {} bytes)",
            bytes / snapshots.max(1) as usize
        ),
        f64::from(snapshots) / snapshotting.as_secs_f64(),
        "snapshots/s",
        None,
    );
    if compared == 0 {
        return Ok(());
    }
    report.time(
        &format!("{name}: reach step 4 of an episode: restore vs replay from a new instance"),
        per(restore_time, compared),
        per(replay_time, compared),
    );
    Ok(())
}

/// Every text world built in, with the split its figures use.
pub fn all(report: &mut BenchReport, runtime: &std::sync::Arc<Runtime>, reps: u32) -> Result<()> {
    run(report, runtime, "household", "train", reps).context("household")?;
    run(report, runtime, "shop", "test", reps).context("shop")
}
