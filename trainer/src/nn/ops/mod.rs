//! Ops with a hand-written backward pass, where composing candle's own ops
//! would cost too much memory or time.

pub mod attention;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;
pub mod target_log_probs;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, DType, Result, Shape, Storage, Tensor};
use std::sync::Mutex;

/// The dtype that sums and softmaxes over values of `dtype` run in: f32 for
/// the half-precision types, the dtype itself otherwise (f64 stays f64).
pub fn accumulation_dtype(dtype: DType) -> DType {
    match dtype {
        DType::BF16 | DType::F16 => DType::F32,
        other => other,
    }
}

/// max |a - b| over max |b| (both read in f32): how far a CUDA kernel's
/// output is from the tensor ops', relative to the output's size.
pub(crate) fn relative_difference(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = (a.to_dtype(DType::F32)?, b.to_dtype(DType::F32)?);
    let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-6);
    let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    Ok(f64::from(diff / scale))
}

/// An op's result, computed with tensor ops (on any device) before the op
/// is applied; the op's forward pass hands it over once and drops it, so
/// that only the op's output holds the memory. The op itself exists for its
/// backward pass, which candle calls with the inputs and the output.
pub(crate) struct Precomputed(Mutex<Option<Tensor>>);

impl Precomputed {
    pub(crate) fn new(value: Tensor) -> Precomputed {
        Precomputed(Mutex::new(Some(value)))
    }

    fn take(&self) -> Result<Tensor> {
        self.0
            .lock()
            .map_err(|_| candle_core::Error::Msg("an op's result lock was poisoned".into()))?
            .take()
            .ok_or_else(|| candle_core::Error::Msg("an op's forward pass ran twice".into()))
    }

    pub(crate) fn cpu(&self) -> Result<(CpuStorage, Shape)> {
        let value = self.take()?;
        let (storage, layout) = value.storage_and_layout();
        match &*storage {
            Storage::Cpu(cpu) if layout.is_contiguous() && layout.start_offset() == 0 => {
                Ok((cpu.clone(), layout.shape().clone()))
            }
            _ => candle_core::bail!("an op's result is not a fresh contiguous CPU tensor"),
        }
    }

    pub(crate) fn cuda(&self) -> Result<(CudaStorage, Shape)> {
        let value = self.take()?;
        let (storage, layout) = value.storage_and_layout();
        match &*storage {
            Storage::Cuda(cuda) if layout.is_contiguous() && layout.start_offset() == 0 => {
                Ok((cuda.try_clone(layout)?, layout.shape().clone()))
            }
            _ => candle_core::bail!("an op's result is not a fresh contiguous GPU tensor"),
        }
    }
}

/// What the ops' tests share: random f64 inputs, closeness, and gradients
/// through an op and through the plain ops it replaces.
#[cfg(test)]
pub(crate) mod testing {
    use crate::nn::init::SeededRng;
    use candle_core::{DType, Device, Tensor, Var};

    /// A variable of normal f64 values (f64, so that exact agreement is
    /// visible to 1e-12).
    pub fn random_var(dims: &[usize], seed: u64, device: &Device) -> Var {
        let mut rng = SeededRng::new(seed);
        Var::from_tensor(&rng.normal_tensor(dims, 1.0, DType::F64, device).unwrap()).unwrap()
    }

    /// The largest |a - b| is below `tolerance`.
    pub fn assert_close(a: &Tensor, b: &Tensor, tolerance: f64, what: &str) {
        let diff = (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(diff < tolerance, "{what}: differ by {diff}");
    }

    /// For each of `vars`: its gradient through `ours` and through `theirs`,
    /// of the sum of the output weighted by fixed random numbers.
    pub fn gradients(ours: &Tensor, theirs: &Tensor, vars: &[&Var]) -> Vec<(Tensor, Tensor)> {
        let weights = random_var(ours.dims(), 99, ours.device());
        let weights = weights.as_tensor().to_dtype(ours.dtype()).unwrap();
        let grads = |out: &Tensor| {
            (out * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let (a, b) = (grads(ours), grads(theirs));
        vars.iter()
            .map(|v| {
                (
                    a.get(v.as_tensor()).unwrap().clone(),
                    b.get(v.as_tensor()).unwrap().clone(),
                )
            })
            .collect()
    }
}
