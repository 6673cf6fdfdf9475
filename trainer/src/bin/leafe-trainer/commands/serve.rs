//! `leafe-trainer serve`.

use super::Ctx;
use crate::args::QuantizeArg;
use crate::args::flag_error;
use anyhow::{Context, Result};
use clap::Args;
use leafe_trainer::io::load_for_inference;
use leafe_trainer::jobs::serve::{ServeLimits, Served, runtime, serve};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct ServeCmd {
    /// A checkpoint directory, or a GGUF file (served as it is, no
    /// import-gguf step: its weights are dequantized, then stored as
    /// --quantize says).
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// The model name clients use [default: the directory name].
    #[arg(long)]
    name: Option<String>,
    /// Requests generated at once, decoded together in one batch (each
    /// holds one KV cache).
    #[arg(long, default_value_t = ServeLimits::default().concurrency)]
    concurrency: usize,
    /// Requests that may wait for a slot; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = ServeLimits::default().queue)]
    queue: usize,
    /// Prompt + completion tokens of one request (bounds each KV cache,
    /// whatever the model's max_position_embeddings says).
    #[arg(long, default_value_t = ServeLimits::default().max_context)]
    max_context: usize,
    /// MiB of prompt prefixes' keys and values kept, so that a prompt that
    /// starts as an earlier one did (the next step of an episode, the n
    /// choices of a request) computes only the rest; least recently used
    /// first out. 0: no prefix cache. Replies say what was reused in
    /// `usage.prompt_tokens_details.cached_tokens`.
    #[arg(long, default_value_t = ServeLimits::default().prefix_cache_mb)]
    prefix_cache_mb: usize,
    /// Accept `POST /v1/reload {"model": "DIR"}`, which swaps in the
    /// weights of another checkpoint directory without a restart (for
    /// on-policy training loops such as GRPO). It reads paths on this
    /// machine: keep the server on loopback.
    #[arg(long)]
    allow_reload: bool,
    /// Store the projections quantized, on the CPU: less memory and faster
    /// matmuls (the checkpoint's float weights are quantized at load).
    #[arg(long, value_enum, default_value = "none")]
    quantize: QuantizeArg,
}

impl ServeCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let limits = ServeLimits {
            concurrency: self.concurrency,
            queue: self.queue,
            max_context: self.max_context,
            prefix_cache_mb: self.prefix_cache_mb,
        };
        limits.validate().map_err(flag_error)?;
        let (m, tokenizer, template) =
            load_for_inference(&self.model, &ctx.device, self.quantize.into())?;
        let name = self.name.unwrap_or_else(|| {
            self.model
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        });
        let mut served = Served::with_limits(name.clone(), m, tokenizer, template, limits);
        if self.allow_reload {
            served = served.allowing_reload();
        }
        let state = Arc::new(served);
        let runtime = runtime(&limits).context("cannot start the server runtime")?;
        let (host, port) = (self.host, self.port);
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                .await
                .with_context(|| format!("cannot listen on {host}:{port}"))?;
            eprintln!("serving '{name}' on http://{}/v1", listener.local_addr()?);
            serve(listener, state).await
        })
    }
}
