//! The trainer's own CUDA kernels (`kernels/*.cu`, compiled to PTX by
//! build.rs): where candle's tensor ops would take many launches and passes
//! over memory for one step. `LEAFE_CUDA_KERNELS=0` switches them off (the
//! tensor-op paths run instead), to compare the two or to work around one.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::WrapErr;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::{CpuStorage, CudaStorage, DType, InplaceOp3, Layout, Result, Storage, Tensor};

const OPTIM_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/optim.ptx"));

/// Whether the kernels are used (`LEAFE_CUDA_KERNELS` is not `0`).
pub fn enabled() -> bool {
    std::env::var("LEAFE_CUDA_KERNELS").map_or(true, |v| v != "0")
}

/// Threads per block, and blocks for `n` elements of a grid-stride loop.
fn launch(n: usize) -> LaunchConfig {
    const THREADS: u32 = 256;
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 1 << 16) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The constants of one AdamW step (see `optim::update`).
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

/// One AdamW step of `var` in place, with the moments `m` and `v` updated in
/// place too and the gradient scaled by the f32 scalar `clip`, all on the
/// device: one kernel launch, no host synchronisation.
pub fn adamw(
    var: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    clip: &Tensor,
    step: AdamWStep,
) -> Result<()> {
    for (what, t) in [
        ("gradient", grad),
        ("first moment", m),
        ("second moment", v),
    ] {
        if t.dims() != var.dims() {
            candle_core::bail!(
                "adamw: the {what} has shape {:?}, the weights {:?}",
                t.dims(),
                var.dims()
            );
        }
    }
    var.inplace_op3(grad, clip, &AdamW { m, v, step })
}

/// The op: the weights are its destination, the gradient and the clipping
/// factor its sources; the moments are written through their own storage
/// (the op owns them: nothing else reads them during the step).
struct AdamW<'a> {
    m: &'a Tensor,
    v: &'a Tensor,
    step: AdamWStep,
}

/// A contiguous f32 tensor's storage on the GPU, locked for reading.
fn with_cuda_f32<T>(
    t: &Tensor,
    f: impl FnOnce(&candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>, usize) -> Result<T>,
) -> Result<T> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cuda) = &*storage else {
        candle_core::bail!("a tensor of the CUDA kernel is not on the GPU")
    };
    let Some((start, _)) = layout.contiguous_offsets() else {
        candle_core::bail!("a tensor of the CUDA kernel is not contiguous")
    };
    f(cuda.as_cuda_slice::<f32>()?, start)
}

impl InplaceOp3 for AdamW<'_> {
    fn name(&self) -> &'static str {
        "adamw-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<()> {
        candle_core::bail!("the CUDA AdamW kernel runs on GPU tensors only")
    }

    fn cuda_fwd(
        &self,
        theta: &mut CudaStorage,
        theta_layout: &Layout,
        grad: &CudaStorage,
        grad_layout: &Layout,
        clip: &CudaStorage,
        clip_layout: &Layout,
    ) -> Result<()> {
        let contiguous = |l: &Layout, what: &str| {
            l.contiguous_offsets().ok_or_else(|| {
                candle_core::Error::Msg(format!("adamw: the {what} is not contiguous"))
            })
        };
        let (t0, t1) = contiguous(theta_layout, "weights")?;
        let (g0, g1) = contiguous(grad_layout, "gradient")?;
        let (c0, c1) = contiguous(clip_layout, "clipping factor")?;
        let n = t1 - t0;
        if g1 - g0 != n || c1 - c0 != 1 {
            candle_core::bail!("adamw: the gradient or the clipping factor has the wrong size");
        }
        let device = theta.device().clone();
        let func = device.get_or_load_custom_func("adamw_f32", "leafe_optim", OPTIM_PTX)?;
        let grad = grad.as_cuda_slice::<f32>()?.slice(g0..g1);
        let clip = clip.as_cuda_slice::<f32>()?.slice(c0..c1);
        let mut theta = theta.as_cuda_slice_mut::<f32>()?.slice_mut(t0..t1);
        with_cuda_f32(self.m, |m, m0| {
            with_cuda_f32(self.v, |v, v0| {
                let m = m.slice(m0..m0 + n);
                let v = v.slice(v0..v0 + n);
                let s = self.step;
                let mut builder = func.builder();
                builder.arg(&mut theta);
                builder.arg(&m);
                builder.arg(&v);
                builder.arg(&grad);
                builder.arg(&clip);
                candle_core::builder_arg!(
                    builder,
                    s.beta1,
                    s.beta2,
                    s.inv_bias1,
                    s.inv_bias2,
                    s.lr,
                    s.eps,
                    s.keep,
                    n as u64
                );
                // SAFETY: the kernel reads and writes `n` elements of each
                // buffer, all of which hold at least `n` (checked above).
                unsafe { builder.launch(launch(n)) }.w()?;
                Ok(())
            })
        })
    }
}
