//! The one wasmtime engine of the process: component model, fuel and epoch
//! interruption, deterministic floating point, the pooling allocator with
//! copy-on-write memory images, and the compiled-component cache.

use crate::cache::CompileCache;
use crate::python::PythonSandbox;
use crate::wasi::{self, GuestState};
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of wall-clock limits.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits on every call into a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel per call (about one unit per instruction).
    pub fuel_per_call: u64,
    /// Wall-clock limit per call, in milliseconds.
    pub wall_ms_per_call: u64,
    /// Linear memory per instance, in bytes.
    pub memory_bytes: usize,
    /// Captured stdout, and separately stderr, per instance, in bytes.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_per_call: 20_000_000_000,
            wall_ms_per_call: 20_000,
            memory_bytes: 256 << 20,
            output_bytes: 1 << 20,
        }
    }
}

/// Engine options.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub limits: Limits,
    /// Pre-reserved instance slots with copy-on-write memory images.
    pub pooling: bool,
    /// Where compiled components are kept; `None` compiles every time.
    pub cache: Option<std::path::PathBuf>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            limits: Limits::default(),
            pooling: true,
            cache: crate::cache::default_dir(),
        }
    }
}

/// The engine, the linker with WASI, and the epoch ticker.
pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<GuestState>,
    pub limits: Limits,
    pub cache: Option<CompileCache>,
    python: Arc<LazyPython>,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Runtime {
    pub fn new(options: EngineOptions) -> Result<Arc<Runtime>> {
        let limits = options.limits;
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            // Bit-identical floats on every CPU, for deterministic replay.
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .max_wasm_stack(1 << 20)
            .memory_init_cow(true);
        if options.pooling {
            let mut pool = PoolingAllocationConfig::new();
            pool.total_component_instances(256)
                .total_core_instances(1024)
                .total_memories(512)
                .total_tables(512)
                .max_memory_size(limits.memory_bytes);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot create the wasmtime engine")?;
        let cache = options.cache.map(CompileCache::new);
        let python = Arc::new(LazyPython {
            engine: engine.clone(),
            cache: cache.clone(),
            max_memory: limits.memory_bytes,
            cell: OnceLock::new(),
        });
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        crate::sandbox_import::add_to_linker(&mut linker, python.clone(), limits)
            .map_err(anyhow::Error::from)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("leafe-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("cannot start the epoch thread")?
        };
        Ok(Arc::new(Runtime {
            engine,
            linker,
            limits,
            cache,
            python,
            ticker: Some((stop, ticker)),
        }))
    }

    /// Epoch ticks that make up the per-call wall-clock limit.
    pub fn deadline_ticks(&self) -> u64 {
        deadline_ticks(self.limits.wall_ms_per_call)
    }

    /// The Python sandbox, compiled (or loaded from the cache) on first use.
    pub fn python(&self) -> Result<Arc<PythonSandbox>> {
        self.python.get().map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Epoch ticks that make up a wall-clock limit of `wall_ms` (at least one
/// full tick: the first one may come at once).
pub fn deadline_ticks(wall_ms: u64) -> u64 {
    wall_ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1) + 1
}

/// The Python sandbox of an engine, loaded once, when first needed: most
/// runs never execute Python and should not pay for its compilation.
pub struct LazyPython {
    engine: Engine,
    cache: Option<CompileCache>,
    max_memory: usize,
    cell: OnceLock<std::result::Result<Arc<PythonSandbox>, String>>,
}

impl LazyPython {
    pub fn get(&self) -> std::result::Result<Arc<PythonSandbox>, String> {
        self.cell
            .get_or_init(|| {
                PythonSandbox::load(&self.engine, self.cache.as_ref(), self.max_memory)
                    .map(Arc::new)
                    .map_err(|e| format!("{e:#}"))
            })
            .clone()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}
