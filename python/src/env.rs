//! `EnvSession`: one environment component's live instance, as the Python
//! `leafe.LeafeEnv` drives it. Each reset starts a fresh instance seeded
//! with the episode's seed, so an episode depends only on its task, seed
//! and actions, never on what the object did before.

use crate::{EnvError, runtime};
use leafe_host::env::saved::SavedState;
use leafe_host::{EnvComponent, Session, SessionError, Task};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

fn env_error(e: impl std::fmt::Display) -> PyErr {
    let message = e.to_string();
    if message.contains("concurrent limit") {
        return EnvError::new_err(format!(
            "{message} (live environments and running programs together; \
             leafe.configure(max_instances=N), called first, raises it)"
        ));
    }
    EnvError::new_err(message)
}

/// A loaded component, once per spec and process: loading compiles (or
/// reads from the cache) and links, which later `make`s need not repeat.
fn component(spec: &str) -> Result<Arc<EnvComponent>, String> {
    static LOADED: LazyLock<Mutex<HashMap<String, Arc<EnvComponent>>>> =
        LazyLock::new(Mutex::default);
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = loaded.get(spec) {
        return Ok(c.clone());
    }
    if spec.starts_with(leafe_host::env::remote::SCHEME) {
        return Err(format!(
            "{spec}: leafe.make runs environment components in this process; an environment \
             server is driven over its own HTTP API (or by `leafe-host run --env {spec}`)"
        ));
    }
    let runtime = runtime()?;
    let c = leafe_host::env::load::load(&runtime, spec).map_err(|e| format!("{e:#}"))?;
    loaded.insert(spec.to_string(), c.clone());
    Ok(c)
}

/// The episode under way: its instance, task and last observation (what a
/// snapshot's envelope records).
struct Live {
    session: Session,
    task: Task,
    observation: String,
}

/// What `info` carries besides the environment's own: the valid actions,
/// and the expert's move when asked for.
type Extras = (Option<Vec<String>>, Option<String>);

/// The [`Extras`] of `session`'s state now, asked in the same call as the
/// step or reset they describe (one GIL release, one lock).
fn extras(session: &mut Session, expert: bool) -> Result<Extras, SessionError> {
    let admissible = session.admissible_actions()?;
    let expert = if expert {
        session.expert_action()?
    } else {
        None
    };
    Ok((admissible, expert))
}

#[pyclass(module = "leafe._leafe", frozen)]
pub struct EnvSession {
    component: Arc<EnvComponent>,
    live: Mutex<Option<Live>>,
}

impl EnvSession {
    /// Run `f` on the live instance without the GIL.
    fn with_live<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Live) -> Result<R, SessionError> + Send,
    ) -> PyResult<R> {
        py.detach(|| {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            let live = live.as_mut().ok_or_else(|| {
                env_error("no episode started: call reset() (or restore()) first")
            })?;
            f(live).map_err(env_error)
        })
    }
}

#[pymethods]
impl EnvSession {
    /// Load `spec`: a built-in name, `NAME:DATA` or a component's path.
    #[new]
    fn new(py: Python<'_>, spec: &str) -> PyResult<EnvSession> {
        let component = py.detach(|| component(spec)).map_err(EnvError::new_err)?;
        Ok(EnvSession {
            component,
            live: Mutex::new(None),
        })
    }

    /// The environment's description as JSON: name, version, splits,
    /// max_steps, action_hint.
    fn info_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.component.info).map_err(|e| EnvError::new_err(e.to_string()))
    }

    /// The component's sha256 (hex).
    #[getter]
    fn sha256(&self) -> &str {
        &self.component.sha256
    }

    /// Start task `index` of `split` in a fresh instance seeded with
    /// `seed`: the first observation and its [`Extras`] (the expert's move
    /// only if `expert`).
    fn reset(
        &self,
        py: Python<'_>,
        split: &str,
        index: u32,
        seed: u64,
        options: Vec<(String, String)>,
        expert: bool,
    ) -> PyResult<(String, Option<Vec<String>>, Option<String>)> {
        let len = self
            .component
            .info
            .split_len(split)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if index >= len {
            return Err(PyValueError::new_err(format!(
                "task {index} is out of range: split '{split}' of {} has {len} tasks (0..{len})",
                self.component.info.name
            )));
        }
        let task = Task::new(split, index, seed, &options);
        py.detach(|| {
            let mut session = Session::new(&self.component, seed).map_err(env_error)?;
            let observation = session.reset(&task).map_err(env_error)?;
            let (admissible, expert) = extras(&mut session, expert).map_err(env_error)?;
            *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(Live {
                session,
                task,
                observation: observation.clone(),
            });
            Ok((observation, admissible, expert))
        })
    }

    /// Apply `action`: (observation, reward, terminated, truncated, info as
    /// JSON, then the [`Extras`] of the new state).
    #[allow(clippy::type_complexity)]
    fn step(
        &self,
        py: Python<'_>,
        action: &str,
        expert: bool,
    ) -> PyResult<(
        String,
        f64,
        bool,
        bool,
        String,
        Option<Vec<String>>,
        Option<String>,
    )> {
        let (r, (admissible, expert)) = self.with_live(py, |live| {
            let r = live.session.step(action)?;
            live.observation.clone_from(&r.observation);
            Ok((r, extras(&mut live.session, expert)?))
        })?;
        let info = serde_json::Value::Object(r.info).to_string();
        Ok((
            r.observation,
            r.reward,
            r.terminated,
            r.truncated,
            info,
            admissible,
            expert,
        ))
    }

    /// The valid actions now, if the environment lists them.
    fn admissible_actions(&self, py: Python<'_>) -> PyResult<Option<Vec<String>>> {
        self.with_live(py, |live| live.session.admissible_actions())
    }

    /// The expert's next action, if the environment has an expert.
    fn expert_action(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.with_live(py, |live| live.session.expert_action())
    }

    /// The episode's state: restoring it continues from here exactly. The
    /// bytes are a `SavedState` (JSON), which `leafe-host serve` takes too.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let saved = self.with_live(py, |live| {
            let state = live.session.snapshot()?;
            Ok(SavedState::new(
                &self.component.info.name,
                &self.component.sha256,
                &live.task,
                &live.observation,
                &state,
            ))
        })?;
        Ok(PyBytes::new(py, &saved.encode()))
    }

    /// Continue from a snapshot of this environment, in a fresh instance;
    /// returns (split, task, seed, observation) of the episode restored. On
    /// any error the current episode is kept as it was.
    fn restore(&self, py: Python<'_>, snapshot: &[u8]) -> PyResult<(String, u32, u64, String)> {
        let saved = SavedState::decode(snapshot).map_err(|e| {
            env_error(format!(
                "{e} (restore() takes the bytes snapshot() returned)"
            ))
        })?;
        saved
            .check_component(&self.component.info.name, &self.component.sha256)
            .map_err(env_error)?;
        let state = saved.state().map_err(env_error)?;
        let task = saved.task();
        py.detach(|| {
            let mut session = Session::new(&self.component, task.seed).map_err(env_error)?;
            session.restore(&state).map_err(env_error)?;
            *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(Live {
                session,
                task: task.clone(),
                observation: saved.observation.clone(),
            });
            PyResult::Ok(())
        })?;
        Ok((task.split, task.index, task.seed, saved.observation))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<EnvSession>()
}
