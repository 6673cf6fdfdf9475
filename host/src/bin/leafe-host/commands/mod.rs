//! One file per command: its flags and an `execute` that calls the library
//! and prints. A new command is a file here plus one variant in `main.rs`.

pub mod bench;
pub mod envs;
pub mod eval;
pub mod exec;
pub mod export;
pub mod play;
pub mod replay;
pub mod report;
pub mod run;
pub mod serve;

use crate::args::EngineArgs;
use leafe_host::EngineOptions;

/// What every command gets besides its own flags.
pub struct Ctx {
    pub engine: EngineArgs,
    pub options: EngineOptions,
    /// Whether to draw progress bars (stderr is a terminal).
    pub progress: bool,
}

/// The "model: N requests ..." line of a run's or an evaluation's summary.
pub fn usage_line(u: &leafe_host::llm::UsageTotals) -> String {
    format!(
        "{} requests ({} retried, {} failed) · {} prompt ({} from the server's prefix cache) + {} \
         completion tokens",
        u.requests,
        u.retries,
        u.failures,
        u.prompt_tokens,
        u.cached_prompt_tokens,
        u.completion_tokens
    )
}
