//! `leafe-host serve`.

use super::Ctx;
use crate::args::default_jobs;
use anyhow::{Context, Result};
use clap::Args;
use leafe_host::jobs::serve::{AppState, ServeConfig, serve, stop_signal};
use leafe_host::{EngineOptions, EnvComponent, Runtime, Source};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct ServeCmd {
    /// Address to listen on. Anything but loopback needs --token-env.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// The environment variable holding the bearer token that every route
    /// but /health then requires (`Authorization: Bearer TOKEN`).
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Live environment sessions at most; more get 429 with Retry-After.
    #[arg(long, default_value_t = 256)]
    max_sessions: usize,
    /// Close a session unused for this many seconds.
    #[arg(long, default_value_t = 600)]
    session_idle_secs: u64,
    /// Largest request body in KiB; larger get 413.
    #[arg(long, default_value_t = 1024)]
    max_body_kb: usize,
    /// Sandbox runs at once [default: 4 per core]. More than the cores:
    /// a run that waits out its wall-clock limit (a hostile program, a slow
    /// one) holds a slot but little CPU, and must not starve the others.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Sandbox runs that may wait for a slot; more get 503 with Retry-After.
    #[arg(long, default_value_t = 1024)]
    queue: usize,
    /// Bytes kept of a run's stdout, and separately of its stderr, in KiB.
    #[arg(long, default_value_t = 64)]
    output_kb: usize,
    /// Also serve these environment components (paths); every built-in is served.
    #[arg(long)]
    env: Vec<String>,
    /// Seconds a client has to send its whole request body; slower get 408.
    #[arg(long, default_value_t = 30)]
    body_timeout_secs: u64,
    /// On SIGTERM or Ctrl-C: stop accepting, and give running requests this
    /// many seconds to finish.
    #[arg(long, default_value_t = 30)]
    grace_secs: u64,
}

impl ServeCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let concurrency = self.concurrency.unwrap_or_else(|| 4 * default_jobs());
        let token = match &self.token_env {
            Some(var) => Some(
                std::env::var(var)
                    .with_context(|| format!("--token-env {var}: the variable is not set"))?,
            ),
            None => None,
        };
        let config = ServeConfig {
            token,
            max_sessions: self.max_sessions,
            session_idle_secs: self.session_idle_secs,
            max_body_kb: self.max_body_kb,
            concurrency,
            queue: self.queue,
            run_limits: ctx.engine.server_run_limits(&ctx.options, self.output_kb)?,
            body_timeout_secs: self.body_timeout_secs,
        };
        // Checked before the environments load; `serve` checks it again
        // for every caller of the library.
        config.validate(self.bind)?;
        // Every session holds an instance; runs take one each.
        let runtime = Runtime::new(EngineOptions {
            pool_instances: (self.max_sessions + concurrency + 8) as u32,
            ..ctx.options.clone()
        })?;
        let mut envs = Vec::new();
        let mut specs: Vec<String> = leafe_builtins::names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        specs.extend(self.env.iter().cloned());
        for spec in specs {
            envs.push(EnvComponent::load(&runtime, Source::parse(&spec)?)?);
        }
        let names: Vec<String> = envs.iter().map(|e| e.info.name.clone()).collect();
        let state = Arc::new(AppState::new(config, runtime, envs));
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .max_blocking_threads(concurrency + self.max_sessions.min(512))
            .build()
            .context("cannot start the server runtime")?;
        tokio.block_on(async {
            let listener = tokio::net::TcpListener::bind(self.bind)
                .await
                .with_context(|| format!("cannot listen on {}", self.bind))?;
            eprintln!(
                "serving on http://{} · environments: {} · POST /run_code (SandboxFusion), /ws (OpenEnv), /sessions, GET /health, /metrics",
                listener.local_addr()?,
                names.join(", ")
            );
            serve(
                listener,
                state,
                stop_signal(),
                Duration::from_secs(self.grace_secs),
            )
            .await
        })?;
        eprintln!("stopped");
        Ok(())
    }
}
