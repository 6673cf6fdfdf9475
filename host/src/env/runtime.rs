//! The runtime every environment component runs in: the engine and its
//! epoch ticker, the linker with capability-free WASI and the
//! `leafe:env/sandbox` import, the compile cache and the Python sandbox
//! (loaded on first use).

use crate::sandbox::lazy::LazyPython;
use crate::sandbox::{PythonSandbox, RunLimits};
use crate::wasm::cache::CompileCache;
use crate::wasm::engine::{EngineOptions, EpochTicker, new_engine};
use crate::wasm::guest::{self, GuestState};
use crate::wasm::limits::Limits;
use anyhow::Result;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::Linker;

/// The engine, the linker and the epoch ticker.
pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<GuestState>,
    pub limits: Limits,
    pub cache: Option<CompileCache>,
    python: Arc<LazyPython>,
    _ticker: EpochTicker,
}

impl Runtime {
    pub fn new(options: EngineOptions) -> Result<Arc<Runtime>> {
        let limits = options.limits;
        let engine = new_engine(&options)?;
        let cache = options.cache.map(CompileCache::new);
        let python = Arc::new(LazyPython::new(
            engine.clone(),
            cache.clone(),
            limits.memory_bytes,
        ));
        let nested_max = RunLimits {
            fuel: options.nested_fuel.unwrap_or(RunLimits::NESTED_MAX.fuel),
            wall_ms: options
                .nested_wall_ms
                .unwrap_or(RunLimits::NESTED_MAX.wall_ms),
            memory_bytes: limits.memory_bytes.min(RunLimits::NESTED_MAX.memory_bytes),
            output_bytes: RunLimits::NESTED_MAX.output_bytes,
        };
        let mut linker = Linker::new(&engine);
        guest::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        super::sandbox_import::add_to_linker(&mut linker, python.clone(), nested_max)
            .map_err(anyhow::Error::from)?;
        let ticker = EpochTicker::start(&engine)?;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            limits,
            cache,
            python,
            _ticker: ticker,
        }))
    }

    /// The Python sandbox, compiled (or loaded from the cache) on first use.
    pub fn python(&self) -> Result<Arc<PythonSandbox>> {
        self.python.get()
    }
}
