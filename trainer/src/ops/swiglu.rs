//! The gated MLP's `silu(gate) * up` with its own backward pass: keeps the
//! two inputs and the output, where the plain ops also kept `silu(gate)`
//! and its sigmoid.

use super::{Precomputed, accumulation_dtype};
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `silu(gate) * up`, elementwise, in the inputs' dtype.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let value = (gate.detach().silu()? * up.detach())?;
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

    /// With s = sigmoid(gate): d up = grad * gate * s; d gate = grad * up *
    /// s * (1 + gate * (1 - s)).
    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let wide = accumulation_dtype(gate.dtype());
        let g = gate.detach().to_dtype(wide)?;
        let u = up.detach().to_dtype(wide)?;
        let grad = grad.to_dtype(wide)?;
        let sigmoid = (g.neg()?.exp()? + 1.0)?.recip()?;
        let silu = (&g * &sigmoid)?;
        let slope = (&sigmoid * ((&g * (1.0 - &sigmoid)?)? + 1.0)?)?;
        let grad_gate = (&grad * &u)?.mul(&slope)?.to_dtype(gate.dtype())?;
        let grad_up = (&grad * &silu)?.to_dtype(up.dtype())?;
        Ok((Some(grad_gate), Some(grad_up)))
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
