//! Ops with a hand-written backward pass, where composing candle's own ops
//! would cost too much memory or time.

mod target_log_probs;

pub use target_log_probs::target_log_probs;

use candle_core::DType;

/// The dtype that sums and softmaxes over values of `dtype` run in: f32 for
/// the half-precision types, the dtype itself otherwise (f64 stays f64).
pub fn accumulation_dtype(dtype: DType) -> DType {
    match dtype {
        DType::BF16 | DType::F16 => DType::F32,
        other => other,
    }
}
