//! OpenEnv's WebSocket protocol at `/ws` (what the `openenv-core` client's
//! `EnvClient` speaks): JSON messages `{"type": "reset" | "step" | "state"
//! | "close", "data": {...}}`, answered `{"type": "observation", "data":
//! {"observation", "reward", "done"}}`, `{"type": "state", "data": {...}}`
//! or `{"type": "error", "data": {"message", "code"}}`.
//!
//! Each connection drives one session of the session table, so the same
//! episode is visible to the session API (`state` reports its id as
//! `episode_id`): a client can snapshot it, or ask its expert, over HTTP.
//! `reset` takes `env` (default `sokoban`), `split`, `task`, `seed` and
//! `options`; `step` takes `{"action": "..."}`.
//!
//! The HTTP face (`POST /reset`, `POST /step`) answers the same data;
//! OpenEnv's own HTTP routes are stateless, here `/reset` keeps the episode
//! as a session and `/step` names it by `episode_id`.

use super::sessions;
use super::{ApiError, AppState, parse_json};
use crate::env::protocol::CreateRequest;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The environment a `reset` without `env` opens.
pub const DEFAULT_ENV: &str = "sokoban";

pub async fn handle(State(s): State<Arc<AppState>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| connection(s, socket))
}

fn error(code: &str, message: impl Into<String>) -> Value {
    json!({ "type": "error", "data": { "message": message.into(), "code": code } })
}

/// The observation message of a step or reset result.
/// An observation's data: `{"observation", "reward", "done"}`.
fn observation(text: &str, reward: Option<f64>, done: bool, extra: Value) -> Value {
    let mut obs = json!({ "text": text });
    if let (Some(o), Some(e)) = (obs.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    json!({ "observation": obs, "reward": reward, "done": done })
}

struct Episode {
    id: String,
    env: String,
    steps: u64,
    done: bool,
}

/// The session request a `reset`'s data names. A field that is absent
/// takes its default; one of the wrong type or out of range is a 400 that
/// names it (a task number beyond u32 must not become another task).
fn create_request(data: &Value) -> Result<CreateRequest, ApiError> {
    let bad = |k: &str, expected: &str, v: &Value| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "reset: \"{k}\" is {}: expected {expected}",
                leafe_judge::clip(&v.to_string(), 80)
            ),
        )
    };
    let text = |k: &str| match data.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => Ok(Some(t.clone())),
        Some(v) => Err(bad(k, "a string", v)),
    };
    let number = |k: &str, max: u64| match data.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(bad(k, &format!("a whole number from 0 to {max}"), v)),
        },
    };
    let options: BTreeMap<String, String> = match data.get("options") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
            .collect(),
        Some(v) => return Err(bad("options", "an object", v)),
    };
    let task = number("task", u32::MAX.into())?.unwrap_or(0);
    Ok(CreateRequest {
        env: Some(text("env")?.unwrap_or_else(|| DEFAULT_ENV.into())),
        split: text("split")?.unwrap_or_else(|| "test".into()),
        task: u32::try_from(task).expect("bounded by u32::MAX above"),
        seed: number("seed", u64::MAX)?.unwrap_or(0),
        options,
        state: text("state")?,
    })
}

/// Open the episode `data` names: its id, environment and first
/// observation message data.
async fn open_episode(s: &Arc<AppState>, data: &Value) -> Result<(Episode, Value), ApiError> {
    let created = sessions::open(s, create_request(data)?).await?;
    let (id, obs) = (created.id, created.observation);
    let env = created.env.unwrap_or_default();
    let data = observation(&obs, None, false, json!({ "episode_id": id, "env": env }));
    let episode = Episode {
        id,
        env,
        steps: 0,
        done: false,
    };
    Ok((episode, data))
}

/// What a step's data must hold.
const STEP_DATA: &str = "step data needs {\"action\": \"...\"}";

/// The action of a step's data.
fn action_of(data: &Value) -> Option<&str> {
    data.get("action").and_then(|a| a.as_str())
}

/// Apply `action` in session `id`: the observation data, and whether the
/// episode ended.
async fn step_episode(s: &AppState, id: &str, action: &str) -> Result<(Value, bool), ApiError> {
    let r = sessions::step_session(s, id, action.to_string()).await?;
    let done = r.terminated || r.truncated;
    let message = observation(
        &r.observation,
        Some(r.reward),
        done,
        json!({ "info": r.info, "truncated": r.truncated }),
    );
    Ok((message, done))
}

async fn reset(s: &Arc<AppState>, data: &Value, current: &mut Option<Episode>) -> Value {
    if let Some(old) = current.take() {
        s.sessions.remove(&old.id);
    }
    match open_episode(s, data).await {
        Ok((episode, message)) => {
            *current = Some(episode);
            ws_message("observation", message)
        }
        Err(e) => error("RESET_FAILED", e.message),
    }
}

async fn step(s: &Arc<AppState>, data: &Value, current: &mut Option<Episode>) -> Value {
    let Some(episode) = current.as_mut() else {
        return error("NOT_RESET", "send a reset before the first step");
    };
    let Some(action) = action_of(data) else {
        return error("VALIDATION_ERROR", STEP_DATA);
    };
    match step_episode(s, &episode.id, action).await {
        Ok((message, done)) => {
            episode.steps += 1;
            episode.done = done;
            ws_message("observation", message)
        }
        Err(e) => error("STEP_FAILED", e.message),
    }
}

fn ws_message(kind: &str, data: Value) -> Value {
    json!({ "type": kind, "data": data })
}

/// `POST /reset` (OpenEnv's HTTP face): opens an episode as a session of
/// the session table, kept until closed or idle; its id is the
/// observation's `episode_id`.
pub async fn http_reset(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let data: Value = if body.is_empty() {
        json!({})
    } else {
        match parse_json(&body) {
            Ok(v) => v,
            Err(e) => return e.into_response(),
        }
    };
    match open_episode(&s, &data).await {
        Ok((_, message)) => axum::Json(message).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /step` with `{"action": {...}, "episode_id": "..."}`.
pub async fn http_step(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: Value = match parse_json(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let Some(id) = req.get("episode_id").and_then(|i| i.as_str()) else {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name the episode: {\"action\": {...}, \"episode_id\": ...} (from /reset)",
        )
        .into_response();
    };
    let Some(action) = req.get("action").and_then(action_of) else {
        return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, STEP_DATA).into_response();
    };
    match step_episode(&s, id, action).await {
        Ok((message, _)) => axum::Json(message).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn connection(s: Arc<AppState>, mut socket: WebSocket) {
    let mut current: Option<Episode> = None;
    while let Some(Ok(message)) = socket.recv().await {
        let text = match message {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break,
            _ => continue,
        };
        let parsed: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                let reply = error("INVALID_JSON", format!("Invalid JSON: {e}"));
                if socket
                    .send(Message::Text(reply.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let data = parsed.get("data").cloned().unwrap_or(json!({}));
        let reply = match parsed.get("type").and_then(|t| t.as_str()).unwrap_or("") {
            "reset" => reset(&s, &data, &mut current).await,
            "step" => step(&s, &data, &mut current).await,
            "state" => match &current {
                Some(e) => json!({ "type": "state", "data": {
                    "episode_id": e.id, "step_count": e.steps, "env": e.env, "done": e.done,
                }}),
                None => json!({ "type": "state", "data": { "episode_id": null, "step_count": 0 } }),
            },
            "close" => break,
            other => error("UNKNOWN_TYPE", format!("Unknown message type: {other}")),
        };
        if socket
            .send(Message::Text(reply.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    // The connection's episode ends with it.
    if let Some(e) = current {
        s.sessions.remove(&e.id);
    }
}
