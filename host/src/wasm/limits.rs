//! Limits on every call into a guest, and the wall-clock granularity that
//! enforces them.

use crate::util::setting::{BadSetting, check, check_range};
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

impl Limits {
    /// The most of each bounded limit: past these a run would not fit in
    /// memory or time on any machine this runs on.
    pub const MAX_WALL_MS: u64 = 24 * 60 * 60 * 1000;
    pub const MAX_MEMORY_BYTES: usize = 16 << 30;
    pub const MAX_OUTPUT_BYTES: usize = 64 << 20;

    /// Every limit in its range; the error names the field.
    pub fn validate(&self) -> Result<(), BadSetting> {
        check(
            self.fuel_per_call >= 1,
            "fuel_per_call",
            "must be at least 1",
        )?;
        let wall_ms = self.wall_ms_per_call;
        check_range("wall_ms_per_call", wall_ms, 1, Self::MAX_WALL_MS)?;
        let memory = self.memory_bytes;
        check_range("memory_bytes", memory, 1, Self::MAX_MEMORY_BYTES)?;
        let output = self.output_bytes;
        check_range("output_bytes", output, 1, Self::MAX_OUTPUT_BYTES)
    }
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
