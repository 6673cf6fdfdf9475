//! Rotary embeddings with their own backward pass: keeps the input and the
//! output, where the plain ops kept both products, the halves and their
//! negation.

use super::Precomputed;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, D, Layout, Result, Shape, Tensor};

/// `x * cos + rotate_half(x) * sin` for `x` `[b, heads, t, d]`, with `cos`
/// and `sin` `[.., t, d]` (each half of the last dimension the same table,
/// as transformers lays them out) broadcast over the rest.
pub fn rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let xd = x.detach();
    let value = match kernel_applies(&xd, cos) {
        true => crate::nn::cuda::rotary(&xd, cos, sin, false)?,
        false => rotate(&xd, cos, sin)?,
    };
    x.apply_op1(Rotary {
        value: Precomputed::new(value),
        cos: cos.detach(),
        sin: sin.detach(),
    })
}

fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    x.broadcast_mul(cos)? + rotate_half(x)?.broadcast_mul(sin)?
}

/// `[x1, x2] -> [-x2, x1]` over the last dimension's halves.
fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    Tensor::cat(
        &[
            &x.narrow(D::Minus1, half, half)?.neg()?,
            &x.narrow(D::Minus1, 0, half)?,
        ],
        D::Minus1,
    )
}

struct Rotary {
    value: Precomputed,
    cos: Tensor,
    sin: Tensor,
}

impl CustomOp1 for Rotary {
    fn name(&self) -> &'static str {
        "rotary"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        self.value.cpu()
    }

    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> Result<(CudaStorage, Shape)> {
        self.value.cuda()
    }

    /// rotate_half is a rotation by -90 degrees on each pair: its transpose
    /// is its negation, so dx = grad * cos - rotate_half(grad * sin).
    fn bwd(&self, _: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad_x = match kernel_applies(grad, &self.cos) {
            true => crate::nn::cuda::rotary(grad, &self.cos, &self.sin, true)?,
            false => rotate_back(grad, &self.cos, &self.sin)?,
        };
        Ok(Some(grad_x))
    }
}

fn rotate_back(grad: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    grad.broadcast_mul(cos)? - rotate_half(&grad.broadcast_mul(sin)?)?
}

/// Whether the CUDA kernel (`kernels/ops.cu`) computes this: f32 or bf16
/// on a GPU with `[t, d]` tables of the same dtype (shared positions, as in
/// training), found to agree with [`rotate`] and [`rotate_back`] there.
fn kernel_applies(x: &Tensor, cos: &Tensor) -> bool {
    static VERIFIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    crate::nn::cuda::elementwise_applies(&[x])
        && cos.rank() == 2
        && cos.dtype() == x.dtype()
        && crate::nn::cuda::verified(&VERIFIED, "rotary", || kernel_difference(x.device()))
}

/// The kernel's largest difference from [`rotate`] and [`rotate_back`] on
/// random inputs and tables laid out as the model's, over the tolerance of
/// each dtype (of the largest value).
fn kernel_difference(device: &candle_core::Device) -> Result<f64> {
    use candle_core::DType;
    let mut rng = crate::nn::init::SeededRng::new(24);
    let (t, d) = (37, 64);
    let angles = rng.normal_tensor(&[t, d / 2], 3.0, DType::F32, device)?;
    let angles = Tensor::cat(&[&angles, &angles], 1)?;
    let mut worst = 0f64;
    for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::BF16, 1e-2)] {
        let (cos, sin) = (
            angles.cos()?.to_dtype(dtype)?,
            angles.sin()?.to_dtype(dtype)?,
        );
        let x = rng
            .normal_tensor(&[2, 3, t, d], 1.0, DType::F32, device)?
            .to_dtype(dtype)?;
        for (ours, theirs) in [
            (
                crate::nn::cuda::rotary(&x, &cos, &sin, false)?,
                rotate(&x, &cos, &sin)?,
            ),
            (
                crate::nn::cuda::rotary(&x, &cos, &sin, true)?,
                rotate_back(&x, &cos, &sin)?,
            ),
        ] {
            worst = worst.max(super::relative_difference(&ours, &theirs)? / tolerance);
        }
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ops::testing::{assert_close, gradients, random_var};
    use candle_core::Device;

    #[test]
    fn matches_the_plain_ops_and_their_gradients() {
        let dev = Device::Cpu;
        let x = random_var(&[2, 3, 5, 8], 5, &dev);
        let angles = random_var(&[5, 4], 6, &dev);
        let table = |t: Tensor| Tensor::cat(&[&t, &t], 1).unwrap();
        let cos = table(angles.as_tensor().cos().unwrap());
        let sin = table(angles.as_tensor().sin().unwrap());
        let ours = rotary(x.as_tensor(), &cos, &sin).unwrap();
        let theirs = candle_nn::rotary_emb::rope_slow(
            x.as_tensor(),
            &angles.as_tensor().cos().unwrap(),
            &angles.as_tensor().sin().unwrap(),
        )
        .unwrap();
        assert_close(&ours, &theirs, 1e-12, "output");
        let (a, b) = gradients(&ours, &theirs, &[&x]).remove(0);
        assert_close(&a, &b, 1e-12, "dx");
    }
}
