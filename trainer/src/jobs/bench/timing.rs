//! The one timing loop of the benchmarks.

use anyhow::Result;
use candle_core::Device;
use std::time::Instant;

/// The best seconds of `reps` (at least one) calls of `f`, each finished
/// on `device` before its clock stops; what `f` returns is dropped after.
pub fn best_seconds<T>(
    device: &Device,
    reps: usize,
    f: impl Fn() -> candle_core::Result<T>,
) -> Result<f64> {
    device.synchronize()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let started = Instant::now();
        let out = f()?;
        device.synchronize()?;
        best = best.min(started.elapsed().as_secs_f64());
        drop(out);
    }
    Ok(best)
}
