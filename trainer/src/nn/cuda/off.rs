//! The kernels' functions in a build without the `cuda` feature: never
//! called (no tensor is on a GPU, so no `*_applies` check passes), an error
//! if they were.

use super::common::AdamWStep;
use candle_core::{Result, Tensor};

fn unavailable<T>() -> Result<T> {
    candle_core::bail!("this leafe-trainer was built without the cuda feature")
}

pub fn silu_mul(_: &Tensor, _: &Tensor) -> Result<Tensor> {
    unavailable()
}

pub fn silu_mul_backward(_: &Tensor, _: &Tensor, _: &Tensor) -> Result<(Tensor, Tensor)> {
    unavailable()
}

pub fn rms_norm(_: &Tensor, _: &Tensor, _: f64) -> Result<(Tensor, Tensor)> {
    unavailable()
}

pub fn rms_norm_backward(_: &Tensor, _: &Tensor, _: &Tensor, _: f64) -> Result<(Tensor, Tensor)> {
    unavailable()
}

pub fn log_softmax_pick(_: &Tensor, _: &Tensor) -> Result<(Tensor, Tensor)> {
    unavailable()
}

pub fn log_softmax_pick_backward(_: &Tensor, _: &Tensor, _: &Tensor, _: &Tensor) -> Result<Tensor> {
    unavailable()
}

pub fn rotary(_: &Tensor, _: &Tensor, _: &Tensor, _: bool) -> Result<Tensor> {
    unavailable()
}

pub fn adamw(
    _: &Tensor,
    _: &Tensor,
    _: &Tensor,
    _: &Tensor,
    _: &Tensor,
    _: AdamWStep,
) -> Result<()> {
    unavailable()
}
