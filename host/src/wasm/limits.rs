//! Limits on every call into a guest, and the wall-clock granularity that
//! enforces them.

use std::time::Duration;

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
