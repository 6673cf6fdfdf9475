//! RMSNorm with its own backward pass: keeps the input, its per-row
//! reciprocal root mean square and the output, where the plain ops kept the
//! square, the mean, the root, the quotient and the cast.

use super::{Precomputed, accumulation_dtype};
use candle_core::{CpuStorage, CudaStorage, CustomOp2, D, Layout, Result, Shape, Tensor};

/// `x / sqrt(mean(x^2) + eps) * weight` over the last dimension, normalised
/// in `x`'s accumulation dtype (f32 for bf16, as transformers does) and
/// returned in `x`'s dtype; `weight` is `[hidden]`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let (xd, wd) = (x.detach(), weight.detach());
    let (value, rstd) = match kernel_applies(&xd, &wd) {
        true => crate::nn::cuda::rms_norm(&xd, &wd, eps)?,
        false => forward(&xd, &wd, eps)?,
    };
    x.apply_op2(
        weight,
        RmsNorm {
            value: Precomputed::new(value),
            rstd,
            eps,
        },
    )
}

/// The output and 1 / root mean square `[.., 1]` (accumulation dtype).
fn forward(x: &Tensor, weight: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    let wide = x.to_dtype(accumulation_dtype(x.dtype()))?;
    let rstd = (wide.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    let value = wide
        .broadcast_mul(&rstd)?
        .to_dtype(x.dtype())?
        .broadcast_mul(weight)?;
    Ok((value, rstd))
}

struct RmsNorm {
    value: Precomputed,
    /// `[.., 1]`: 1 / sqrt(mean(x^2) + eps), in the accumulation dtype.
    rstd: Tensor,
    eps: f64,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.value.cpu()
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.value.cuda()
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (x, w) = (x.detach(), weight.detach());
        let (grad_x, products) = match kernel_applies(&x, &w) && grad.dtype() == x.dtype() {
            true => crate::nn::cuda::rms_norm_backward(&x, &w, grad, self.eps)?,
            false => backward(&x, &w, &self.rstd, grad)?,
        };
        // The sum over rows as a [1, rows] x [rows, hidden] matmul: candle's
        // sum over a leading dimension is a slow strided loop on a CPU.
        let hidden = w.dim(0)?;
        let ones = Tensor::ones((1, products.dim(0)?), products.dtype(), products.device())?;
        let grad_weight = ones
            .matmul(&products)?
            .reshape(hidden)?
            .to_dtype(w.dtype())?;
        Ok((Some(grad_x), Some(grad_weight)))
    }
}

/// With n = x * rstd and gw = grad * weight: dx = rstd * (gw - n * mean(gw *
/// n)), and the products grad * n `[rows, hidden]` whose sum over rows is d
/// weight.
fn backward(x: &Tensor, weight: &Tensor, rstd: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
    let wide = rstd.dtype();
    let normed = x.to_dtype(wide)?.broadcast_mul(rstd)?;
    let grad = grad.to_dtype(wide)?;
    let hidden = weight.dim(0)?;
    let products = (&grad * &normed)?.reshape(((), hidden))?;
    let scaled = grad.broadcast_mul(&weight.to_dtype(wide)?)?;
    let dot = (&scaled * &normed)?.mean_keepdim(D::Minus1)?;
    let grad_x = (scaled - normed.broadcast_mul(&dot)?)?
        .broadcast_mul(rstd)?
        .to_dtype(x.dtype())?;
    Ok((grad_x, products))
}

/// Whether the CUDA kernels (`kernels/ops.cu`) compute this: f32 on a GPU
/// (the training residual stream), found to agree with [`forward`] and
/// [`backward`] there.
fn kernel_applies(x: &Tensor, weight: &Tensor) -> bool {
    static VERIFIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    x.device().is_cuda()
        && x.dtype() == candle_core::DType::F32
        && weight.dtype() == candle_core::DType::F32
        && crate::nn::cuda::enabled()
        && crate::nn::cuda::verified(&VERIFIED, "rms_norm", || kernel_difference(x.device()))
}

/// The kernels' largest difference from [`forward`] and [`backward`] on
/// random rows, over 1e-5 of the largest value of each output.
fn kernel_difference(device: &candle_core::Device) -> Result<f64> {
    use candle_core::DType;
    let mut rng = crate::nn::init::SeededRng::new(22);
    let eps = 1e-6;
    let (x, grad) = (
        rng.normal_tensor(&[2, 37, 896], 1.0, DType::F32, device)?,
        rng.normal_tensor(&[2, 37, 896], 1.0, DType::F32, device)?,
    );
    let w = (rng.normal_tensor(&[896], 0.1, DType::F32, device)? + 1.0)?;
    let (value, rstd) = crate::nn::cuda::rms_norm(&x, &w, eps)?;
    let (value_plain, rstd_plain) = forward(&x, &w, eps)?;
    let (dx, products) = crate::nn::cuda::rms_norm_backward(&x, &w, &grad, eps)?;
    let (dx_plain, products_plain) = backward(&x, &w, &rstd_plain, &grad)?;
    let mut worst = 0f64;
    for (a, b) in [
        (value, value_plain),
        (rstd, rstd_plain),
        (dx, dx_plain),
        (products, products_plain),
    ] {
        worst = worst.max(super::relative_difference(&a, &b)? / 1e-5);
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ops::testing::{assert_close, gradients, random_var};
    use candle_core::{DType, Device};

    fn plain(x: &Tensor, weight: &Tensor, eps: f64) -> Tensor {
        let variance = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        x.broadcast_div(&(variance + eps).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(weight)
            .unwrap()
    }

    #[test]
    fn matches_the_plain_ops_and_their_gradients() {
        let dev = Device::Cpu;
        let x = random_var(&[2, 3, 8], 1, &dev);
        let weight = random_var(&[8], 2, &dev);
        let ours = rms_norm(x.as_tensor(), weight.as_tensor(), 1e-6).unwrap();
        let theirs = plain(x.as_tensor(), weight.as_tensor(), 1e-6);
        assert_close(&ours, &theirs, 1e-12, "output");
        for ((a, b), name) in gradients(&ours, &theirs, &[&x, &weight])
            .into_iter()
            .zip(["dx", "dw"])
        {
            assert_close(&a, &b, 1e-12, name);
        }
        assert_eq!(ours.dtype(), DType::F64);
    }
}
