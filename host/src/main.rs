//! The `leafe-host` command line.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use leafe_host::component::{self, Source};
use leafe_host::engine::{EngineOptions, Limits, Runtime};
use leafe_host::explore::ExploreConfig;
use leafe_host::policy::PolicySpec;
use leafe_host::run::{RunArgs, TaskSelection};
use leafe_host::session::Task;
use std::io::IsTerminal;
use std::path::PathBuf;
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
    engine: EngineArgs,
}

#[derive(Args)]
#[command(next_help_heading = "Limits on every call into an environment")]
struct EngineArgs {
    /// Do not use or fill the compiled-component cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Wasm fuel per call into an environment (about one unit per instruction).
    #[arg(long, global = true, default_value_t = Limits::default().fuel_per_call)]
    fuel: u64,
    /// Wall-clock limit per call into an environment, in milliseconds.
    #[arg(long, global = true, default_value_t = Limits::default().wall_ms_per_call)]
    wall_ms: u64,
    /// Memory limit per environment instance, in MiB.
    #[arg(long, global = true, default_value_t = Limits::default().memory_bytes >> 20)]
    memory_mb: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Explore tasks with backtracking (LEAFE stage 1) and write the branch
    /// tree, distillation data and a summary.
    Run(RunCmd),
    /// Re-execute every branch of a run and check each observation.
    Replay {
        /// The run's output directory.
        dir: PathBuf,
        /// Use this component instead of the recorded --env (same hash required).
        #[arg(long)]
        env: Option<String>,
    },
    /// Play an environment in the terminal, with undo and branch.
    Play {
        /// Built-in environment name or path to a .wasm component.
        #[arg(long, default_value = "sokoban")]
        env: String,
        #[command(flatten)]
        task: TaskArgs,
        /// The task index.
        #[arg(long = "task", value_name = "I", default_value_t = 0)]
        task_index: u32,
    },
    /// List the built-in environments (and any given with --env) with their info.
    Envs {
        /// Also describe these components (paths or names).
        #[arg(long)]
        env: Vec<String>,
    },
    /// Measure restore vs replay, compile vs cache, pooling, steps/s.
    Bench {
        /// Repetition factor (higher = steadier numbers, slower).
        #[arg(long, default_value_t = 20)]
        reps: u32,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct TaskArgs {
    /// The split to draw tasks from.
    #[arg(long, default_value = "test")]
    split: String,
    /// Episode seed handed to the environment.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Environment option KEY=VALUE (repeatable), e.g. --opt size=8x8 --opt boxes=3.
    #[arg(long = "opt", value_name = "KEY=VALUE", value_parser = parse_option)]
    options: Vec<(String, String)>,
}

#[derive(Args)]
struct RunCmd {
    /// Built-in environment name (sokoban, guess) or path to a .wasm component.
    #[arg(long, default_value = "sokoban")]
    env: String,
    #[command(flatten)]
    task: TaskArgs,
    /// Run the first N tasks of the split.
    #[arg(long, default_value_t = 10, conflicts_with = "task_index")]
    tasks: u32,
    /// Run only task I.
    #[arg(long = "task", value_name = "I")]
    task_index: Option<u32>,
    /// The policy: `oracle` (the environment's expert, with --noise random moves).
    #[arg(long, default_value = "oracle")]
    policy: String,
    /// Chance of a random move instead of the expert's (oracle policy).
    #[arg(long, default_value_t = 0.4)]
    noise: f64,
    /// Environment steps per task, all branches together.
    #[arg(long, default_value_t = 300)]
    budget: u32,
    /// How many backtracks deep the rollback tree may grow.
    #[arg(long, default_value_t = 10)]
    max_depth: u32,
    /// Snapshot every Nth state (others are reached by restore + replay).
    #[arg(long, default_value_t = 1)]
    snapshot_every: u32,
    /// Output directory [default: a new runs/ENV-SPLIT-N].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue an interrupted run in --out.
    #[arg(long, requires = "out")]
    resume: bool,
    /// Replace an existing run in --out.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Tasks explored in parallel.
    #[arg(long, default_value_t = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))]
    jobs: usize,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

impl EngineArgs {
    fn options(&self) -> Result<EngineOptions> {
        if self.fuel == 0 || self.wall_ms == 0 || self.memory_mb == 0 {
            bail!("--fuel, --wall-ms and --memory-mb must be positive");
        }
        let memory_bytes = self
            .memory_mb
            .checked_mul(1 << 20)
            .context("--memory-mb is too large")?;
        Ok(EngineOptions {
            limits: Limits {
                fuel_per_call: self.fuel,
                wall_ms_per_call: self.wall_ms,
                memory_bytes,
                ..Limits::default()
            },
            cache: if self.no_cache {
                None
            } else {
                leafe_host::cache::default_dir()
            },
            ..EngineOptions::default()
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<()> {
    let options = cli.engine.options()?;
    let progress = std::io::stderr().is_terminal();
    match cli.command {
        Command::Run(cmd) => {
            let runtime = Runtime::new(options)?;
            let out = match cmd.out {
                Some(out) => out,
                None => leafe_host::run::fresh_out_dir(
                    std::path::Path::new("runs"),
                    &cmd.env,
                    &cmd.task.split,
                ),
            };
            let args = RunArgs {
                env: cmd.env,
                split: cmd.task.split,
                tasks: match cmd.task_index {
                    Some(i) => TaskSelection::One(i),
                    None => TaskSelection::First(cmd.tasks),
                },
                seed: cmd.task.seed,
                options: cmd.task.options,
                policy: PolicySpec::parse(&cmd.policy, cmd.noise)?,
                explore: ExploreConfig {
                    budget: cmd.budget,
                    max_depth: cmd.max_depth,
                    snapshot_every: cmd.snapshot_every,
                },
                out: out.clone(),
                resume: cmd.resume,
                force: cmd.force,
                jobs: cmd.jobs,
                progress,
            };
            if args.explore.budget == 0 {
                bail!("--budget must be at least 1");
            }
            if args.explore.snapshot_every == 0 {
                bail!("--snapshot-every must be at least 1");
            }
            let summary = leafe_host::run::run(&runtime, &args)?;
            if cmd.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", leafe_host::run::summary_table(&summary, &out));
            }
        }
        Command::Replay { dir, env } => {
            let runtime = Runtime::new(options)?;
            let report = leafe_host::replay::replay(&runtime, &dir, env.as_deref())?;
            println!(
                "replay ok: {} tasks, {} branches, {} nodes checked ({} steps re-executed)",
                report.tasks, report.branches, report.nodes_checked, report.steps_executed
            );
        }
        Command::Play {
            env,
            task,
            task_index,
        } => {
            let runtime = Runtime::new(options)?;
            let env = component::load(&runtime, &env)?;
            let task = Task {
                split: task.split,
                index: task_index,
                seed: task.seed,
                options: task.options,
            };
            let stdin = std::io::stdin();
            leafe_host::play::play(&env, &task, stdin.lock(), std::io::stdout())?;
        }
        Command::Envs { env } => {
            let runtime = Runtime::new(options)?;
            let mut specs: Vec<String> = leafe_host::builtin::names()
                .iter()
                .map(|s| s.to_string())
                .collect();
            specs.extend(env);
            for spec in specs {
                let c = component::EnvComponent::load(&runtime, Source::parse(&spec)?)?;
                let i = &c.info;
                let splits: Vec<String> =
                    i.splits.iter().map(|(s, n)| format!("{s} ({n})")).collect();
                let kind = if matches!(c.source, Source::Builtin(_)) {
                    "built-in"
                } else {
                    "file"
                };
                println!("{} {} [{kind}: {spec}]", i.name, i.version);
                println!("  splits: {}", splits.join(", "));
                println!("  max steps: {}", i.max_steps);
                println!("  sha256: {}", c.sha256);
                println!("  actions: {}\n", i.action_hint);
            }
        }
        Command::Bench { reps, json } => {
            let report = leafe_host::bench::run(&options, reps, progress)?;
            print!("{}", report.table());
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
    }
    Ok(())
}
