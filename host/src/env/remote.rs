//! An environment that runs outside wasm, behind HTTP: `--env remote:URL`.
//!
//! The protocol is the part of `leafe-host serve`'s session API that the
//! environment contract needs ([`super::protocol`]: `/envs`, open, step,
//! admissible, expert, close), so a leafe server is itself a remote
//! environment, and `envs-remote/scienceworld/server.py` speaks the same. A
//! reset or step answer may carry the valid actions (`admissible` in the
//! reset answer, `info.admissible` in a step's), saving the extra call.
//!
//! Such an environment has no snapshots: going back is a fresh session (a
//! reset) and a replay of the path's actions. The explorer does that itself
//! (it counts and checks every replayed step); a snapshot taken here, for
//! `play` or a replay check, is the task and the actions since the reset,
//! and restoring it replays them and checks the observation it ends on.

use super::contract::{EnvError, EnvInfo, StepResult, Task};
use super::instance::EnvInstance;
use super::protocol::{
    AdmissibleAnswer, CreateRequest, Created, EnvList, ExpertAnswer, StepAnswer, StepRequest,
    decode,
};
use super::session::SessionError;
use crate::util::hash::sha256_hex;
use crate::util::http::retry_after;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The prefix of a remote `--env`.
pub const SCHEME: &str = "remote:";

/// How long one request may take (a ScienceWorld reset starts a JVM).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// How many times a busy server (429, 503) is asked again.
const BUSY_RETRIES: u32 = 6;

/// Answers larger than this are refused (a runaway server).
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// A remote environment: the server, and the environment there.
pub struct RemoteEnv {
    /// The server's base URL (no trailing slash).
    pub url: String,
    /// The environment's name at the server.
    pub name: String,
    pub info: EnvInfo,
    /// What the server reports as the environment's identity (or, where it
    /// reports none, the sha256 of its description).
    pub sha256: String,
    agent: ureq::Agent,
}

impl RemoteEnv {
    /// Connect to `spec`: `remote:URL`, or `remote:URL#NAME` where the
    /// server has several environments.
    pub fn connect(spec: &str) -> anyhow::Result<RemoteEnv> {
        let rest = spec.strip_prefix(SCHEME).unwrap_or(spec);
        let (url, wanted) = match rest.split_once('#') {
            Some((url, name)) => (url, Some(name)),
            None => (rest, None),
        };
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!(
                "--env {spec}: a remote environment is remote:http://HOST:PORT (optionally \
                 #NAME for one of several environments there)"
            );
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let client = Client {
            agent: &agent,
            url: &url,
        };
        let answer = client.call("GET", "/envs", None)?;
        let shown = leafe_judge::clip(&answer.to_string(), 200).to_string();
        let EnvList { envs: listed } = decode(answer).map_err(|e| {
            anyhow::anyhow!(
                "{url}/envs answered {shown}: expected {{\"envs\": [...]}}, a list of environments ({e})"
            )
        })?;
        let names: Vec<&str> = listed.iter().map(|e| e.name.as_str()).collect();
        let found = match wanted {
            Some(name) => listed.iter().find(|e| e.name == name),
            None if listed.len() == 1 => listed.first(),
            None => anyhow::bail!(
                "{url} serves {} environments ({}): name one, remote:{url}#NAME",
                listed.len(),
                names.join(", ")
            ),
        };
        let Some(e) = found else {
            anyhow::bail!(
                "{url} has no environment '{}' (it has: {})",
                wanted.unwrap_or_default(),
                names.join(", ")
            );
        };
        let info = EnvInfo {
            name: e.name.clone(),
            version: e.version.clone(),
            splits: e.splits.clone(),
            max_steps: e.max_steps,
            action_hint: e.action_hint.clone(),
        };
        let sha256 = match &e.sha256 {
            Some(s) if !s.is_empty() => s.clone(),
            _ => sha256_hex(&serde_json::to_vec(&info)?),
        };
        Ok(RemoteEnv {
            name: e.name.clone(),
            url,
            info,
            sha256,
            agent,
        })
    }

    /// A new session handle; the server-side session opens at `reset`.
    pub fn session(self: &Arc<Self>) -> RemoteSession {
        RemoteSession {
            env: self.clone(),
            live: None,
            dead: false,
        }
    }

    fn client(&self) -> Client<'_> {
        Client {
            agent: &self.agent,
            url: &self.url,
        }
    }
}

/// Why a request failed.
enum Failure {
    /// No answer: the server is down, or the network is.
    Unreachable(String),
    /// An answer with an error status, and its message.
    Status(u16, String),
}

struct Client<'a> {
    agent: &'a ureq::Agent,
    url: &'a str,
}

impl Client<'_> {
    /// One request; its JSON answer (`null` for an empty one). A busy
    /// server (429, 503) is asked again after its `Retry-After`, or a
    /// backoff from 0.25 s, up to [`BUSY_RETRIES`] times.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let mut attempt = 0;
        loop {
            match self.attempt(method, path, body) {
                Err((Failure::Status(429 | 503, _), wait)) if attempt < BUSY_RETRIES => {
                    let backoff = Duration::from_millis(250) * 2u32.pow(attempt);
                    std::thread::sleep(wait.unwrap_or(backoff).min(Duration::from_secs(10)));
                    attempt += 1;
                }
                result => return result.map_err(|(failure, _)| failure),
            }
        }
    }

    /// One exchange: the answer, or the failure and any `Retry-After`.
    fn attempt(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, (Failure, Option<Duration>)> {
        let url = format!("{}{path}", self.url);
        let sent = match (method, body) {
            ("POST", Some(b)) => self.agent.post(&url).send_json(b),
            ("POST", None) => self.agent.post(&url).send_empty(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            _ => self.agent.get(&url).call(),
        };
        let unreachable = |why: String| (Failure::Unreachable(why), None);
        let mut answer = sent.map_err(|e| unreachable(format!("{method} {url}: {e}")))?;
        let status = answer.status().as_u16();
        let wait = retry_after(&answer);
        let text = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| unreachable(format!("{method} {url}: reading the answer: {e}")))?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    // `{"message"}`, `{"error": "..."}` or `{"error": {"message"}}`.
                    let m = v.get("message").or_else(|| v.get("error"))?;
                    let m = m.get("message").unwrap_or(m);
                    Some(m.as_str().map_or(m.to_string(), str::to_string))
                })
                .unwrap_or_else(|| leafe_judge::clip(text.trim(), 300).to_string());
            return Err((Failure::Status(status, message), wait));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| {
            let why = format!("{method} {url}: the answer is not JSON ({e})");
            (Failure::Status(status, why), None)
        })
    }

    /// [`Client::request`] for setup, where every failure is an error.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        self.request(method, path, body).map_err(|f| match f {
            Failure::Unreachable(why) => {
                anyhow::anyhow!("cannot reach the environment server ({why}); is it running?")
            }
            Failure::Status(status, message) => {
                anyhow::anyhow!("{}{path} answered {status}: {message}", self.url)
            }
        })
    }
}

/// The episode a session is in: what its snapshot holds.
#[derive(Serialize, Deserialize)]
struct Path {
    format: String,
    task: Task,
    actions: Vec<String>,
    /// The observation the path ends on.
    obs_sha256: String,
}

const PATH_FORMAT: &str = "leafe-remote-path/1";

struct Live {
    id: String,
    path: Path,
    /// Valid actions the last answer carried.
    admissible: Option<Vec<String>>,
}

/// One live session on the server.
pub struct RemoteSession {
    env: Arc<RemoteEnv>,
    live: Option<Live>,
    /// The server stopped answering: nothing more is asked of it.
    dead: bool,
}

impl RemoteSession {
    /// The error for a failed request, as the explorer must see it.
    fn failed(&mut self, what: &str, f: Failure) -> SessionError {
        match f {
            Failure::Unreachable(why) => {
                self.dead = true;
                SessionError::Remote(format!("{what}: {why}"))
            }
            Failure::Status(404, message) if self.live.is_some() && what != "reset" => {
                self.dead = true;
                SessionError::Remote(format!(
                    "{what}: the server lost the session ({message}); was it restarted?"
                ))
            }
            Failure::Status(status, message) if status >= 500 => {
                SessionError::Env(EnvError::Internal(format!("{what}: {status} {message}")))
            }
            Failure::Status(_, message) if what == "reset" => {
                SessionError::Env(EnvError::BadTask(message))
            }
            Failure::Status(_, message) => SessionError::Env(EnvError::BadState(message)),
        }
    }

    /// Refuse to ask a server that stopped answering earlier.
    fn alive(&self) -> Result<(), SessionError> {
        if self.dead {
            return Err(SessionError::Remote(format!(
                "{} stopped answering earlier",
                self.env.url
            )));
        }
        Ok(())
    }

    fn live(&self) -> Result<&Live, SessionError> {
        self.alive()?;
        self.live
            .as_ref()
            .ok_or(SessionError::Env(EnvError::NotStarted))
    }

    fn close(&mut self) {
        if let Some(live) = self.live.take()
            && !self.dead
        {
            // Best effort: a server that forgot the session has nothing to close.
            let _ = self
                .env
                .client()
                .request("DELETE", &format!("/sessions/{}", live.id), None);
        }
    }

    /// The answer from `path` as the protocol's `T`, or an environment
    /// error that names the server, the route and what does not fit.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        answer: Value,
    ) -> Result<T, SessionError> {
        decode(answer).map_err(|why| {
            SessionError::Env(EnvError::Internal(format!(
                "{}{path} answered outside the session protocol: {why}",
                self.env.url
            )))
        })
    }

    fn strings(v: &Value) -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for RemoteSession {
    fn drop(&mut self) {
        self.close();
    }
}

impl EnvInstance for RemoteSession {
    fn reset(&mut self, task: &Task) -> Result<String, SessionError> {
        self.alive()?;
        self.close();
        let request = CreateRequest {
            env: Some(self.env.name.clone()),
            split: task.split.clone(),
            task: task.index,
            seed: task.seed,
            options: task.options.iter().cloned().collect(),
            state: None,
        };
        let body = serde_json::to_value(&request).expect("a request serialises");
        let answer = self
            .env
            .client()
            .request("POST", "/sessions", Some(&body))
            .map_err(|f| self.failed("reset", f))?;
        let created: Created = self.decode("/sessions", answer)?;
        self.live = Some(Live {
            id: created.id,
            path: Path {
                format: PATH_FORMAT.into(),
                task: task.clone(),
                actions: Vec::new(),
                obs_sha256: sha256_hex(created.observation.as_bytes()),
            },
            admissible: created.admissible,
        });
        Ok(created.observation)
    }

    fn step(&mut self, action: &str) -> Result<StepResult, SessionError> {
        let id = self.live()?.id.clone();
        let body = StepRequest {
            action: action.to_string(),
        };
        let answer = self
            .env
            .client()
            .request(
                "POST",
                &format!("/sessions/{id}/step"),
                Some(&serde_json::to_value(&body).expect("a request serialises")),
            )
            .map_err(|f| self.failed("step", f))?;
        let StepAnswer {
            observation,
            reward,
            terminated,
            truncated,
            mut info,
        } = self.decode(&format!("/sessions/{id}/step"), answer)?;
        let admissible = info.remove("admissible").as_ref().and_then(Self::strings);
        let result = StepResult {
            observation,
            reward,
            terminated,
            truncated,
            info,
        };
        let live = self.live.as_mut().expect("checked above");
        live.path.actions.push(action.to_string());
        live.path.obs_sha256 = sha256_hex(result.observation.as_bytes());
        live.admissible = admissible;
        Ok(result)
    }

    fn admissible_actions(&mut self) -> Result<Option<Vec<String>>, SessionError> {
        let live = self.live()?;
        if let Some(actions) = &live.admissible {
            return Ok(Some(actions.clone()));
        }
        let path = format!("/sessions/{}/admissible", live.id);
        let answer = self
            .env
            .client()
            .request("GET", &path, None)
            .map_err(|f| self.failed("admissible actions", f))?;
        let AdmissibleAnswer { actions } = self.decode(&path, answer)?;
        Ok(actions)
    }

    fn expert_action(&mut self) -> Result<Option<String>, SessionError> {
        let path = format!("/sessions/{}/expert", self.live()?.id);
        let answer = self
            .env
            .client()
            .request("GET", &path, None)
            .map_err(|f| self.failed("expert action", f))?;
        let ExpertAnswer { action } = self.decode(&path, answer)?;
        Ok(action)
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, SessionError> {
        Ok(serde_json::to_vec(&self.live()?.path).expect("a path serialises"))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SessionError> {
        let path: Path = serde_json::from_slice(state)
            .ok()
            .filter(|p: &Path| p.format == PATH_FORMAT)
            .ok_or_else(|| {
                SessionError::Env(EnvError::BadState(
                    "not a snapshot of a remote environment".into(),
                ))
            })?;
        let mut last = self.reset(&path.task)?;
        for action in &path.actions {
            last = self.step(action)?.observation;
        }
        if sha256_hex(last.as_bytes()) != path.obs_sha256 {
            return Err(SessionError::Env(EnvError::BadState(
                "replaying the snapshot's actions ended on another observation: the remote \
                 environment is not deterministic"
                    .into(),
            )));
        }
        Ok(())
    }

    fn is_dead(&self) -> bool {
        self.dead
    }

    fn restores_by_replay(&self) -> bool {
        true
    }
}
