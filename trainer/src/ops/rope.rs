//! Rotary embeddings with their own backward pass: keeps the input and the
//! output, where the plain ops kept both products, the halves and their
//! negation.

use super::Precomputed;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, D, Layout, Result, Shape, Tensor};

/// `x * cos + rotate_half(x) * sin` for `x` `[b, heads, t, d]`, with `cos`
/// and `sin` `[.., t, d]` (each half of the last dimension the same table,
/// as transformers lays them out) broadcast over the rest.
pub fn rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let value = rotate(&x.detach(), cos, sin)?;
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
        let grad_x =
            (grad.broadcast_mul(&self.cos)? - rotate_half(&grad.broadcast_mul(&self.sin)?)?)?;
        Ok(Some(grad_x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{assert_close, gradients, random_var};
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
