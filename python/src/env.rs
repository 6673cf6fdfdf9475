//! `EnvSession`: one environment component's live instance, as the Python
//! `leafe.LeafeEnv` drives it. Each reset starts a fresh instance seeded
//! with the episode's seed, so an episode depends only on its task, seed
//! and actions, never on what the object did before.

use crate::{EnvError, runtime};
use leafe_host::{EnvComponent, Session, SessionError, Task};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a snapshot starts with: a name and a format version, then the
/// component's sha256 (hex) and the instance seed, then the guest's state.
const SNAPSHOT_MAGIC: &[u8] = b"leafe-snapshot\x00\x01";
const SHA_LEN: usize = 64;

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
    static LOADED: Mutex<Option<HashMap<String, Arc<EnvComponent>>>> = Mutex::new(None);
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let loaded = loaded.get_or_insert_with(HashMap::new);
    if let Some(c) = loaded.get(spec) {
        return Ok(c.clone());
    }
    let runtime = runtime()?;
    let c = leafe_host::env::load::load(&runtime, spec).map_err(|e| format!("{e:#}"))?;
    loaded.insert(spec.to_string(), c.clone());
    Ok(c)
}

struct Live {
    session: Session,
    seed: u64,
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
    /// `seed`; the first observation.
    fn reset(
        &self,
        py: Python<'_>,
        split: &str,
        index: u32,
        seed: u64,
        options: Vec<(String, String)>,
    ) -> PyResult<String> {
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
            *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(Live { session, seed });
            Ok(observation)
        })
    }

    /// Apply `action`: (observation, reward, terminated, truncated, info as
    /// JSON).
    fn step(&self, py: Python<'_>, action: &str) -> PyResult<(String, f64, bool, bool, String)> {
        let r = self.with_live(py, |live| live.session.step(action))?;
        let info = serde_json::Value::Object(r.info).to_string();
        Ok((r.observation, r.reward, r.terminated, r.truncated, info))
    }

    /// The valid actions now, if the environment lists them.
    fn admissible_actions(&self, py: Python<'_>) -> PyResult<Option<Vec<String>>> {
        self.with_live(py, |live| live.session.admissible_actions())
    }

    /// The expert's next action, if the environment has an expert.
    fn expert_action(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.with_live(py, |live| live.session.expert_action())
    }

    /// The episode's state: restoring it continues from here exactly.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let (state, seed) = self.with_live(py, |live| Ok((live.session.snapshot()?, live.seed)))?;
        let mut bytes = Vec::with_capacity(SNAPSHOT_MAGIC.len() + SHA_LEN + 8 + state.len());
        bytes.extend_from_slice(SNAPSHOT_MAGIC);
        bytes.extend_from_slice(self.component.sha256.as_bytes());
        bytes.extend_from_slice(&seed.to_le_bytes());
        bytes.extend_from_slice(&state);
        Ok(PyBytes::new(py, &bytes))
    }

    /// Continue from a snapshot of this environment, in a fresh instance.
    /// On any error the current episode is kept as it was.
    fn restore(&self, py: Python<'_>, snapshot: &[u8]) -> PyResult<()> {
        let header = SNAPSHOT_MAGIC.len() + SHA_LEN + 8;
        if snapshot.len() < header || !snapshot.starts_with(SNAPSHOT_MAGIC) {
            return Err(env_error(
                "not a leafe snapshot (restore() takes the bytes snapshot() returned)",
            ));
        }
        let sha = &snapshot[SNAPSHOT_MAGIC.len()..SNAPSHOT_MAGIC.len() + SHA_LEN];
        if sha != self.component.sha256.as_bytes() {
            return Err(env_error(format!(
                "the snapshot is of another environment (component sha256 {}, this one is {})",
                String::from_utf8_lossy(sha),
                self.component.sha256
            )));
        }
        let seed_bytes: [u8; 8] = snapshot[header - 8..header].try_into().expect("8 bytes");
        let seed = u64::from_le_bytes(seed_bytes);
        let state = &snapshot[header..];
        py.detach(|| {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            match live.as_mut() {
                Some(l) if l.seed == seed => l.session.restore(state).map_err(env_error),
                _ => {
                    let mut session = Session::new(&self.component, seed).map_err(env_error)?;
                    session.restore(state).map_err(env_error)?;
                    *live = Some(Live { session, seed });
                    Ok(())
                }
            }
        })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<EnvSession>()
}
