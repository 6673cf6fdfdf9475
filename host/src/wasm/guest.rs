//! The store state of every guest: WASI with no capabilities (no network,
//! no environment variables, no files but an optional read-only data
//! directory; only the arguments and standard input the host chooses), a
//! virtual clock, seeded randomness and stdout/stderr captured into bounded
//! in-memory pipes.
//!
//! The virtual clock makes a guest deterministic and unable to hang the host
//! by sleeping: every reading advances it by one microsecond, and a sleep
//! (subscribing to the monotonic clock) is ready at once and moves the clock
//! forward by the time slept.

use crate::util::rng::SplitMix;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::{
    DirPerms, FilePerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView,
    WasiView,
};

/// 2001-09-09T01:46:40Z: an arbitrary, fixed start for the wall clock.
const WALL_CLOCK_START: Duration = Duration::from_secs(1_000_000_000);
const TICK_NANOS: u64 = 1_000;

/// Nanoseconds of virtual time, shared by the wall and monotonic clocks.
#[derive(Clone, Default)]
pub struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    fn read(&self) -> u64 {
        self.0.fetch_add(TICK_NANOS, Ordering::Relaxed) + TICK_NANOS
    }
    fn advance(&self, nanos: u64) {
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        TICK_NANOS
    }
    fn now(&self) -> u64 {
        self.read()
    }
}

impl HostWallClock for VirtualClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(TICK_NANOS)
    }
    fn now(&self) -> Duration {
        WALL_CLOCK_START + Duration::from_nanos(self.read())
    }
}

/// Everything a guest's store holds.
pub struct GuestState {
    ctx: WasiCtx,
    table: ResourceTable,
    clock: VirtualClock,
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
    pub limiter: MemoryLimiter,
    /// When the current call into the guest began (set by the caller).
    pub call: CallClock,
}

/// When the current call into a guest began, its wall-clock limit, and how
/// long the host spent on the guest's behalf since (nested sandbox runs):
/// the guest's own time is the difference, and the limit applies to that
/// alone.
#[derive(Clone, Debug)]
pub struct CallClock {
    pub started: std::time::Instant,
    pub limit: Duration,
    pub nested: Duration,
    /// The part of `nested` spent running nested programs (their shared
    /// budget's measure).
    pub nested_runs: Duration,
    /// Set by whoever asked for the call when it no longer wants the
    /// result (a server's client went away): the call stops at the next
    /// epoch tick.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl CallClock {
    pub fn start(limit: Duration) -> CallClock {
        CallClock {
            started: std::time::Instant::now(),
            limit,
            nested: Duration::ZERO,
            nested_runs: Duration::ZERO,
            cancel: None,
        }
    }

    /// Whether the caller gave up on this call.
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The guest's own time in this call so far.
    pub fn own_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.nested)
    }
}

/// Enforce each call's wall-clock limit ([`GuestState::call`]) against the
/// monotonic clock at every epoch tick. Counting ticks alone stretches a
/// limit when the machine is loaded and the ticker thread runs late; the
/// clock does not, so a limit fires at most about one late tick after it.
pub fn enforce_wall_clock(store: &mut wasmtime::Store<GuestState>) {
    store.epoch_deadline_callback(|ctx| {
        let call = &ctx.data().call;
        Ok(if call.own_time() < call.limit && !call.cancelled() {
            wasmtime::UpdateDeadline::Continue(1)
        } else {
            wasmtime::UpdateDeadline::Interrupt
        })
    });
    store.set_epoch_deadline(1);
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl GuestState {
    /// A fresh state: `seed` seeds WASI randomness, output is capped at
    /// `output_bytes` per stream, memory at `memory_bytes`.
    pub fn new(seed: u64, output_bytes: usize, memory_bytes: usize) -> Self {
        Self::build(seed, output_bytes, memory_bytes, &GuestSetup::default())
            .expect("a setup without a data directory cannot fail")
    }

    /// Like [`GuestState::new`], with arguments, standard input and a
    /// read-only data directory from `setup`.
    pub fn build(
        seed: u64,
        output_bytes: usize,
        memory_bytes: usize,
        setup: &GuestSetup,
    ) -> std::io::Result<Self> {
        let clock = VirtualClock::default();
        let stdout = MemoryOutputPipe::new(output_bytes);
        let stderr = MemoryOutputPipe::new(output_bytes);
        let mut builder = WasiCtxBuilder::new();
        builder
            .args(&setup.args)
            .stdin(MemoryInputPipe::new(setup.stdin.clone()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(clock.clone())
            .monotonic_clock(clock.clone())
            .secure_random(SplitMix::derive(seed, &[1]))
            .insecure_random(SplitMix::derive(seed, &[2]))
            .insecure_random_seed(u128::from(SplitMix::derive(seed, &[3]).next_u64()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(dir) = &setup.data_dir {
            builder
                .preopened_dir(dir, DATA_DIR, DirPerms::READ, FilePerms::READ)
                .map_err(|e| {
                    std::io::Error::other(format!("cannot open {}: {e}", dir.display()))
                })?;
        }
        let ctx = builder.build();
        Ok(GuestState {
            ctx,
            table: ResourceTable::new(),
            clock,
            stdout,
            stderr,
            limiter: MemoryLimiter {
                max_bytes: memory_bytes,
                denied: None,
            },
            call: CallClock::start(Duration::MAX),
        })
    }
}

/// Where a guest sees its read-only data directory.
pub const DATA_DIR: &str = "/data";

/// What a guest is started with besides the defaults: its arguments (how
/// one component serves several built-in environments), its standard input
/// (a sandboxed program's), and at most one read-only directory, at
/// [`DATA_DIR`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestSetup {
    pub args: Vec<String>,
    pub stdin: Vec<u8>,
    pub data_dir: Option<std::path::PathBuf>,
}

/// Caps linear memory growth and remembers a refusal, so that the trap that
/// follows is reported as a memory limit.
pub struct MemoryLimiter {
    max_bytes: usize,
    pub denied: Option<usize>,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.denied = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A sleep on the virtual clock: always ready.
struct VirtualSleep;

#[wasmtime_wasi::async_trait]
impl Pollable for VirtualSleep {
    async fn ready(&mut self) {}
}

struct VirtualClockView<'a> {
    clock: &'a VirtualClock,
    table: &'a mut ResourceTable,
}

struct HasVirtualClock;

impl HasData for HasVirtualClock {
    type Data<'a> = VirtualClockView<'a>;
}

impl monotonic_clock::Host for VirtualClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(self.clock.read())
    }
    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(TICK_NANOS)
    }
    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.clock.read();
        self.subscribe_duration(when.saturating_sub(now))
    }
    fn subscribe_duration(&mut self, nanos: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.clock.advance(nanos);
        let sleep = self.table.push(VirtualSleep)?;
        wasmtime_wasi::p2::subscribe(self.table, sleep)
    }
}

/// WASI preview 2, with the monotonic clock replaced by the virtual one.
pub fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<GuestState, HasVirtualClock>(linker, |s| VirtualClockView {
        clock: &s.clock,
        table: &mut s.table,
    })?;
    linker.allow_shadowing(false);
    Ok(())
}
