//! The environment a job runs, whatever it is: a wasm component (the
//! built-ins, a `.wasm` file) or a remote server (`remote:URL`). Jobs ask it
//! for its description, its identity and fresh instances; only how going
//! back works differs ([`Environment::restores_by_replay`]).

use super::component::EnvComponent;
use super::contract::EnvInfo;
use super::instance::EnvInstance;
use super::load;
use super::remote::{self, RemoteEnv};
use super::runtime::Runtime;
use super::session::{Session, SessionError};
use anyhow::Result;
use std::sync::Arc;

/// A loaded environment.
#[derive(Clone)]
pub enum Environment {
    Component(Arc<EnvComponent>),
    Remote(Arc<RemoteEnv>),
}

impl Environment {
    /// Open the environment `spec` names: `remote:URL[#NAME]`, a built-in
    /// name or a component's path.
    pub fn open(runtime: &Arc<Runtime>, spec: &str) -> Result<Environment> {
        if spec.starts_with(remote::SCHEME) {
            return Ok(Environment::Remote(Arc::new(RemoteEnv::connect(spec)?)));
        }
        Ok(Environment::Component(load::load(runtime, spec)?))
    }

    pub fn info(&self) -> &EnvInfo {
        match self {
            Environment::Component(c) => &c.info,
            Environment::Remote(r) => &r.info,
        }
    }

    /// What identifies the environment's code: the component's sha256, or
    /// what the server reports.
    pub fn sha256(&self) -> &str {
        match self {
            Environment::Component(c) => &c.sha256,
            Environment::Remote(r) => &r.sha256,
        }
    }

    /// The sha256 of the Python sandbox component its programs run in
    /// ([`EnvComponent::sandbox_sha256`]); none for a remote environment.
    pub fn sandbox_sha256(&self) -> Option<&'static str> {
        match self {
            Environment::Component(c) => c.sandbox_sha256(),
            Environment::Remote(_) => None,
        }
    }

    /// Where the environment comes from, for messages.
    pub fn spec(&self) -> String {
        match self {
            Environment::Component(c) => c.source.spec(),
            Environment::Remote(r) => format!("{}{}#{}", remote::SCHEME, r.url, r.name),
        }
    }

    /// Whether going back to a state is a reset and a replay of its path
    /// (no snapshots), rather than a snapshot restore.
    pub fn restores_by_replay(&self) -> bool {
        matches!(self, Environment::Remote(_))
    }

    /// A fresh instance (`seed` drives a component's WASI randomness).
    pub fn instance(&self, seed: u64) -> Result<Box<dyn EnvInstance>, SessionError> {
        Ok(match self {
            Environment::Component(c) => Box::new(Session::new(c, seed)?),
            Environment::Remote(r) => Box::new(r.session()),
        })
    }
}

impl From<Arc<EnvComponent>> for Environment {
    fn from(c: Arc<EnvComponent>) -> Environment {
        Environment::Component(c)
    }
}
