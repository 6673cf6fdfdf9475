//! The flag groups several commands share, and every check of flag values:
//! engine limits, task selection, the model policy's settings.

use anyhow::{Result, bail};
use clap::Args;
use leafe_host::agent::policy::spec::ModelPolicy;
use leafe_host::llm::{ChatClient, ChatConfig};
use leafe_host::{BadSetting, EngineOptions, Limits, PolicySpec, ReflectorSpec, RunLimits, Task};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
#[command(next_help_heading = "Limits (per call into an environment; per program for exec)")]
pub struct EngineArgs {
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

/// `e` with every setting error in its chain naming the flag, not the
/// library's field: `reh_fraction must be ...` becomes `--reh-fraction must be ...`.
pub fn flag_error(e: anyhow::Error) -> anyhow::Error {
    if !e.chain().any(|c| c.is::<BadSetting>()) {
        return e;
    }
    let parts: Vec<String> = e
        .chain()
        .map(|c| match c.downcast_ref::<BadSetting>() {
            Some(bad) => format!("{} {}", flag(bad.field), bad.problem),
            None => c.to_string(),
        })
        .collect();
    anyhow::anyhow!(parts.join(": "))
}

/// The flag that sets the library's `field`.
fn flag(field: &str) -> String {
    match field {
        "fuel_per_call" => "--fuel".into(),
        "wall_ms_per_call" => "--wall-ms".into(),
        "token" => "--token-env".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

impl EngineArgs {
    /// The engine's options. `--fuel` and `--wall-ms` also cap what an
    /// environment may ask for in a nested sandbox run.
    pub fn options(&self) -> Result<EngineOptions> {
        let defaults = Limits::default();
        // The library checks bytes; the flag counts MiB, so its range is said here.
        let memory_bytes = match self.memory_mb {
            Some(mb) => in_bytes("--memory-mb", mb, 20, Limits::MAX_MEMORY_BYTES)?,
            None => defaults.memory_bytes,
        };
        let limits = Limits {
            fuel_per_call: self.fuel.unwrap_or(defaults.fuel_per_call),
            wall_ms_per_call: self.wall_ms.unwrap_or(defaults.wall_ms_per_call),
            memory_bytes,
            ..defaults
        };
        limits.validate()?;
        Ok(EngineOptions {
            limits,
            cache: if self.no_cache {
                None
            } else {
                leafe_host::default_cache_dir()
            },
            nested_fuel: self.fuel,
            nested_wall_ms: self.wall_ms,
            ..EngineOptions::default()
        })
    }

    /// The limits of one `exec` program.
    /// The most one `/run_code` run of `serve` gets: `--fuel` and
    /// `--wall-ms` if given, else the nested-run maxima (200 G fuel, 60 s),
    /// since a request names only its own `run_timeout`.
    pub fn server_run_limits(
        &self,
        options: &EngineOptions,
        output_kb: usize,
    ) -> Result<RunLimits> {
        let max = RunLimits::NESTED_MAX;
        Ok(RunLimits {
            fuel: self.fuel.unwrap_or(max.fuel),
            wall_ms: self.wall_ms.unwrap_or(max.wall_ms),
            ..self.run_limits(options, output_kb)?
        })
    }

    pub fn run_limits(&self, options: &EngineOptions, output_kb: usize) -> Result<RunLimits> {
        let output_bytes = in_bytes("--output-kb", output_kb, 10, RunLimits::MAX_OUTPUT_BYTES)?;
        let defaults = RunLimits::default();
        Ok(RunLimits {
            fuel: self.fuel.unwrap_or(defaults.fuel),
            wall_ms: self.wall_ms.unwrap_or(defaults.wall_ms),
            memory_bytes: options.limits.memory_bytes,
            output_bytes,
        })
    }
}

/// `value` of a flag counted in units of `1 << shift` bytes (KiB: 10, MiB:
/// 20), in bytes, checked to lie within one unit..=`max_bytes`: the flag's
/// own range, since the library checks the bytes.
fn in_bytes(flag: &str, value: usize, shift: u32, max_bytes: usize) -> Result<usize> {
    let most = max_bytes >> shift;
    if !(1..=most).contains(&value) {
        bail!("{flag} must be between 1 and {most}, got {value}");
    }
    Ok(value << shift)
}

/// The task flags of `run`, `eval` and `play`.
#[derive(Args, Clone)]
pub struct TaskArgs {
    /// The split to draw tasks from.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Episode seed handed to the environment.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Environment option KEY=VALUE (repeatable), e.g. --opt size=8x8 --opt boxes=3.
    #[arg(long = "opt", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub options: Vec<(String, String)>,
}

impl TaskArgs {
    /// Task `index` of the split.
    pub fn task(&self, index: u32) -> Task {
        Task::new(&self.split, index, self.seed, &self.options)
    }
}

fn parse_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

/// All the cores, the default of every `--jobs`.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `--jobs` lowered to 4 per core (more only adds memory; said on
/// stderr). Zero is left for the library to refuse.
pub fn jobs(requested: usize) -> usize {
    let most = 4 * default_jobs();
    if requested > most {
        eprintln!("note: --jobs {requested} is more than 4 per core; using {most}");
        return most;
    }
    requested
}

/// [`jobs`], and one job for the human policy: one person types one
/// task's actions at a time.
pub fn jobs_for(policy: &PolicySpec, requested: usize) -> usize {
    match policy {
        PolicySpec::Human => requested.min(1),
        _ => jobs(requested),
    }
}

/// The model policy's and the model reflector's settings.
#[derive(Args)]
#[command(next_help_heading = "Model (--policy openai, --reflector llm)")]
pub struct LlmArgs {
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
    /// Tokens per reflection of `--reflector llm` [default: --max-tokens]:
    /// a lesson in JSON needs more room than a one-word action.
    #[arg(long, value_name = "N")]
    reflection_max_tokens: Option<u32>,
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
    pub system_prompt: Option<PathBuf>,
    /// The history's budget in characters (about 4 per token); older turns
    /// are left out 8 at a time, so that consecutive prompts start the same
    /// way (a server's prefix cache reuses that).
    #[arg(long, default_value_t = 24_000)]
    pub history_chars: usize,
}

impl LlmArgs {
    /// The reflector `name`: the rule-based one, or the model (sharing the
    /// policy's client when the policy is the same model).
    pub fn reflector(&self, name: &str, policy: &PolicySpec, jobs: usize) -> Result<ReflectorSpec> {
        ReflectorSpec::parse(name, || match (policy, self.reflection_max_tokens) {
            (PolicySpec::OpenAi { client, .. }, None) => Ok(client.clone()),
            (_, tokens) => Ok(Arc::new(
                self.client(jobs, tokens.unwrap_or(self.max_tokens))?,
            )),
        })
    }

    /// The policy `name` (`noise` for the oracle).
    pub fn policy(&self, name: &str, noise: f64, jobs: usize) -> Result<PolicySpec> {
        PolicySpec::parse(name, noise, || {
            Ok(ModelPolicy {
                client: Arc::new(self.client(jobs, self.max_tokens)?),
                prompt: Arc::new(self.prompt()?),
            })
        })
    }

    fn client(&self, jobs: usize, max_tokens: u32) -> Result<ChatClient> {
        let (Some(base_url), Some(model)) = (&self.base_url, &self.model) else {
            bail!("--policy openai and --reflector llm need --base-url and --model");
        };
        let config = ChatConfig {
            base_url: base_url.clone(),
            model: model.clone(),
            api_key: std::env::var(&self.api_key_env)
                .ok()
                .filter(|k| !k.is_empty()),
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens,
            timeout: std::time::Duration::from_secs(self.request_timeout),
            retries: self.retries,
            backoff: std::time::Duration::from_secs(1),
            concurrency: self.concurrency.unwrap_or(jobs).max(1),
        };
        Ok(ChatClient::new(config)?)
    }

    /// The prompt settings (`--system-prompt`, `--history-chars`).
    pub fn prompt(&self) -> Result<leafe_host::agent::prompt::PromptConfig> {
        let prompt = leafe_host::agent::prompt::PromptConfig {
            history_chars: self.history_chars,
            ..Default::default()
        };
        match &self.system_prompt {
            Some(path) => prompt.with_template_file(path),
            None => Ok(prompt),
        }
    }
}
