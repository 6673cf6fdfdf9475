//! `leafe-host serve`: the Python sandbox and the environments over HTTP,
//! for clients outside this process.
//!
//! - `POST /run_code`: SandboxFusion's protocol ([`run_code`]).
//! - `/ws`: OpenEnv's WebSocket protocol ([`openenv`]).
//! - `/sessions`: leafe's own session API with snapshot and restore
//!   ([`sessions`]); a snapshot is bytes, so a session can move to any
//!   server process running the same component.
//! - `GET /health` (no token needed), `GET /metrics` (Prometheus text).
//!
//! Wasm work runs on tokio's blocking pool; sandbox runs take one of
//! `concurrency` slots, with a bounded queue (then 503 + Retry-After).

pub mod metrics;
pub mod openenv;
pub mod run_code;
pub mod sessions;

use crate::env::component::EnvComponent;
use crate::env::runtime::Runtime;
use crate::sandbox::RunLimits;
use crate::util::setting::{BadSetting, check, check_range};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What the server allows.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Bearer token every route but `/health` requires, if set.
    pub token: Option<String>,
    /// Live environment sessions at most; more get 429.
    pub max_sessions: usize,
    /// A session unused this many seconds is closed.
    pub session_idle_secs: u64,
    /// Request bodies larger than this many KiB get 413.
    pub max_body_kb: usize,
    /// Sandbox runs at once.
    pub concurrency: usize,
    /// Sandbox runs waiting for a slot; more get 503.
    pub queue: usize,
    /// The most any run gets (a request's `run_timeout` is capped by it).
    pub run_limits: RunLimits,
    /// A request body not received in full within this many seconds is
    /// refused (408).
    pub body_timeout_secs: u64,
}

impl ServeConfig {
    /// The most of each bounded setting.
    pub const MAX_SESSIONS: usize = 100_000;
    pub const MAX_SESSION_IDLE_SECS: u64 = 7 * 86_400;
    pub const MAX_BODY_KB: usize = 1 << 20;
    pub const MAX_BODY_TIMEOUT_SECS: u64 = 3600;
    pub const MAX_CONCURRENCY: usize = 4096;

    /// Every setting in its range, and a token wherever `bind` is reachable
    /// from other machines; the error names the field.
    pub fn validate(&self, bind: SocketAddr) -> Result<(), BadSetting> {
        check_range("max_sessions", self.max_sessions, 1, Self::MAX_SESSIONS)?;
        let idle = self.session_idle_secs;
        check_range("session_idle_secs", idle, 1, Self::MAX_SESSION_IDLE_SECS)?;
        check_range("max_body_kb", self.max_body_kb, 1, Self::MAX_BODY_KB)?;
        let timeout = self.body_timeout_secs;
        check_range("body_timeout_secs", timeout, 1, Self::MAX_BODY_TIMEOUT_SECS)?;
        check_range("concurrency", self.concurrency, 1, Self::MAX_CONCURRENCY)?;
        if let Some(token) = &self.token {
            check(
                !token.trim().is_empty(),
                "token",
                "is empty (no bearer token in it)",
            )?;
        }
        check(
            bind.ip().is_loopback() || self.token.is_some(),
            "token",
            &format!("is needed: {bind} is reachable from other machines"),
        )
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_kb << 10
    }
}

/// The server's state, shared by every request.
pub struct AppState {
    pub config: ServeConfig,
    pub runtime: Arc<Runtime>,
    /// The environments clients may open, by name.
    pub envs: BTreeMap<String, Arc<EnvComponent>>,
    pub sessions: sessions::Table,
    pub metrics: metrics::Metrics,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl AppState {
    pub fn new(
        config: ServeConfig,
        runtime: Arc<Runtime>,
        envs: Vec<Arc<EnvComponent>>,
    ) -> AppState {
        AppState {
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            sessions: sessions::Table::new(config.max_sessions),
            envs: envs.into_iter().map(|e| (e.info.name.clone(), e)).collect(),
            config,
            runtime,
            metrics: metrics::Metrics::default(),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A slot for one sandbox run: at once, after waiting in the queue, or
    /// `None` when the queue is full.
    pub async fn run_slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.config.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let permit = self.slots.clone().acquire_owned().await.ok();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit
    }

    /// Runs waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// A JSON error body `{"error": {"message", "type"}}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    // OpenAI's error types, as the trainer's server writes them too.
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    (
        status,
        axum::Json(json!({ "error": { "message": message.into(), "type": kind } })),
    )
        .into_response()
}

/// A 429 or 503 that says when to come back.
pub fn retry_later(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = error(status, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// A request refused: its status and message (and whether to say when to
/// come back); becomes the JSON error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.retry_after {
            retry_later(self.status, self.message)
        } else {
            error(self.status, self.message)
        }
    }
}

/// Parse a JSON body, or a 400 that says what is wrong with it.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

async fn require_token(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.config.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compare in constant time: the token is a secret.
        let ok = given.is_some_and(|g| {
            g.len() == token.len()
                && g.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if !ok {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer ...)",
            );
        }
    }
    next.run(req).await
}

/// Read the whole body first, within the size cap (413) and the time
/// limit (408), so that a slow or oversized upload never reaches a
/// handler, and handlers get it as one buffer.
async fn read_body(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let limit = s.config.max_body_bytes();
    let timeout = Duration::from_secs(s.config.body_timeout_secs);
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit));
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            // axum reports the cap as a "length limit exceeded" error.
            let mut chain: Option<&dyn std::error::Error> = Some(&e);
            let mut too_big = false;
            while let Some(c) = chain {
                too_big |= c.to_string().contains("length limit");
                chain = c.source();
            }
            return if too_big {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is over {} KiB (--max-body-kb)",
                        limit >> 10
                    ),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}"),
                )
            };
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    s.config.body_timeout_secs
                ),
            );
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Liveness, and which Python sandbox build `/run_code` runs programs in
/// (two builds of the interpreter component differ in fuel counts).
async fn health() -> Response {
    axum::Json(json!({ "status": "ok", "sandbox_sha256": leafe_builtins::PYTHON_SHA256 }))
        .into_response()
}

/// Every route.
pub fn router(state: Arc<AppState>) -> Router {
    let guarded = Router::new()
        .route("/run_code", post(run_code::handle))
        .route("/metrics", get(metrics::handle))
        .route("/ws", get(openenv::handle))
        .route("/reset", post(openenv::http_reset))
        .route("/step", post(openenv::http_step))
        .merge(sessions::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/health", get(health))
        .merge(guarded)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_body,
        ))
        // `read_body` enforces the cap; this lifts axum's own 2 MB default
        // for the extractors so that a larger --max-body-kb holds.
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .with_state(state)
}

/// Serve on `listener` until `shutdown` resolves; then stop accepting and
/// let running requests finish for up to `grace`. Refuses a configuration
/// out of range, or one without a token on an address other machines reach.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    state.config.validate(listener.local_addr()?)?;
    let reaper = tokio::spawn(sessions::reap_idle(state.clone()));
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    });
    let server = tokio::spawn(async move { server.await });
    tokio::pin!(server);
    tokio::select! {
        done = &mut server => { done??; }
        _ = async { let _ = stopping_rx.await; } => {
            // Stopped accepting: give what runs `grace` to finish.
            if tokio::time::timeout(grace, &mut server).await.is_err() {
                eprintln!("grace period of {grace:?} over: stopping with requests still running");
            }
        }
    }
    reaper.abort();
    Ok(())
}

/// SIGTERM or Ctrl-C.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
