//! `leafe-trainer serve`: an OpenAI-compatible HTTP server (`/v1/models`,
//! `/v1/chat/completions`, with `stream`), so the explorer and the official
//! `openai` client use a trained model exactly like a vLLM endpoint.
//!
//! Memory is bounded by construction: at most `concurrency` requests run at
//! once, their generations decoded together by one batching thread
//! ([`batcher`]), each with a context of at most `max_context` tokens (the
//! KV cache's size); attention scores bounded blocks of queries; requests beyond the
//! queue get 503 with `Retry-After`; freed memory goes back to the system
//! whenever no generation runs.

mod batcher;
pub mod prefix;
mod weights;

pub use weights::ServedModel;

use crate::io::chat::{ChatTemplate, Message};
use crate::jobs::generate::{Finish, GenerateConfig, Generated};
use crate::nn::model::Model;
use crate::setting::{BadSetting, check};
use anyhow::Result;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use batcher::Batcher;
pub use batcher::PromptCounts;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::{Semaphore, mpsc};

/// How much the server takes on at once.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Generations running at once.
    pub concurrency: usize,
    /// Requests waiting for a slot; more get 503.
    pub queue: usize,
    /// Prompt + completion tokens of one request.
    pub max_context: usize,
    /// MiB of prompt prefixes' keys and values kept for later prompts that
    /// start the same way (0: none).
    pub prefix_cache_mb: usize,
}

impl ServeLimits {
    /// The most `prefix_cache_mb` may be (64 GiB).
    pub const MAX_PREFIX_CACHE_MB: usize = 64 << 10;

    /// Every limit in its range; the error names the field.
    pub fn validate(&self) -> Result<(), BadSetting> {
        check(self.concurrency >= 1, "concurrency", "must be at least 1")?;
        check(self.max_context >= 2, "max_context", "must be at least 2")?;
        check(
            self.prefix_cache_mb <= Self::MAX_PREFIX_CACHE_MB,
            "prefix_cache_mb",
            &format!("must be at most {} (64 GiB)", Self::MAX_PREFIX_CACHE_MB),
        )
    }

    pub fn prefix_cache_bytes(&self) -> usize {
        self.prefix_cache_mb << 20
    }
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            concurrency: 2,
            queue: 64,
            max_context: 2048,
            prefix_cache_mb: 256,
        }
    }
}

/// What the server serves.
pub struct Served {
    /// The name clients pass as `model`.
    pub name: String,
    /// The weights in use; a reload swaps them whole, and requests already
    /// running finish with the ones they started with.
    current: std::sync::RwLock<Arc<ServedModel>>,
    pub limits: ServeLimits,
    /// Whether `POST /v1/reload` may load other weights.
    reload_allowed: bool,
    requests: AtomicU64,
    reloads: AtomicU64,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Decodes the running generations together.
    batcher: Batcher,
}

impl Served {
    pub fn new(
        name: String,
        model: Model,
        tokenizer: tokenizers::Tokenizer,
        template: ChatTemplate,
    ) -> Self {
        Served::with_limits(name, model, tokenizer, template, ServeLimits::default())
    }

    /// Panics if the batching thread cannot be started (the system is out
    /// of threads).
    pub fn with_limits(
        name: String,
        model: Model,
        tokenizer: tokenizers::Tokenizer,
        template: ChatTemplate,
        limits: ServeLimits,
    ) -> Self {
        Served {
            batcher: Batcher::start().expect("cannot start the batching thread"),
            name,
            current: std::sync::RwLock::new(Arc::new(ServedModel::new(
                model,
                tokenizer,
                template,
                limits.prefix_cache_bytes(),
            ))),
            slots: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            limits,
            reload_allowed: false,
            requests: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Let `POST /v1/reload` swap in other weights (off by default: it
    /// reads a path on the server's machine).
    pub fn allowing_reload(mut self) -> Self {
        self.reload_allowed = true;
        self
    }

    /// The weights in use now.
    pub fn current(&self) -> Arc<ServedModel> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Served {
    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// The most generations decoded together in one step so far.
    /// Prompt tokens received, computed and taken from the prefix cache.
    pub fn prompt_counts(&self) -> PromptCounts {
        self.batcher.prompt_counts()
    }

    pub fn largest_batch(&self) -> usize {
        self.batcher.largest_batch()
    }

    /// Take every generation slot: new requests queue (then get 503) until
    /// the permit is dropped. For maintenance and for tests of the limits.
    pub async fn hold_all_slots(&self) -> tokio::sync::OwnedSemaphorePermit {
        let n = self.limits.concurrency.max(1) as u32;
        self.slots
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the semaphore is never closed")
    }
}

/// Parameters this server implements; anything else is a 400 naming it.
const SUPPORTED: &[&str] = &[
    "model",
    "messages",
    "n",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "stream",
    "stream_options",
];
/// Parameters that change nothing about the completion.
const HARMLESS: &[&str] = &["user", "metadata", "store", "service_tier"];

/// `stop` is a string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    (
        status,
        Json(json!({ "error": { "message": message.into(), "type": kind } })),
    )
        .into_response()
}

fn busy(state: &Served) -> Response {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the server is busy: {} generations running and {} queued; retry shortly",
            state.limits.concurrency, state.limits.queue
        ),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

/// The router; `serve` binds it to a port.
pub fn router(state: Arc<Served>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/reload", post(reload))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route (try /v1/models or /v1/chat/completions)",
            )
        })
        .with_state(state)
}

/// `GET /metrics`: Prometheus text of what the server has done.
async fn metrics(State(s): State<Arc<Served>>) -> Response {
    let c = s.prompt_counts();
    let cache = s.current().prefix_cache().bytes();
    let body = format!(
        "# HELP leafe_trainer_requests_total Chat completion requests answered or refused.\n\
         # TYPE leafe_trainer_requests_total counter\n\
         leafe_trainer_requests_total {}\n\
         # HELP leafe_trainer_prompt_tokens_total Prompt tokens: received, computed, or reused from the prefix cache.\n\
         # TYPE leafe_trainer_prompt_tokens_total counter\n\
         leafe_trainer_prompt_tokens_total{{kind=\"received\"}} {}\n\
         leafe_trainer_prompt_tokens_total{{kind=\"computed\"}} {}\n\
         leafe_trainer_prompt_tokens_total{{kind=\"reused\"}} {}\n\
         # HELP leafe_trainer_prefix_cache_bytes Keys and values held by the prefix cache.\n\
         # TYPE leafe_trainer_prefix_cache_bytes gauge\n\
         leafe_trainer_prefix_cache_bytes {cache}\n",
        s.requests.load(Ordering::Relaxed),
        c.received,
        c.computed,
        c.reused,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn models(State(s): State<Arc<Served>>) -> Json<Value> {
    Json(
        json!({ "object": "list", "data": [{ "id": s.name, "object": "model", "owned_by": "leafe" }] }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadRequest {
    /// A checkpoint directory on the server's machine.
    model: std::path::PathBuf,
}

/// `POST /v1/reload {"model": DIR}`: load other weights (the same
/// architecture or not) and serve them under the same name from the next
/// request on, without a restart. For on-policy loops such as GRPO.
async fn reload(State(s): State<Arc<Served>>, body: Bytes) -> Response {
    if !s.reload_allowed {
        return error(
            StatusCode::FORBIDDEN,
            "reloading is off: start the server with --allow-reload",
        );
    }
    let req: ReloadRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e} (expected {{\"model\": \"DIR\"}})"),
            );
        }
    };
    let state = s.clone();
    let dir = req.model.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        // The new weights are served as the old ones were: same device and quantization.
        let current = state.current();
        let (device, quantization) = (current.model.device().clone(), current.model.quantization());
        ServedModel::load(
            &dir,
            &device,
            quantization,
            state.limits.prefix_cache_bytes(),
        )
    })
    .await;
    match loaded {
        Ok(Ok(weights)) => {
            *s.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(weights);
            let reloads = s.reloads.fetch_add(1, Ordering::SeqCst) + 1;
            Json(json!({ "model": s.name, "loaded": req.model, "reloads": reloads }))
                .into_response()
        }
        Ok(Err(e)) => error(
            StatusCode::BAD_REQUEST,
            format!("cannot load {}: {e:#}", req.model.display()),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {e}"),
        ),
    }
}

/// A validated request, ready to generate.
struct Job {
    id: String,
    /// The weights it was tokenised for and is generated with.
    weights: Arc<ServedModel>,
    prompt: Vec<u32>,
    n: usize,
    config: GenerateConfig,
    stream: bool,
    include_usage: bool,
}

/// A request refused: its status and message.
type Refusal = (StatusCode, String);

fn parse(s: &Served, body: &[u8]) -> std::result::Result<Job, Refusal> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let raw: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))?;
    for key in raw.keys() {
        if !SUPPORTED.contains(&key.as_str()) && !HARMLESS.contains(&key.as_str()) {
            return Err(bad(format!(
                "unsupported parameter '{key}' (this server supports: {})",
                SUPPORTED.join(", ")
            )));
        }
    }
    let req: ChatRequest = serde_json::from_value(Value::Object(raw))
        .map_err(|e| bad(format!("invalid request body: {e}")))?;
    if let Some(m) = &req.model
        && m != &s.name
    {
        return Err((
            StatusCode::NOT_FOUND,
            format!("model '{m}' is not served here (this is '{}')", s.name),
        ));
    }
    let n = req.n.unwrap_or(1);
    if n == 0 || n > 16 {
        return Err(bad("n must be between 1 and 16".into()));
    }
    if req.messages.is_empty() {
        return Err(bad("messages is empty".into()));
    }
    let temperature = req.temperature.unwrap_or(1.0);
    let top_p = req.top_p.unwrap_or(1.0);
    if !((0.0..=2.0).contains(&temperature) && top_p > 0.0 && top_p <= 1.0) {
        return Err(bad(
            "temperature must be in [0, 2] and top_p in (0, 1]".into()
        ));
    }
    let stop = match req.stop {
        None => vec![],
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if stop.len() > 4 || stop.iter().any(|s| s.is_empty()) {
        return Err(bad("stop takes up to 4 non-empty strings".into()));
    }
    let weights = s.current();
    let prompt = weights
        .template
        .render(&req.messages, true)
        .and_then(|text| crate::io::tokenizer::ids(&weights.tokenizer, &text))
        .map_err(|e| bad(format!("{e:#}")))?;
    let context = s.limits.max_context;
    if prompt.len() >= context {
        return Err(bad(format!(
            "the prompt has {} tokens; this server's context is {context} (--max-context)",
            prompt.len()
        )));
    }
    let number = s.requests.fetch_add(1, Ordering::Relaxed);
    Ok(Job {
        id: format!("chatcmpl-{number}"),
        weights,
        config: GenerateConfig {
            max_tokens: req.max_completion_tokens.or(req.max_tokens).unwrap_or(256),
            temperature,
            top_p,
            seed: req.seed.unwrap_or(number),
            stop,
            no_cache: false,
            max_context: Some(context),
        },
        prompt,
        n,
        stream: req.stream,
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
    })
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
    }
}

fn created() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// OpenAI's usage, with the prompt tokens taken from the prefix cache as
/// `prompt_tokens_details.cached_tokens` (as vLLM fills it).
fn usage(prompt: usize, completion: usize, cached: usize) -> Value {
    json!({
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": cached },
    })
}

/// Generate choice `index` of `job` (in the batch of running generations),
/// handing text pieces to `on_text`.
fn run_choice(
    s: &Served,
    job: &Job,
    index: usize,
    on_text: impl FnMut(&str) -> bool,
) -> Result<Generated> {
    let cfg = GenerateConfig {
        seed: job.config.seed.wrapping_add(index as u64),
        ..job.config.clone()
    };
    s.batcher
        .generate(job.weights.clone(), job.prompt.clone(), cfg, on_text)
}

async fn chat(State(s): State<Arc<Served>>, body: Bytes) -> Response {
    let job = match parse(&s, &body) {
        Ok(job) => job,
        Err((status, message)) => return error(status, message),
    };
    let permit = match s.slots.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(tokio::sync::TryAcquireError::Closed) => return busy(&s),
        Err(tokio::sync::TryAcquireError::NoPermits) => {
            // Wait for a slot, unless the queue is full.
            if s.waiting.fetch_add(1, Ordering::SeqCst) >= s.limits.queue {
                s.waiting.fetch_sub(1, Ordering::SeqCst);
                return busy(&s);
            }
            let permit = s.slots.clone().acquire_owned().await;
            s.waiting.fetch_sub(1, Ordering::SeqCst);
            match permit {
                Ok(permit) => permit,
                Err(_) => return busy(&s),
            }
        }
    };
    if job.stream {
        return stream(s, job, permit).await;
    }
    let state = s.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<Value> {
        let _permit = permit;
        let mut choices = Vec::new();
        let mut completion_tokens = 0;
        // The prompt is counted once: as the first choice found it.
        let mut cached = None;
        for index in 0..job.n {
            let out = run_choice(&state, &job, index, |_| true)?;
            completion_tokens += out.tokens.len();
            cached.get_or_insert(out.cached_prompt_tokens);
            choices.push(json!({
                "index": index,
                "message": { "role": "assistant", "content": out.text },
                "logprobs": null,
                "finish_reason": finish_reason(out.finish),
            }));
        }
        Ok(json!({
            "id": job.id,
            "object": "chat.completion",
            "created": created(),
            "model": state.name,
            "choices": choices,
            "usage": usage(job.prompt.len(), completion_tokens, cached.unwrap_or(0)),
        }))
    })
    .await;
    match result {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("generation failed: {e}"),
        ),
    }
}

/// `stream: true`: server-sent events of `chat.completion.chunk`s, each
/// choice in turn, then `data: [DONE]`.
async fn stream(s: Arc<Served>, job: Job, permit: tokio::sync::OwnedSemaphorePermit) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let state = s.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let created = created();
        let chunk = |index: usize, delta: Value, finish: Option<&str>| {
            let v = json!({
                "id": job.id, "object": "chat.completion.chunk", "created": created,
                "model": state.name,
                "choices": [{ "index": index, "delta": delta, "logprobs": null, "finish_reason": finish }],
            });
            Bytes::from(format!("data: {v}\n\n"))
        };
        let mut completion_tokens = 0;
        let mut cached = None;
        for index in 0..job.n {
            if tx
                .blocking_send(chunk(
                    index,
                    json!({"role": "assistant", "content": ""}),
                    None,
                ))
                .is_err()
            {
                return;
            }
            let sent = run_choice(&state, &job, index, |piece| {
                tx.blocking_send(chunk(index, json!({ "content": piece }), None))
                    .is_ok()
            });
            let out = match sent {
                Ok(out) => out,
                Err(e) => {
                    let v =
                        json!({ "error": { "message": format!("{e:#}"), "type": "server_error" } });
                    let _ = tx.blocking_send(Bytes::from(format!("data: {v}\n\n")));
                    return;
                }
            };
            completion_tokens += out.tokens.len();
            cached.get_or_insert(out.cached_prompt_tokens);
            let done = chunk(index, json!({}), Some(finish_reason(out.finish)));
            if tx.blocking_send(done).is_err() {
                return;
            }
        }
        if job.include_usage {
            let v = json!({
                "id": job.id, "object": "chat.completion.chunk", "created": created,
                "model": state.name, "choices": [],
                "usage": usage(job.prompt.len(), completion_tokens, cached.unwrap_or(0)),
            });
            let _ = tx.blocking_send(Bytes::from(format!("data: {v}\n\n")));
        }
        let _ = tx.blocking_send(Bytes::from_static(b"data: [DONE]\n\n"));
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A runtime whose blocking pool has one thread per generation slot, so
/// the allocator keeps no more per-thread arenas than slots.
pub fn runtime(limits: &ServeLimits) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(limits.concurrency.max(1))
        .enable_all()
        .build()?)
}

/// Serve on an ephemeral port of 127.0.0.1 from a background thread with
/// its own runtime (for embedding the server, and for tests); returns the
/// address. The server lives as long as the process.
pub fn spawn_on_loopback(state: Arc<Served>) -> Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let runtime = runtime(&state.limits)?;
    std::thread::Builder::new()
        .name("leafe-serve".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        if let Err(e) = serve(listener, state).await {
                            eprintln!("the model server stopped: {e:#}");
                        }
                    }
                    Err(e) => eprintln!("the model server cannot listen: {e}"),
                }
            })
        })?;
    Ok(addr)
}

/// Serve on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<Served>) -> Result<()> {
    axum::serve(listener, router(state)).await?;
    Ok(())
}
