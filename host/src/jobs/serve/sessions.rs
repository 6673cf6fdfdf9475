//! leafe's session API: environment sessions that clients step, snapshot
//! and restore over HTTP.
//!
//! A snapshot is opaque bytes (base64 in JSON): a [`SavedState`], the
//! component's state with the environment's name, the component's sha256,
//! the task and the last observation. Any server process running the same
//! component accepts it (and the Python package's `restore` too),
//! so a session can move between replicas behind a load balancer with no
//! shared memory: snapshot on one, restore (`POST /sessions` with `state`)
//! on another.

use super::{ApiError, AppState, error, parse_json};
use crate::env::contract::Task;
use crate::env::protocol::{
    AdmissibleAnswer, CreateRequest, Created, EnvList, EnvListing, ExpertAnswer, ListedSession,
    RestoreAnswer, RestoreRequest, SessionList, SessionView, SnapshotAnswer, StepAnswer,
    StepRequest,
};
use crate::env::saved::SavedState;
use crate::env::session::Session;
use crate::util::rng::fresh_token;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One live session.
pub struct Live {
    pub session: Session,
    pub env: String,
    pub task: Task,
    pub observation: String,
    pub steps: u64,
    pub last_used: Instant,
}

/// The live sessions, by id.
pub struct Table {
    live: Mutex<HashMap<String, Arc<Mutex<Live>>>>,
    max: usize,
}

impl Table {
    pub fn new(max: usize) -> Table {
        Table {
            live: Mutex::new(HashMap::new()),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<Live>>>> {
        // A panic while holding the map cannot leave it half-changed.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, id: &str) -> Option<Arc<Mutex<Live>>> {
        self.lock().get(id).cloned()
    }

    /// Add a session, unless the table is full.
    fn insert(&self, live: Live) -> Option<String> {
        let mut map = self.lock();
        if map.len() >= self.max {
            return None;
        }
        let id = fresh_token();
        map.insert(id.clone(), Arc::new(Mutex::new(live)));
        Some(id)
    }

    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/envs", get(envs))
        .route("/sessions", post(create).get(list))
        .route("/sessions/{id}", get(show).delete(close))
        .route("/sessions/{id}/step", post(step))
        .route("/sessions/{id}/expert", get(expert))
        .route("/sessions/{id}/admissible", get(admissible))
        .route("/sessions/{id}/snapshot", post(snapshot))
        .route("/sessions/{id}/restore", post(restore))
}

async fn envs(State(s): State<Arc<AppState>>) -> Response {
    let envs = s
        .envs
        .values()
        .map(|e| EnvListing {
            name: e.info.name.clone(),
            version: e.info.version.clone(),
            sha256: Some(e.sha256.clone()),
            splits: e.info.splits.clone(),
            max_steps: e.info.max_steps,
            action_hint: e.info.action_hint.clone(),
            // The interpreter its programs run in: builds differ.
            sandbox_sha256: e.sandbox_sha256().map(str::to_string),
        })
        .collect();
    axum::Json(EnvList { envs }).into_response()
}

/// Run `f` on a blocking thread (wasm calls are synchronous).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the call failed: {e}"),
        ))
    })
}

fn unprocessable(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{what}: {e}"))
}

fn decode_state(text: &str) -> Result<SavedState, ApiError> {
    let bad = |why: String| ApiError::new(StatusCode::BAD_REQUEST, why);
    let bytes = BASE64
        .decode(text.trim())
        .map_err(|e| bad(format!("not a leafe snapshot: {e}")))?;
    SavedState::decode(&bytes).map_err(bad)
}

async fn create(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: CreateRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    match open(&s, req).await {
        Ok(v) => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Open a session (fresh, or from a snapshot); returns its description
/// with `id` and the first observation.
pub async fn open(s: &Arc<AppState>, req: CreateRequest) -> Result<Created, ApiError> {
    let saved = req.state.as_deref().map(decode_state).transpose()?;
    let Some(env_name) = saved.as_ref().map(|x| x.env.clone()).or(req.env.clone()) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "name an environment (\"env\") or give a snapshot (\"state\")",
        ));
    };
    let Some(component) = s.envs.get(&env_name).cloned() else {
        let names: Vec<&String> = s.envs.keys().collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no environment '{env_name}' here (this server has: {names:?})"),
        ));
    };
    if let Some(saved) = &saved {
        saved
            .check_component(&env_name, &component.sha256)
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
    }
    if s.sessions.len() >= s.config.max_sessions {
        return Err(too_many(s));
    }
    let made = blocking(move || {
        let (task, session) = match &saved {
            Some(x) => (x.task(), Session::new(&component, x.seed)),
            None => {
                // Sorted by name, as the map keeps them.
                let options: Vec<(String, String)> = req.options.into_iter().collect();
                (
                    Task::new(&req.split, req.task, req.seed, &options),
                    Session::new(&component, req.seed),
                )
            }
        };
        let mut session = session.map_err(|e| unprocessable("cannot start the environment", e))?;
        let observation = match &saved {
            Some(x) => {
                let bytes = x
                    .state()
                    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
                session
                    .restore(&bytes)
                    .map_err(|e| unprocessable("the environment refused the snapshot", e))?;
                x.observation.clone()
            }
            None => session
                .reset(&task)
                .map_err(|e| unprocessable("reset failed", e))?,
        };
        Ok(Live {
            session,
            env: component.info.name.clone(),
            task,
            observation,
            steps: 0,
            last_used: Instant::now(),
        })
    })
    .await;
    let live = made?;
    let (observation, env, sha) = (
        live.observation.clone(),
        live.env.clone(),
        live.session.component().sha256.clone(),
    );
    match s.sessions.insert(live) {
        Some(id) => Ok(Created {
            id,
            observation,
            env: Some(env),
            component_sha256: Some(sha),
            admissible: None,
        }),
        None => Err(too_many(s)),
    }
}

fn too_many(s: &AppState) -> ApiError {
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: format!(
            "too many sessions: {} are open (--max-sessions); close one or retry",
            s.config.max_sessions
        ),
        retry_after: true,
    }
}

fn find(s: &AppState, id: &str) -> Result<Arc<Mutex<Live>>, ApiError> {
    s.sessions.get(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no session '{id}' (closed, expired, or lost with a restart)"),
        )
    })
}

/// Run `f` on the session `id`, on a blocking thread.
async fn with_session<T: Send + 'static>(
    s: &AppState,
    id: &str,
    f: impl FnOnce(&mut Live) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let live = find(s, id)?;
    blocking(move || {
        let mut live = live.lock().unwrap_or_else(|e| e.into_inner());
        live.last_used = Instant::now();
        f(&mut live)
    })
    .await
}

fn reply<T: Serialize>(r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn step(State(s): State<Arc<AppState>>, Path(id): Path<String>, body: Bytes) -> Response {
    let req: StepRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    reply(step_session(&s, &id, req.action).await)
}

/// Apply `action` in session `id`.
pub async fn step_session(s: &AppState, id: &str, action: String) -> Result<StepAnswer, ApiError> {
    with_session(s, id, move |live| {
        let r = live
            .session
            .step(&action)
            .map_err(|e| unprocessable("step failed", e))?;
        live.steps += 1;
        live.observation = r.observation.clone();
        Ok(StepAnswer {
            observation: r.observation,
            reward: r.reward,
            terminated: r.terminated,
            truncated: r.truncated,
            info: r.info,
        })
    })
    .await
}

async fn expert(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    reply(
        with_session(&s, &id, |live| {
            let action = live
                .session
                .expert_action()
                .map_err(|e| unprocessable("expert_action failed", e))?;
            Ok(ExpertAnswer { action })
        })
        .await,
    )
}

async fn admissible(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    reply(
        with_session(&s, &id, |live| {
            let actions = live
                .session
                .admissible_actions()
                .map_err(|e| unprocessable("admissible_actions failed", e))?;
            Ok(AdmissibleAnswer { actions })
        })
        .await,
    )
}

async fn show(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let name = id.clone();
    reply(
        with_session(&s, &id, move |live| {
            Ok(SessionView {
                id: name,
                env: live.env.clone(),
                split: live.task.split.clone(),
                task: live.task.index,
                seed: live.task.seed,
                steps: live.steps,
                observation: live.observation.clone(),
            })
        })
        .await,
    )
}

async fn snapshot(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    reply(
        with_session(&s, &id, |live| {
            let bytes = live
                .session
                .snapshot()
                .map_err(|e| unprocessable("snapshot failed", e))?;
            let saved = SavedState::new(
                &live.env,
                &live.session.component().sha256,
                &live.task,
                &live.observation,
                &bytes,
            );
            Ok(SnapshotAnswer {
                state: BASE64.encode(saved.encode()),
            })
        })
        .await,
    )
}

async fn restore(State(s): State<Arc<AppState>>, Path(id): Path<String>, body: Bytes) -> Response {
    let req: RestoreRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let saved = match decode_state(&req.state) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    reply(
        with_session(&s, &id, move |live| {
            saved
                .check_component(&live.env, &live.session.component().sha256)
                .map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
            let bytes = saved
                .state()
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
            live.session
                .restore(&bytes)
                .map_err(|e| unprocessable("the environment refused the snapshot", e))?;
            live.task = saved.task();
            live.observation = saved.observation;
            Ok(RestoreAnswer {
                observation: live.observation.clone(),
            })
        })
        .await,
    )
}

async fn list(State(s): State<Arc<AppState>>) -> Response {
    let ids: Vec<(String, Arc<Mutex<Live>>)> = s
        .sessions
        .lock()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = Vec::new();
    for (id, live) in ids {
        // A session busy in a call is listed without waiting for it.
        out.push(match live.try_lock() {
            Ok(live) => ListedSession {
                id,
                env: Some(live.env.clone()),
                task: Some(live.task.index),
                steps: Some(live.steps),
                idle_s: Some(live.last_used.elapsed().as_secs()),
                busy: None,
            },
            Err(_) => ListedSession {
                id,
                env: None,
                task: None,
                steps: None,
                idle_s: None,
                busy: Some(true),
            },
        });
    }
    axum::Json(SessionList {
        sessions: out,
        max_sessions: s.config.max_sessions,
    })
    .into_response()
}

async fn close(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if s.sessions.remove(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no session '{id}'"))
    }
}

/// Close sessions idle longer than the server allows, forever.
pub async fn reap_idle(s: Arc<AppState>) {
    let idle = std::time::Duration::from_secs(s.config.session_idle_secs);
    let every = (idle / 4).clamp(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(5),
    );
    loop {
        tokio::time::sleep(every).await;
        s.sessions.lock().retain(|_, live| match live.try_lock() {
            Ok(live) => live.last_used.elapsed() < idle,
            Err(_) => true, // in a call: in use
        });
    }
}
