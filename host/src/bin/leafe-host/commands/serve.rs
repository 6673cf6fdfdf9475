//! `leafe-host serve`.

use super::Ctx;
use crate::args::{check_range, default_jobs};
use anyhow::{Context, Result, bail};
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
        check_range("--max-sessions", self.max_sessions, 1, 100_000)?;
        check_range("--session-idle-secs", self.session_idle_secs, 1, 7 * 86_400)?;
        check_range("--max-body-kb", self.max_body_kb, 1, 1 << 20)?;
        check_range("--body-timeout-secs", self.body_timeout_secs, 1, 3600)?;
        let concurrency = self.concurrency.unwrap_or_else(|| 4 * default_jobs());
        check_range("--concurrency", concurrency, 1, 4096)?;
        let token = match &self.token_env {
            Some(var) => {
                let t = std::env::var(var)
                    .with_context(|| format!("--token-env {var}: the variable is not set"))?;
                if t.trim().is_empty() {
                    bail!("--token-env {var}: the token is empty");
                }
                Some(t)
            }
            None => None,
        };
        if !self.bind.ip().is_loopback() && token.is_none() {
            bail!(
                "--bind {} is reachable from other machines: give a bearer token with --token-env VAR",
                self.bind
            );
        }
        let run_limits = ctx.engine.server_run_limits(&ctx.options, self.output_kb)?;
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
        let config = ServeConfig {
            token,
            max_sessions: self.max_sessions,
            session_idle: Duration::from_secs(self.session_idle_secs),
            max_body_bytes: self.max_body_kb << 10,
            concurrency,
            queue: self.queue,
            run_limits,
            body_timeout: Duration::from_secs(self.body_timeout_secs),
        };
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
