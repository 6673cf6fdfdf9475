//! # leafe-host
//!
//! Runs environment components (WASI components exporting the
//! `leafe:env/environment` interface of `wit/leafe-env.wit`) with hard limits,
//! snapshots and restores their state, explores tasks with backtracking, and
//! replays any recorded branch deterministically.
//!
//! - [`engine`]: the one wasmtime engine of the process, its limits and the
//!   compiled-component cache;
//! - [`component`]: loading and checking a component; [`builtin`]: the
//!   environments embedded in the binary;
//! - [`session`]: one live environment instance with snapshot/restore;
//! - [`tree`]: the branch-tree log (`tree.jsonl`); [`explore`]: the
//!   backtracking explorer with its [`policy`] and [`reflect`]or;
//!   [`distill`]: the correction data; [`replay`]: re-execution and checks;
//! - [`python`]: the Python sandbox (a fresh CPython component per run) and
//!   [`sandbox_import`], its side of the contract for code environments;
//! - [`llm`], [`llm_policy`], [`llm_reflect`]: a model behind an
//!   OpenAI-compatible endpoint as policy and reflector;
//! - [`run`]: the `leafe-host run` job; [`eval`], [`export`], [`report`],
//!   [`exec`], [`play`], [`bench`](mod@bench): the other commands.

pub mod bench;
pub mod bench_sandbox;
pub mod builtin;
pub mod cache;
pub mod component;
pub mod distill;
pub mod engine;
pub mod eval;
pub mod exec;
pub mod explore;
pub mod export;
pub mod llm;
pub mod llm_policy;
pub mod llm_reflect;
pub mod parallel;
pub mod play;
pub mod policy;
pub mod python;
pub mod reflect;
pub mod replay;
pub mod report;
pub mod rng;
pub mod run;
pub mod sandbox_import;
pub mod session;
pub mod tree;
pub mod wasi;

/// Bindings generated from `wit/leafe-env.wit`.
pub mod bindings {
    wasmtime::component::bindgen!({ world: "env", path: "../wit" });
}

/// Hex SHA-256 of `bytes`: the content address of components, observations
/// and snapshots.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// A progress bar on stderr (hidden when `show` is false or stderr is not a
/// terminal).
pub fn progress_bar(len: u64, unit: &str, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}
