//! Loading an environment component: read, check, compile (or take from
//! the cache), link, and describe it by calling its `info` export.

use super::bindings::EnvPre;
use super::component::{EnvComponent, Source, check_is_component, guest_setup, read_source};
use super::contract::EnvInfo;
use super::runtime::Runtime;
use super::session::Instance;
use crate::util::hash::sha256_hex;
use crate::wasm::cache::{self, Origin};
use anyhow::{Context, Result, anyhow};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl EnvComponent {
    /// Load, compile (or take from the cache), link and describe a component.
    pub fn load(runtime: &Arc<Runtime>, source: Source) -> Result<Arc<EnvComponent>> {
        let start = Instant::now();
        let bytes = read_source(&source)?;
        let what = source.spec();
        check_is_component(&bytes, &what)?;
        let setup = guest_setup(&source)?;
        // Built-ins come with their hash from the build: no 2 MB hashed per start.
        let sha256 = match &source {
            Source::Builtin(name) | Source::BuiltinWithData(name, _) => {
                leafe_builtins::find(name).map(|b| b.sha256.to_string())
            }
            Source::File(_) => None,
        }
        .unwrap_or_else(|| sha256_hex(&bytes));
        let (component, origin) = match &runtime.cache {
            Some(cache) => cache.load_or_compile(&runtime.engine, &bytes, &sha256),
            None => cache::compile(&runtime.engine, &bytes).map(|c| (c, Origin::Compiled)),
        }
        .with_context(|| format!("{what}: not a valid component"))?;
        let instance_pre = runtime.linker.instantiate_pre(&component).map_err(|e| {
            anyhow!("{what} needs imports the host does not provide (leafe gives WASI and leafe:env/sandbox): {e}")
        })?;
        let pre = EnvPre::new(instance_pre).map_err(|e| {
            anyhow!(
                "{what} does not export the environment contract leafe:env/environment@0.1.0: {e}"
            )
        })?;
        let uses_sandbox = component
            .component_type()
            .imports(&runtime.engine)
            .any(|(name, _)| name.starts_with("leafe:env/sandbox"));
        let mut env = EnvComponent {
            runtime: runtime.clone(),
            source,
            sha256,
            uses_sandbox,
            info: EnvInfo {
                name: String::new(),
                version: String::new(),
                splits: Vec::new(),
                max_steps: 0,
                action_hint: String::new(),
            },
            pre,
            setup,
            origin,
            load_time: Duration::ZERO,
        };
        env.info = env
            .call_info()
            .with_context(|| format!("{what}: its info() failed"))?;
        env.load_time = start.elapsed();
        Ok(Arc::new(env))
    }

    fn call_info(&self) -> Result<EnvInfo> {
        let mut instance = Instance::new(self, 0)?;
        Ok(instance.info(&self.runtime)?)
    }
}

/// Load a component by `--env` spec.
pub fn load(runtime: &Arc<Runtime>, spec: &str) -> Result<Arc<EnvComponent>> {
    EnvComponent::load(runtime, Source::parse(spec)?)
}
