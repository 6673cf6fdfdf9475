//! What the kernels' callers need on any build: whether a kernel applies,
//! and its check against candle's tensor ops.

use candle_core::{DType, Result, Tensor};
use std::sync::OnceLock;

/// Whether the kernels are used (`LEAFE_CUDA_KERNELS` is not `0`).
pub fn enabled() -> bool {
    std::env::var("LEAFE_CUDA_KERNELS").map_or(true, |v| v != "0")
}

/// Whether `kernel` agrees with candle's ops on this GPU, decided once per
/// process (per `cell`): `difference()` runs both on random inputs and
/// returns their largest difference over its tolerance. Above 1, or an
/// error, switches the kernel off with a warning.
pub fn verified(
    cell: &'static OnceLock<bool>,
    kernel: &str,
    difference: impl FnOnce() -> Result<f64>,
) -> bool {
    *cell.get_or_init(|| match difference() {
        Ok(d) if d <= 1.0 => true,
        Ok(d) => {
            eprintln!(
                "warning: the CUDA kernel {kernel} differs from candle's ops by {d:.1e} times its \
                 tolerance on this GPU; using candle's ops"
            );
            false
        }
        Err(e) => {
            eprintln!("warning: the CUDA kernel {kernel} failed ({e}); using candle's ops");
            false
        }
    })
}

/// Whether the elementwise kernels take `tensors`: on a GPU, one shape and
/// one dtype (f32 or bf16), kernels enabled.
pub fn elementwise_applies(tensors: &[&Tensor]) -> bool {
    let Some(first) = tensors.first() else {
        return false;
    };
    first.device().is_cuda()
        && matches!(first.dtype(), DType::F32 | DType::BF16)
        && tensors
            .iter()
            .all(|t| t.dtype() == first.dtype() && t.dims() == first.dims())
        && enabled()
}

/// The constants of one AdamW step in f32, as the fused CPU loop
/// (`optim::update`) and the CUDA kernel take them.
#[derive(Clone, Copy, Debug)]
pub struct AdamWStep {
    pub beta1: f32,
    pub beta2: f32,
    pub inv_bias1: f32,
    pub inv_bias2: f32,
    pub lr: f32,
    pub eps: f32,
    /// `1 - lr * weight_decay`.
    pub keep: f32,
}

/// Whether [`adamw`] can update `var` from `grad`: both f32 on a GPU.
pub fn adamw_applies(var: &Tensor, grad: &Tensor) -> bool {
    var.device().is_cuda() && var.dtype() == DType::F32 && grad.dtype() == DType::F32 && enabled()
}
