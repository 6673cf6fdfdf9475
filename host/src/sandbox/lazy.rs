//! The Python sandbox of an engine, loaded once, when first needed: most
//! runs never execute Python and should not pay for its compilation.

use super::PythonSandbox;
use crate::wasm::cache::CompileCache;
use std::sync::{Arc, OnceLock};
use wasmtime::Engine;

pub struct LazyPython {
    engine: Engine,
    cache: Option<CompileCache>,
    max_memory: usize,
    cell: OnceLock<Result<Arc<PythonSandbox>, String>>,
}

impl LazyPython {
    pub fn new(engine: Engine, cache: Option<CompileCache>, max_memory: usize) -> LazyPython {
        LazyPython {
            engine,
            cache,
            max_memory,
            cell: OnceLock::new(),
        }
    }

    /// The sandbox, or why it could not be loaded (the same answer every
    /// time: a failed load is not retried).
    pub fn get(&self) -> anyhow::Result<Arc<PythonSandbox>> {
        self.cell
            .get_or_init(|| {
                PythonSandbox::load(&self.engine, self.cache.as_ref(), self.max_memory)
                    .map(Arc::new)
                    .map_err(|e| format!("{e:#}"))
            })
            .clone()
            .map_err(anyhow::Error::msg)
    }
}
