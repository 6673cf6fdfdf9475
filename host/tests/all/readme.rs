//! The README's "Write your own environment" walk-through, followed as
//! written: its example is extracted, built as a component, and run with
//! the commands of its step 4.

use crate::common::leafe_command;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The first ```rust block after `heading` in the README.
fn example_after(readme: &str, heading: &str) -> String {
    let section = &readme[readme.find(heading).expect("the README has the section")..];
    let start = section.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let block = &section[start..];
    let end = block.find("```").unwrap();
    // The block is indented under a list item.
    block[..end]
        .lines()
        .map(|l| l.strip_prefix("   ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_write_your_own_environment_walkthrough_runs_as_written() {
    let root = workspace();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let source = example_after(&readme, "## Write your own environment");
    assert!(source.contains("export_environment!(Mine)"), "{source}");

    // Step 1: the crate, as a copy of envs-wasm/guess would be.
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("mine");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"leafe-env-mine\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\n\
             leafe-guest = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
             serde_json = \"1\"\n\n[workspace]\n",
            root.join("guest-sdk").display().to_string()
        ),
    )
    .unwrap();
    // The workspace's lock file: the same dependency versions, no resolution surprises.
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    std::fs::write(krate.join("src/lib.rs"), &source).unwrap();

    // Step 4: build the component (a target dir kept between test runs).
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-guest");
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build
        .current_dir(&krate)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--release",
            "--target-dir",
        ])
        .arg(&target);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        build.env_remove(var);
    }
    let built = build.output().unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/leafe_env_mine.wasm");
    let wasm = wasm.to_str().unwrap();

    let envs = leafe_command()
        .args(["envs", "--env", wasm])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&envs.stdout);
    assert!(envs.status.success(), "{envs:?}");
    assert!(listing.contains("mine 0.1.0 [file:"), "{listing}");

    let runs = dir.path().join("runs");
    let run = leafe_command()
        .args(["run", "--env", wasm, "--noise", "0.5", "--out"])
        .arg(&runs)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!table.contains("failed"), "{table}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["errors"], 0, "{summary}");
    assert!(summary["solved"].as_u64().unwrap() > 0, "{summary}");

    let play = leafe_command()
        .args(["play", "--env", wasm])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"actions\n5\nundo\nquit\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let screen = String::from_utf8_lossy(&play.stdout);
    assert!(play.status.success(), "{screen}");
    assert!(screen.contains("1, 2, 3"), "{screen}");
}

/// Every "s"-suffixed number of the time column, as `T`.
fn mask_times(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.split_inclusive(' ')
                .map(|word| {
                    let w = word.trim_end();
                    let timed = w
                        .strip_suffix('s')
                        .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok());
                    match timed {
                        true => word.replacen(w, "T", 1),
                        false => word.to_string(),
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_quick_start_prints_the_sample_the_readme_shows() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let quick = &readme[readme.find("## Quick start").unwrap()..];
    let after = &quick[quick
        .find("prints a summary")
        .expect("the sample's lead-in")..];
    let start = after.find("```\n").unwrap() + 4;
    let sample = &after[start..start + after[start..].find("```").unwrap()];
    assert!(sample.starts_with("env sokoban"), "{sample}");

    // `cargo run -p leafe-host -- run` is the binary with no flags, in a
    // fresh directory (where runs/ does not exist yet).
    let dir = tempfile::tempdir().unwrap();
    let out = leafe_command()
        .current_dir(dir.path())
        .arg("run")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        mask_times(printed.trim_end()),
        mask_times(sample.trim_end())
    );
    assert!(dir.path().join("runs/sokoban-test-1/tree.jsonl").exists());
}
