//! The gated MLP's `silu(gate) * up` with its own backward pass: keeps the
//! two inputs and the output, where the plain ops also kept `silu(gate)`
//! and its sigmoid.

use super::{Precomputed, accumulation_dtype};
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `silu(gate) * up`, elementwise, in the inputs' dtype.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let (g, u) = (gate.detach(), up.detach());
    let value = match kernel_applies(&[&g, &u]) {
        true => crate::nn::cuda::silu_mul(&g, &u)?,
        false => (g.silu()? * u)?,
    };
    gate.apply_op2(
        up,
        SiluMul {
            value: Precomputed::new(value),
        },
    )
}

struct SiluMul {
    value: Precomputed,
}

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "silu-mul"
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
        gate: &Tensor,
        up: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (g, u) = (gate.detach(), up.detach());
        let (grad_gate, grad_up) = match kernel_applies(&[&g, &u, grad]) {
            true => crate::nn::cuda::silu_mul_backward(&g, &u, grad)?,
            false => backward(&g, &u, grad)?,
        };
        Ok((Some(grad_gate), Some(grad_up)))
    }
}

/// With s = sigmoid(gate): d up = grad * gate * s; d gate = grad * up * s *
/// (1 + gate * (1 - s)), computed in the accumulation dtype.
fn backward(gate: &Tensor, up: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
    let wide = accumulation_dtype(gate.dtype());
    let g = gate.to_dtype(wide)?;
    let u = up.to_dtype(wide)?;
    let grad = grad.to_dtype(wide)?;
    let sigmoid = (g.neg()?.exp()? + 1.0)?.recip()?;
    let silu = (&g * &sigmoid)?;
    let slope = (&sigmoid * ((&g * (1.0 - &sigmoid)?)? + 1.0)?)?;
    let grad_gate = (&grad * &u)?.mul(&slope)?.to_dtype(gate.dtype())?;
    let grad_up = (&grad * &silu)?.to_dtype(up.dtype())?;
    Ok((grad_gate, grad_up))
}

/// Whether the CUDA kernels (`kernels/ops.cu`) compute this: on a GPU, in
/// f32 or bf16, and found to agree with [`backward`] and the plain forward
/// ops there.
fn kernel_applies(tensors: &[&Tensor]) -> bool {
    static VERIFIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    crate::nn::cuda::elementwise_applies(tensors)
        && crate::nn::cuda::verified(&VERIFIED, "silu_mul", || {
            kernel_difference(tensors[0].device())
        })
}

/// The kernels' largest difference from the tensor ops on random inputs,
/// over the tolerance of each dtype (f32: 1e-5 of the largest value; bf16:
/// 1e-2, a couple of roundings).
fn kernel_difference(device: &candle_core::Device) -> Result<f64> {
    use candle_core::DType;
    let mut rng = crate::nn::init::SeededRng::new(21);
    let mut worst = 0f64;
    for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::BF16, 1e-2)] {
        let mut random = || {
            rng.normal_tensor(&[3, 1031], 2.0, DType::F32, device)?
                .to_dtype(dtype)
        };
        let (gate, up, grad) = (random()?, random()?, random()?);
        let ours = crate::nn::cuda::silu_mul(&gate, &up)?;
        let theirs = (gate.silu()? * &up)?;
        let (ours_gate, ours_up) = crate::nn::cuda::silu_mul_backward(&gate, &up, &grad)?;
        let (theirs_gate, theirs_up) = backward(&gate, &up, &grad)?;
        for (a, b) in [
            (ours, theirs),
            (ours_gate, theirs_gate),
            (ours_up, theirs_up),
        ] {
            worst = worst.max(super::relative_difference(&a, &b)? / tolerance);
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
        let gate = random_var(&[3, 4, 6], 3, &dev);
        let up = random_var(&[3, 4, 6], 4, &dev);
        let ours = silu_mul(gate.as_tensor(), up.as_tensor()).unwrap();
        let theirs = (gate.as_tensor().silu().unwrap() * up.as_tensor()).unwrap();
        assert_close(&ours, &theirs, 1e-12, "output");
        for ((a, b), name) in gradients(&ours, &theirs, &[&gate, &up])
            .into_iter()
            .zip(["dgate", "dup"])
        {
            assert_close(&a, &b, 1e-12, name);
        }
    }
}
