//! The `leafe-host` command line.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use leafe_host::component::{self, Source};
use leafe_host::engine::{EngineOptions, Limits, Runtime};
use leafe_host::eval::EvalArgs;
use leafe_host::explore::ExploreConfig;
use leafe_host::policy::PolicySpec;
use leafe_host::reflect::ReflectorSpec;
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
#[command(next_help_heading = "Limits (per call into an environment; per program for exec)")]
struct EngineArgs {
    /// Do not use or fill the compiled-component cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Wasm fuel (about one unit per instruction) [default: 20000000000 per
    /// environment call, 10000000000 per exec program].
    #[arg(long, global = true)]
    fuel: Option<u64>,
    /// Wall-clock limit in milliseconds [default: 20000 per environment
    /// call, 10000 per exec program].
    #[arg(long, global = true)]
    wall_ms: Option<u64>,
    /// Memory limit per instance, in MiB [default: 256].
    #[arg(long, global = true)]
    memory_mb: Option<usize>,
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
    /// Run a Python program in the sandbox, alone or against tests.
    ///
    /// The program runs in a fresh CPython component with no files, network,
    /// environment variables or subprocesses, under the --fuel, --wall-ms and
    /// --memory-mb limits. Exits 0 whenever the program got a verdict
    /// (whatever it is), 1 only when the host could not run it.
    Exec(ExecCmd),
    /// Evaluate a policy at test time: success per task and Pass@k.
    ///
    /// Each sample is one episode with no reflection and no backtracking;
    /// Pass@k is the unbiased estimate from --samples independent ones.
    Eval(EvalCmd),
    /// Write distillation data from runs as chat JSONL for `leafe-trainer sft`.
    ///
    /// LEAFE's corrections + rehearsal, RFT's successful trajectories, or
    /// next-observation prediction; also readable by TRL and LLaMA-Factory.
    Export(ExportCmd),
    /// Compare runs and evaluations in Markdown tables and Pass@k curves.
    ///
    /// The tables go to stdout (or --out), the curves of the evaluations to
    /// an SVG picture (--svg).
    Report {
        /// Directories written by `run --out` or `eval --out`.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Write the Markdown here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the Pass@k curves as SVG here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Measure restore vs replay, compile vs cache, pooling, steps/s, the sandbox.
    Bench {
        /// Repetition factor (higher = steadier numbers, slower).
        #[arg(long, default_value_t = 20)]
        reps: u32,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Which benchmarks: host (environments), sandbox (Python vs python3), or all.
        #[arg(long, value_enum, default_value = "all")]
        suite: leafe_host::bench::Suite,
    },
}

#[derive(Args)]
struct ExecCmd {
    /// The Python program; `-` reads it from standard input.
    program: PathBuf,
    /// A file to give the program as its standard input.
    #[arg(long, value_name = "FILE", conflicts_with = "tests")]
    stdin: Option<PathBuf>,
    /// Run the program against tests and print a report: a Python file
    /// whose `assert` lines are the tests (its other lines are set-up), or
    /// stdin/stdout pairs: .jsonl with one {"input": ..., "output": ...} a
    /// line, or .json with {"input": [...], "output": [...]}.
    #[arg(long, value_name = "FILE")]
    tests: Option<PathBuf>,
    /// Bytes kept of stdout, and separately of stderr, in KiB.
    #[arg(long, default_value_t = 64)]
    output_kb: usize,
    /// Print one JSON object (verdict, exit_code, stdout, stderr, fuel_used,
    /// wall_us; with --tests: passed, total, tests).
    #[arg(long)]
    json: bool,
    /// Tests run in parallel.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
}

#[derive(Args)]
struct ExportCmd {
    /// Run directories (from `leafe-host run`).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The output format (chat JSONL: {"messages": [...], "weight", "kind", "source"}).
    #[arg(long, value_enum, default_value = "chat")]
    format: ExportFormat,
    /// Which data: leafe (corrections + rehearsal), rft (successful
    /// trajectories) or iwm (predict the next observation).
    #[arg(long, value_enum, default_value = "leafe")]
    data: leafe_host::export::ExportData,
    /// Where to write [default: RUN/chat-DATA.jsonl for one run].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Corrections (L_cf) kept per task.
    #[arg(long, default_value_t = 3)]
    cf_per_task: usize,
    /// Fraction of successful trajectories rehearsed (L_reh).
    #[arg(long, default_value_t = 0.2)]
    reh_fraction: f64,
    /// Weight of the rehearsal records in the loss (L = L_cf + beta * L_reh).
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    /// Seeds the choice of rehearsed trajectories.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep each correction's experience in its prompt: data that teaches a
    /// base policy to follow lessons (LEAFE's own L_cf leaves them out).
    #[arg(long)]
    keep_experience: bool,
    /// The system prompt template the policy will be run with (as `run --system-prompt`).
    #[arg(long, value_name = "FILE")]
    system_prompt: Option<PathBuf>,
    /// The history budget the policy will be run with (as `run --history-chars`).
    #[arg(long, default_value_t = 24_000)]
    history_chars: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Chat,
}

#[derive(Args)]
struct EvalCmd {
    /// Built-in environment (sokoban, guess, mbpp, codecontests[:DATA]) or a .wasm path.
    #[arg(long, default_value = "mbpp")]
    env: String,
    #[command(flatten)]
    task: TaskArgs,
    /// Evaluate N tasks of the split [default: all of them].
    #[arg(long, conflicts_with = "task_index")]
    tasks: Option<u32>,
    /// The index of the first task of --tasks.
    #[arg(long, value_name = "I", default_value_t = 0, requires = "tasks")]
    from: u32,
    /// Evaluate only task I.
    #[arg(long = "task", value_name = "I")]
    task_index: Option<u32>,
    /// The policy: `reference` (the dataset's reference solution), `oracle`
    /// (the environment's expert with --noise random moves), `human` or
    /// `openai` (a model; see the model policy flags).
    #[arg(long, default_value = "reference")]
    policy: String,
    /// Chance of a random move instead of the expert's (oracle policy).
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Independent episodes per task (n of Pass@k).
    #[arg(long, default_value_t = 1)]
    samples: u32,
    /// The k of Pass@k, comma-separated; values above --samples are skipped.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    k: Vec<u32>,
    /// A directory for results.jsonl (one line per task) and summary.json
    /// (for `leafe-host report`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Episodes run in parallel.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    llm: LlmArgs,
}

/// The `openai` policy's settings.
#[derive(Args)]
#[command(next_help_heading = "Model policy (--policy openai)")]
struct LlmArgs {
    /// The OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1 (vLLM,
    /// SGLang, `leafe-trainer serve`).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// The model name to ask for.
    #[arg(long)]
    model: Option<String>,
    /// The environment variable that holds the API key (none needed locally).
    #[arg(long, value_name = "VAR", default_value = "OPENAI_API_KEY")]
    api_key_env: String,
    #[arg(long, default_value_t = 0.7)]
    temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Tokens per answer.
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    /// Seconds per request before it is retried.
    #[arg(long, default_value_t = 120)]
    request_timeout: u64,
    /// Retries of a failed request (connection errors, HTTP 429 and 5xx),
    /// with exponential backoff from 1 s (or the server's Retry-After).
    #[arg(long, default_value_t = 4)]
    retries: u32,
    /// Requests in flight at once [default: --jobs].
    #[arg(long)]
    concurrency: Option<usize>,
    /// A system prompt template file; `{name}`, `{action_hint}` and
    /// `{answer_format}` are filled in.
    #[arg(long, value_name = "FILE")]
    system_prompt: Option<PathBuf>,
    /// The history's budget in characters (about 4 per token); older turns
    /// are left out.
    #[arg(long, default_value_t = 24_000)]
    history_chars: usize,
}

impl LlmArgs {
    /// The reflector: the rule-based one, or the model (sharing the
    /// policy's client when the policy is the same model).
    fn reflector(&self, name: &str, policy: &PolicySpec, jobs: usize) -> Result<ReflectorSpec> {
        match name {
            "rule" => Ok(ReflectorSpec::Rule),
            "llm" => match policy {
                PolicySpec::OpenAi { client, .. } => Ok(ReflectorSpec::Llm(client.clone())),
                _ => Ok(ReflectorSpec::Llm(std::sync::Arc::new(self.client(jobs)?))),
            },
            other => bail!("unknown reflector '{other}' (available: rule, llm)"),
        }
    }

    fn client(&self, jobs: usize) -> Result<leafe_host::llm::ChatClient> {
        let (Some(base_url), Some(model)) = (&self.base_url, &self.model) else {
            bail!("--policy openai and --reflector llm need --base-url and --model");
        };
        if !base_url.starts_with("http://") && !base_url.starts_with("https://") {
            bail!("--base-url must start with http:// or https://, got '{base_url}'");
        }
        if !(0.0..=2.0).contains(&self.temperature) || !(0.0..=1.0).contains(&self.top_p) {
            bail!("--temperature must be in [0, 2] and --top-p in [0, 1]");
        }
        if self.max_tokens == 0 || self.request_timeout == 0 {
            bail!("--max-tokens and --request-timeout must be positive");
        }
        Ok(leafe_host::llm::ChatClient::new(
            leafe_host::llm::ChatConfig {
                base_url: base_url.clone(),
                model: model.clone(),
                api_key: std::env::var(&self.api_key_env)
                    .ok()
                    .filter(|k| !k.is_empty()),
                temperature: self.temperature,
                top_p: self.top_p,
                max_tokens: self.max_tokens,
                timeout: std::time::Duration::from_secs(self.request_timeout),
                retries: self.retries,
                backoff: std::time::Duration::from_secs(1),
                concurrency: self.concurrency.unwrap_or(jobs).max(1),
            },
        ))
    }

    fn policy(&self, name: &str, noise: f64, jobs: usize) -> Result<PolicySpec> {
        if name != "openai" {
            return PolicySpec::parse(name, noise);
        }
        let mut prompt = leafe_host::llm_policy::PromptConfig {
            history_chars: self.history_chars,
            ..Default::default()
        };
        if let Some(path) = &self.system_prompt {
            prompt = prompt.with_template_file(path)?;
        }
        let client = self.client(jobs)?;
        Ok(PolicySpec::OpenAi {
            client: std::sync::Arc::new(client),
            prompt: std::sync::Arc::new(prompt),
        })
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
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
    /// Built-in environment (sokoban, guess, mbpp, codecontests[:DATA]) or
    /// path to a .wasm component.
    #[arg(long, default_value = "sokoban")]
    env: String,
    #[command(flatten)]
    task: TaskArgs,
    /// Run N tasks of the split (the first ones, or from --from).
    #[arg(long, default_value_t = 10, conflicts_with = "task_index")]
    tasks: u32,
    /// The index of the first task of --tasks.
    #[arg(
        long,
        value_name = "I",
        default_value_t = 0,
        conflicts_with = "task_index"
    )]
    from: u32,
    /// Run only task I.
    #[arg(long = "task", value_name = "I")]
    task_index: Option<u32>,
    /// The policy: `oracle` (the environment's expert, with --noise random
    /// moves), `reference` (the expert's answer as is: the dataset's
    /// reference solution for mbpp and codecontests), `human` (you, at the
    /// terminal) or `openai` (a model; see the model policy flags).
    #[arg(long, default_value = "oracle")]
    policy: String,
    /// Chance of a random move instead of the expert's (oracle policy).
    #[arg(long, default_value_t = 0.4)]
    noise: f64,
    /// Who reflects on failures: `rule` (the environment's feedback: dead
    /// ends, terminal failures, no progress) or `llm` (the model at
    /// --base-url, asked for JSON {"step", "experience"}).
    #[arg(long, default_value = "rule")]
    reflector: String,
    /// Also reflect every K steps of a rollout, not only when it fails
    /// (0: only on failure; for the llm reflector).
    #[arg(long, value_name = "K", default_value_t = 0)]
    reflect_every: u32,
    /// How the budget is spent: leafe (reflect, roll back, revise),
    /// sample (independent rollouts) or refine (restart with the lessons).
    #[arg(long, value_enum, default_value = "leafe")]
    method: leafe_host::explore::Method,
    /// Environment steps per task, all branches together (for code
    /// environments a step is one submitted program).
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
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    llm: LlmArgs,
}

fn parse_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

impl EngineArgs {
    fn options(&self) -> Result<EngineOptions> {
        if self.fuel == Some(0) || self.wall_ms == Some(0) || self.memory_mb == Some(0) {
            bail!("--fuel, --wall-ms and --memory-mb must be positive");
        }
        let defaults = Limits::default();
        let memory_bytes = match self.memory_mb {
            Some(mb) => mb
                .checked_mul(1 << 20)
                .context("--memory-mb is too large")?,
            None => defaults.memory_bytes,
        };
        Ok(EngineOptions {
            limits: Limits {
                fuel_per_call: self.fuel.unwrap_or(defaults.fuel_per_call),
                wall_ms_per_call: self.wall_ms.unwrap_or(defaults.wall_ms_per_call),
                memory_bytes,
                ..defaults
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

/// `leafe-host exec`.
fn exec(engine: &EngineArgs, options: EngineOptions, cmd: ExecCmd) -> Result<()> {
    use leafe_host::exec;
    use leafe_host::python::RunLimits;
    let defaults = RunLimits::default();
    let limits = RunLimits {
        fuel: engine.fuel.unwrap_or(defaults.fuel),
        wall_ms: engine.wall_ms.unwrap_or(defaults.wall_ms),
        memory_bytes: options.limits.memory_bytes,
        output_bytes: cmd
            .output_kb
            .checked_mul(1024)
            .filter(|b| *b > 0)
            .context("--output-kb must be positive and reasonable")?,
    };
    if cmd.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let source = if cmd.program.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the program from stdin")?
    } else {
        std::fs::read_to_string(&cmd.program)
            .with_context(|| format!("cannot read {}", cmd.program.display()))?
    };
    let tests = cmd.tests.as_deref().map(exec::TestFile::read).transpose()?;
    let stdin = match &cmd.stdin {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => String::new(),
    };
    let runtime = Runtime::new(options)?;
    let sandbox = runtime.python()?;
    match tests {
        Some(tests) => {
            let report = exec::run_tests(&sandbox, &source, &tests, &limits, cmd.jobs);
            if cmd.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", exec::report_text(&report));
            }
        }
        None => {
            let run = sandbox.run(&source, &stdin, &limits);
            if cmd.json {
                println!("{}", serde_json::to_string(&run)?);
            } else {
                use std::io::Write;
                std::io::stdout().write_all(run.stdout.as_bytes())?;
                std::io::stderr().write_all(run.stderr.as_bytes())?;
                if !run.stderr.is_empty() && !run.stderr.ends_with('\n') {
                    eprintln!();
                }
                eprintln!("{}", exec::run_line(&run));
            }
        }
    }
    Ok(())
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
            let policy = cmd.llm.policy(&cmd.policy, cmd.noise, cmd.jobs)?;
            // One person types one task's actions at a time.
            let jobs = if matches!(policy, PolicySpec::Human) {
                1
            } else {
                cmd.jobs
            };
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
                    None => TaskSelection::Range {
                        start: cmd.from,
                        count: cmd.tasks,
                    },
                },
                seed: cmd.task.seed,
                options: cmd.task.options,
                policy: policy.clone(),
                reflector: cmd.llm.reflector(&cmd.reflector, &policy, cmd.jobs)?,
                explore: ExploreConfig {
                    method: cmd.method,
                    reflect_every: cmd.reflect_every,
                    budget: cmd.budget,
                    max_depth: cmd.max_depth,
                    snapshot_every: cmd.snapshot_every,
                },
                out: out.clone(),
                resume: cmd.resume,
                force: cmd.force,
                jobs,
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
        Command::Exec(cmd) => exec(&cli.engine, options, cmd)?,
        Command::Report { dirs, out, svg } => {
            let entries = leafe_host::report::load(&dirs)?;
            let md = leafe_host::report::markdown(&entries);
            match out {
                Some(path) => std::fs::write(&path, &md)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{md}"),
            }
            if let Some(path) = svg {
                let picture = leafe_host::report::svg(&entries)
                    .context("--svg needs at least one eval directory (run ones have no Pass@k)")?;
                std::fs::write(&path, picture)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Command::Export(cmd) => {
            let ExportFormat::Chat = cmd.format;
            let mut prompt = leafe_host::llm_policy::PromptConfig {
                history_chars: cmd.history_chars,
                ..Default::default()
            };
            if let Some(path) = &cmd.system_prompt {
                prompt = prompt.with_template_file(path)?;
            }
            let out = match cmd.out {
                Some(out) => out,
                None => leafe_host::export::default_out(&cmd.runs, cmd.data)?,
            };
            let runtime = Runtime::new(options)?;
            let summary = leafe_host::export::export(
                &runtime,
                &leafe_host::export::ExportArgs {
                    runs: cmd.runs,
                    out: out.clone(),
                    data: cmd.data,
                    cf_per_task: cmd.cf_per_task,
                    reh_fraction: cmd.reh_fraction,
                    beta: cmd.beta,
                    seed: cmd.seed,
                    prompt,
                    keep_experience: cmd.keep_experience,
                },
            )?;
            let kinds: Vec<String> = summary
                .by_kind
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            println!(
                "wrote {} records ({}) from {} tasks to {}",
                summary.records,
                kinds.join(", "),
                summary.tasks,
                out.display()
            );
        }
        Command::Eval(cmd) => {
            let runtime = Runtime::new(options)?;
            let policy = cmd.llm.policy(&cmd.policy, cmd.noise, cmd.jobs)?;
            let jobs = if matches!(policy, PolicySpec::Human) {
                1
            } else {
                cmd.jobs
            };
            let args = EvalArgs {
                env: cmd.env,
                split: cmd.task.split,
                tasks: match (cmd.task_index, cmd.tasks) {
                    (Some(i), _) => TaskSelection::One(i),
                    (None, Some(n)) => TaskSelection::Range {
                        start: cmd.from,
                        count: n,
                    },
                    (None, None) => TaskSelection::All,
                },
                seed: cmd.task.seed,
                options: cmd.task.options,
                policy,
                samples: cmd.samples,
                ks: cmd.k,
                jobs,
                out: cmd.out,
                progress,
            };
            let summary = leafe_host::eval::eval(&runtime, &args)?;
            if cmd.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", leafe_host::eval::summary_text(&summary));
            }
        }
        Command::Bench { reps, json, suite } => {
            let report = leafe_host::bench::run(&options, reps, suite, progress)?;
            print!("{}", report.table());
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
    }
    Ok(())
}
