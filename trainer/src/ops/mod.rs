//! Ops with a hand-written backward pass, where composing candle's own ops
//! would cost too much memory or time.

pub mod attention;
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

/// An op's result, computed with tensor ops (on any device) before the op
/// is applied; the op's forward pass hands it over once and drops it, so
/// that only the op's output holds the memory. The op itself exists for its
/// backward pass, which candle calls with the inputs and the output.
pub(crate) struct Precomputed(Mutex<Option<Tensor>>);

impl Precomputed {
    fn new(value: Tensor) -> Precomputed {
        Precomputed(Mutex::new(Some(value)))
    }

    fn take(&self) -> Result<Tensor> {
        self.0
            .lock()
            .map_err(|_| candle_core::Error::Msg("an op's result lock was poisoned".into()))?
            .take()
            .ok_or_else(|| candle_core::Error::Msg("an op's forward pass ran twice".into()))
    }

    fn cpu(&self) -> Result<(CpuStorage, Shape)> {
        let value = self.take()?;
        let (storage, layout) = value.storage_and_layout();
        match &*storage {
            Storage::Cpu(cpu) if layout.is_contiguous() && layout.start_offset() == 0 => {
                Ok((cpu.clone(), layout.shape().clone()))
            }
            _ => candle_core::bail!("an op's result is not a fresh contiguous CPU tensor"),
        }
    }

    fn cuda(&self) -> Result<(CudaStorage, Shape)> {
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
