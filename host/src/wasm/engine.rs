//! The one wasmtime engine of the process: component model, fuel and epoch
//! interruption, deterministic floating point, the pooling allocator with
//! copy-on-write memory images; and the thread that advances its epoch.

use super::limits::{EPOCH_TICK, Limits};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Engine options.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub limits: Limits,
    /// Pre-reserved instance slots with copy-on-write memory images.
    pub pooling: bool,
    /// How many component instances the pool holds at once (each may hold
    /// a few core instances, memories and tables).
    pub pool_instances: u32,
    /// Where compiled components are kept; `None` compiles every time.
    pub cache: Option<std::path::PathBuf>,
    /// Caps on what an environment may ask for in one nested sandbox run
    /// (`leafe:env/sandbox`): the user's `--fuel` and `--wall-ms`; `None`
    /// keeps the sandbox's own maxima.
    pub nested_fuel: Option<u64>,
    pub nested_wall_ms: Option<u64>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            limits: Limits::default(),
            pooling: true,
            pool_instances: 256,
            cache: super::cache::default_dir(),
            nested_fuel: None,
            nested_wall_ms: None,
        }
    }
}

/// A wasmtime engine configured for leafe's guests.
pub fn new_engine(options: &EngineOptions) -> Result<Engine> {
    options.limits.validate()?;
    engine_from(&config(options))
}

/// An engine from a configuration (see [`config`]).
pub fn engine_from(config: &Config) -> Result<Engine> {
    Engine::new(config)
        .map_err(anyhow::Error::from)
        .context("cannot create the wasmtime engine")
}

/// The configuration of [`new_engine`]: what determinism and the limits
/// need (the compute benchmark switches parts off to price them).
pub fn config(options: &EngineOptions) -> Config {
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
        // A component holds several core instances (the interpreter about a
        // dozen), so small pools keep room for one of those.
        let n = options.pool_instances.max(1);
        pool.total_component_instances(n)
            .total_core_instances((4 * n).max(32))
            .total_memories((2 * n).max(8))
            .total_tables((2 * n).max(8))
            .max_memory_size(options.limits.memory_bytes);
        if n > 2 {
            // Slots that are reused are reset with memset rather than
            // madvise: no page faults on reuse, and no contention between
            // threads on the process's memory map (1 -> 2 workers went from
            // 0.8x to 2x the programs per second). A one-shot pool skips it:
            // the reset at exit would cost more than it saves.
            pool.linear_memory_keep_resident(32 << 20)
                .table_keep_resident(1 << 20);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// The thread that advances an engine's epoch every [`EPOCH_TICK`]; stops
/// when dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
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
        Ok(EpochTicker {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
