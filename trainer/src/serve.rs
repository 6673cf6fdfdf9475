//! `leafe-trainer serve`: an OpenAI-compatible HTTP server (`/v1/models`,
//! `/v1/chat/completions`), so the explorer can use a freshly trained model
//! exactly like a vLLM endpoint.

use crate::chat::{ChatTemplate, Message};
use crate::generate::{Finish, GenerateConfig, generate};
use crate::model::Model;
use anyhow::Result;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the server serves.
pub struct Served {
    /// The name clients pass as `model`.
    pub name: String,
    pub model: Model,
    pub tokenizer: tokenizers::Tokenizer,
    pub template: ChatTemplate,
    pub eos: Vec<u32>,
    requests: AtomicU64,
}

impl Served {
    pub fn new(
        name: String,
        model: Model,
        tokenizer: tokenizers::Tokenizer,
        template: ChatTemplate,
    ) -> Self {
        let eos = model.cfg.eos_token_id.into_iter().collect();
        Served {
            name,
            model,
            tokenizer,
            template,
            eos,
            requests: AtomicU64::new(0),
        }
    }
}

/// `stop` is a string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
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
    #[serde(default, alias = "max_completion_tokens")]
    max_tokens: Option<usize>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<Stop>,
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

/// The router; `serve` binds it to a port.
pub fn router(state: Arc<Served>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route (try /v1/models or /v1/chat/completions)",
            )
        })
        .with_state(state)
}

async fn models(State(s): State<Arc<Served>>) -> Json<Value> {
    Json(
        json!({ "object": "list", "data": [{ "id": s.name, "object": "model", "owned_by": "leafe" }] }),
    )
}

async fn chat(State(s): State<Arc<Served>>, body: axum::body::Bytes) -> Response {
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            );
        }
    };
    if let Some(m) = &req.model
        && m != &s.name
    {
        return error(
            StatusCode::NOT_FOUND,
            format!("model '{m}' is not served here (this is '{}')", s.name),
        );
    }
    let n = req.n.unwrap_or(1);
    if n == 0 || n > 128 {
        return error(StatusCode::BAD_REQUEST, "n must be between 1 and 128");
    }
    if req.messages.is_empty() {
        return error(StatusCode::BAD_REQUEST, "messages is empty");
    }
    let temperature = req.temperature.unwrap_or(1.0);
    let top_p = req.top_p.unwrap_or(1.0);
    let valid = (0.0..=2.0).contains(&temperature) && top_p > 0.0 && top_p <= 1.0;
    if !valid {
        return error(
            StatusCode::BAD_REQUEST,
            "temperature must be in [0, 2] and top_p in (0, 1]",
        );
    }
    let number = s.requests.fetch_add(1, Ordering::Relaxed);
    let seed = req.seed.unwrap_or(number);
    let stop = match req.stop {
        None => vec![],
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    let max_tokens = req.max_tokens.unwrap_or(256);
    let state = s.clone();
    let messages = req.messages;
    let result = tokio::task::spawn_blocking(move || -> Result<Value> {
        let prompt = state.template.render(&messages, true)?;
        let ids = crate::tokenizer::ids(&state.tokenizer, &prompt)?;
        let mut choices = Vec::new();
        let mut completion_tokens = 0;
        for index in 0..n {
            let cfg = GenerateConfig {
                max_tokens,
                temperature,
                top_p,
                seed: seed.wrapping_add(index as u64),
                stop: stop.clone(),
                no_cache: false,
            };
            let out = generate(&state.model, &state.tokenizer, &ids, &state.eos, &cfg)?;
            completion_tokens += out.tokens.len();
            choices.push(json!({
                "index": index,
                "message": { "role": "assistant", "content": out.text },
                "finish_reason": match out.finish { Finish::Stop => "stop", Finish::Length => "length" },
            }));
        }
        Ok(json!({
            "id": format!("chatcmpl-{number}"),
            "object": "chat.completion",
            "created": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "model": state.name,
            "choices": choices,
            "usage": {
                "prompt_tokens": ids.len(),
                "completion_tokens": completion_tokens,
                "total_tokens": ids.len() + completion_tokens,
            },
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

/// Serve on an ephemeral port of 127.0.0.1 from a background thread with
/// its own runtime (for embedding the server, and for tests); returns the
/// address. The server lives as long as the process.
pub fn spawn_on_loopback(state: Arc<Served>) -> Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
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
