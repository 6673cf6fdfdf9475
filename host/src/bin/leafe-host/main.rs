//! The `leafe-host` command line: parses, then hands each command to its
//! file in `commands/`, which calls the library.

mod args;
mod commands;

use clap::{Parser, Subcommand};
use commands::Ctx;
use std::io::IsTerminal;
use std::process::ExitCode;

/// leafe: agents that learn from their own mistakes. Environments run as
/// sandboxed WASI components that the host snapshots and restores, so an
/// agent can backtrack to an earlier decision and try again.
#[derive(Parser)]
#[command(name = "leafe-host", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    engine: args::EngineArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Explore tasks with backtracking (LEAFE stage 1) and write the branch
    /// tree and a summary.
    Run(commands::run::RunCmd),
    /// Re-execute every branch of a run and check each observation.
    Replay(commands::replay::ReplayCmd),
    /// Play an environment in the terminal, with undo and branch.
    Play(commands::play::PlayCmd),
    /// List the built-in environments (and any given with --env) with their info.
    Envs(commands::envs::EnvsCmd),
    /// Run a Python program in the sandbox, alone or against tests.
    ///
    /// The program runs in a fresh CPython component with no files, network,
    /// environment variables or subprocesses, under the --fuel, --wall-ms and
    /// --memory-mb limits. Exits 0 whenever the program got a verdict
    /// (whatever it is), 1 only when the host could not run it.
    Exec(commands::exec::ExecCmd),
    /// Evaluate a policy at test time: success per task and Pass@k.
    ///
    /// Each sample is one episode with no reflection and no backtracking;
    /// Pass@k is the unbiased estimate from --samples independent ones.
    Eval(commands::eval::EvalCmd),
    /// Write distillation data from runs as chat JSONL for `leafe-trainer sft`.
    ///
    /// LEAFE's corrections + rehearsal, RFT's successful trajectories,
    /// next-observation prediction, or GRPO's advantage-weighted samples;
    /// also readable by TRL (`--weights split`) and LLaMA-Factory.
    Export(commands::export::ExportCmd),
    /// Compare runs and evaluations in Markdown tables and Pass@k curves
    /// (with --variant: over seeds, with bootstrap intervals).
    ///
    /// The tables go to stdout (or --out), the curves of the evaluations to
    /// an SVG picture (--svg).
    Report(commands::report::ReportCmd),
    /// Measure restore vs replay, compile vs cache, pooling, steps/s, the sandbox.
    Bench(commands::bench::BenchCmd),
    /// Serve the sandbox and the environments over HTTP.
    ///
    /// POST /run_code speaks SandboxFusion's protocol (python, python3);
    /// /ws (and POST /reset, /step) OpenEnv's; /sessions is leafe's session
    /// API: create, step, expert, snapshot, restore (into this or any server
    /// running the same component), list, close; GET /envs, /health and
    /// /metrics (Prometheus). Loopback by default.
    /// A run gets --fuel (default 200000000000 here) and at most --wall-ms
    /// (default 60000 here); a request's run_timeout lowers the wall limit.
    Serve(commands::serve::ServeCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", args::flag_error(e));
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        options: cli.engine.options()?,
        engine: cli.engine,
        progress: std::io::stderr().is_terminal(),
    };
    match cli.command {
        Command::Run(cmd) => cmd.execute(&ctx),
        Command::Replay(cmd) => cmd.execute(&ctx),
        Command::Play(cmd) => cmd.execute(&ctx),
        Command::Envs(cmd) => cmd.execute(&ctx),
        Command::Exec(cmd) => cmd.execute(&ctx),
        Command::Eval(cmd) => cmd.execute(&ctx),
        Command::Export(cmd) => cmd.execute(&ctx),
        Command::Report(cmd) => cmd.execute(&ctx),
        Command::Bench(cmd) => cmd.execute(&ctx),
        Command::Serve(cmd) => cmd.execute(&ctx),
    }
}
