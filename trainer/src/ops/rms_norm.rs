//! RMSNorm with its own backward pass: keeps the input, its per-row
//! reciprocal root mean square and the output, where the plain ops kept the
//! square, the mean, the root, the quotient and the cast.

use super::{Precomputed, accumulation_dtype};
use candle_core::{CpuStorage, CudaStorage, CustomOp2, D, Layout, Result, Shape, Tensor};

/// `x / sqrt(mean(x^2) + eps) * weight` over the last dimension, normalised
/// in `x`'s accumulation dtype (f32 for bf16, as transformers does) and
/// returned in `x`'s dtype; `weight` is `[hidden]`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let wide = x.detach().to_dtype(accumulation_dtype(x.dtype()))?;
    let rstd = (wide.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    let value = wide
        .broadcast_mul(&rstd)?
        .to_dtype(x.dtype())?
        .broadcast_mul(&weight.detach())?;
    x.apply_op2(
        weight,
        RmsNorm {
            value: Precomputed::new(value),
            rstd,
        },
    )
}

struct RmsNorm {
    value: Precomputed,
    /// `[.., 1]`: 1 / sqrt(mean(x^2) + eps), in the accumulation dtype.
    rstd: Tensor,
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

    /// With n = x * rstd and gw = grad * weight: d weight = sum over rows of
    /// grad * n; dx = rstd * (gw - n * mean(gw * n)).
    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let wide = self.rstd.dtype();
        let normed = x.detach().to_dtype(wide)?.broadcast_mul(&self.rstd)?;
        let grad = grad.to_dtype(wide)?;
        let hidden = weight.dim(0)?;
        // The sum over rows as a [1, rows] x [rows, hidden] matmul: candle's
        // sum over a leading dimension is a slow strided loop on a CPU.
        let products = (&grad * &normed)?.reshape(((), hidden))?;
        let ones = Tensor::ones((1, products.dim(0)?), wide, products.device())?;
        let grad_weight = ones
            .matmul(&products)?
            .reshape(hidden)?
            .to_dtype(weight.dtype())?;
        let scaled = grad.broadcast_mul(&weight.detach().to_dtype(wide)?)?;
        let dot = (&scaled * &normed)?.mean_keepdim(D::Minus1)?;
        let grad_x = (scaled - normed.broadcast_mul(&dot)?)?
            .broadcast_mul(&self.rstd)?
            .to_dtype(x.dtype())?;
        Ok((Some(grad_x), Some(grad_weight)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, gradients, random_var};
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
