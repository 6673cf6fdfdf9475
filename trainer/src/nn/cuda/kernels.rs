//! The kernels' launches (the `cuda` feature): candle custom ops around
//! the PTX that build.rs compiled from `kernels/*.cu`.

use super::common::AdamWStep;
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{
    CpuStorage, CudaDevice, CudaStorage, CustomOp2, CustomOp3, DType, InplaceOp3, Layout, Result,
    Shape, Storage, Tensor,
};

const OPTIM_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/optim.ptx"));
const OPS_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/ops.ptx"));

/// `silu(gate) * up` in one pass (computed in f32).
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?
        .apply_op2_no_bwd(&up.contiguous()?, &SiluMulForward)
}

/// The gradients of `silu(gate) * up` for `grad`: (d gate, d up), in one
/// pass.
pub fn silu_mul_backward(gate: &Tensor, up: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
    let both = gate.contiguous()?.apply_op3_no_bwd(
        &up.contiguous()?,
        &grad.contiguous()?,
        &SiluMulBackward,
    )?;
    Ok((both.get(0)?, both.get(1)?))
}

struct SiluMulForward;

impl CustomOp2 for SiluMulForward {
    fn name(&self) -> &'static str {
        "silu-mul-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the CUDA silu-mul kernel runs on GPU tensors only")
    }

    fn cuda_fwd(
        &self,
        gate: &CudaStorage,
        gl: &Layout,
        up: &CudaStorage,
        ul: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let inputs = [(gate, gl), (up, ul)];
        let out = elementwise(gate.device(), "silu_mul_forward", gate.dtype(), &inputs, 1)?;
        Ok((out, gl.shape().clone()))
    }
}

struct SiluMulBackward;

impl CustomOp3 for SiluMulBackward {
    fn name(&self) -> &'static str {
        "silu-mul-backward-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the CUDA silu-mul kernel runs on GPU tensors only")
    }

    fn cuda_fwd(
        &self,
        gate: &CudaStorage,
        gl: &Layout,
        up: &CudaStorage,
        ul: &Layout,
        grad: &CudaStorage,
        dl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let inputs = [(gate, gl), (up, ul), (grad, dl)];
        let out = elementwise(gate.device(), "silu_mul_backward", gate.dtype(), &inputs, 2)?;
        let mut dims = vec![2];
        dims.extend(gl.dims());
        Ok((out, Shape::from(dims)))
    }
}

/// RMSNorm of f32 `x` `[.., hidden]` with the f32 weight `w` `[hidden]`, in
/// one pass per row: (the output, 1 / root mean square `[.., 1]`).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    let x = x.contiguous()?;
    let (rows, hidden) = rows_of(&x)?;
    let eps = eps as f32;
    let out = x.apply_op2_no_bwd(
        &w.contiguous()?,
        &RmsNorm {
            eps,
            backward: false,
        },
    )?;
    let y = out.narrow(0, 0, rows * hidden)?.reshape(x.shape())?;
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = 1;
    }
    // A copy: a view would keep the whole output buffer alive with it.
    let rstd = out.narrow(0, rows * hidden, rows)?.copy()?.reshape(dims)?;
    Ok((y, rstd))
}

/// The backward pass of [`rms_norm`] for `grad`: (d x, the products grad ·
/// x · rstd `[rows, hidden]`, whose sum over rows is d w).
pub fn rms_norm_backward(
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor)> {
    let x = x.contiguous()?;
    let (rows, hidden) = rows_of(&x)?;
    let op = RmsNorm {
        eps: eps as f32,
        backward: true,
    };
    let out = x.apply_op3_no_bwd(&w.contiguous()?, &grad.contiguous()?, &op)?;
    let n = rows * hidden;
    Ok((
        out.narrow(0, 0, n)?.reshape(x.shape())?,
        out.narrow(0, n, n)?.reshape((rows, hidden))?,
    ))
}

/// (rows, hidden) of a `[.., hidden]` tensor.
fn rows_of(x: &Tensor) -> Result<(usize, usize)> {
    let hidden = x.dim(candle_core::D::Minus1)?;
    Ok((x.elem_count() / hidden.max(1), hidden))
}

/// RMSNorm's forward (x, w) or backward (x, w, grad) kernel over f32 rows,
/// one block of threads per row.
struct RmsNorm {
    eps: f32,
    backward: bool,
}

impl RmsNorm {
    fn launch(
        &self,
        device: &CudaDevice,
        inputs: &[(&CudaStorage, &Layout)],
    ) -> Result<(CudaStorage, Shape)> {
        let (kernel, outputs) = match self.backward {
            false => ("rms_norm_forward_f32", None),
            true => ("rms_norm_backward_f32", Some(2)),
        };
        let Some(&(_, x_layout)) = inputs.first() else {
            candle_core::bail!("{kernel}: no input")
        };
        let hidden = x_layout.dims().last().copied().unwrap_or(0);
        let n = x_layout.shape().elem_count();
        let rows = n / hidden.max(1);
        let views = views::<f32>(kernel, inputs)?;
        if views[1].len() != hidden || views.get(2).is_some_and(|g| g.len() != n) {
            candle_core::bail!("{kernel}: the weight or the gradient does not match the input");
        }
        let len = match outputs {
            None => n + rows,
            Some(k) => k * n,
        };
        let func = device.get_or_load_custom_func(kernel, "leafe_ops", OPS_PTX)?;
        // SAFETY: the kernel writes every element (rows x hidden outputs,
        // and one rstd per row or the products).
        let out = unsafe { device.alloc::<f32>(len)? };
        let mut builder = func.builder();
        for view in &views {
            builder.arg(view);
        }
        builder.arg(&out);
        let (rows32, hidden32) = (rows as u32, hidden as u32);
        candle_core::builder_arg!(builder, rows32, hidden32, self.eps);
        let config = LaunchConfig {
            grid_dim: (rows32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: block `row` reads row `row` of x (and grad) and all of w,
        // and writes its own row of the output (and its rstd).
        unsafe { builder.launch(config) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(out, device.clone()),
            Shape::from(len),
        ))
    }
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the CUDA RMSNorm kernel runs on GPU tensors only")
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.launch(x.device(), &[(x, xl), (w, wl)])
    }
}

impl CustomOp3 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm-backward-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the CUDA RMSNorm kernel runs on GPU tensors only")
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
        grad: &CudaStorage,
        gl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.launch(x.device(), &[(x, xl), (w, wl), (grad, gl)])
    }
}

/// The loss's forward pass over a chunk of `logits` `[n, vocab]` (f32 or
/// bf16, read in f32) for `targets` `[n]` (u32), one pass per row: (the
/// targets' log-probabilities `[n]`, the log-sum-exp `[n, 1]`), both f32.
pub fn log_softmax_pick(logits: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor)> {
    let n = logits.dim(0)?;
    let out = logits
        .contiguous()?
        .apply_op2_no_bwd(&targets.contiguous()?, &LogSoftmaxPick { backward: None })?;
    Ok((out.narrow(0, n, n)?, out.narrow(0, 0, n)?.reshape((n, 1))?))
}

/// Its backward pass for `grad` `[n]`: d logits = grad · (onehot(target) -
/// softmax(logits)), in the logits' dtype, from the saved log-sum-exp `lse`.
pub fn log_softmax_pick_backward(
    logits: &Tensor,
    lse: &Tensor,
    targets: &Tensor,
    grad: &Tensor,
) -> Result<Tensor> {
    let lse_grad = Tensor::cat(
        &[
            &lse.flatten_all()?.to_dtype(DType::F32)?,
            &grad.flatten_all()?.to_dtype(DType::F32)?,
        ],
        0,
    )?;
    let op = LogSoftmaxPick {
        backward: Some(lse_grad),
    };
    logits
        .contiguous()?
        .apply_op2_no_bwd(&targets.contiguous()?, &op)
}

/// [`log_softmax_pick`] (`backward: None`) or its backward pass (the
/// log-sum-exps and the gradients, `[2n]` f32), one block per row.
struct LogSoftmaxPick {
    backward: Option<Tensor>,
}

impl CustomOp2 for LogSoftmaxPick {
    fn name(&self) -> &'static str {
        "log-softmax-pick-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the CUDA loss kernel runs on GPU tensors only")
    }

    fn cuda_fwd(
        &self,
        logits: &CudaStorage,
        ll: &Layout,
        targets: &CudaStorage,
        tl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        match logits.dtype() {
            DType::F32 => self.launch::<f32>(logits, ll, targets, tl, "f32"),
            DType::BF16 => self.launch::<half::bf16>(logits, ll, targets, tl, "bf16"),
            other => candle_core::bail!("no loss kernel for {other:?}"),
        }
    }
}

impl LogSoftmaxPick {
    fn launch<T: CudaDType + DeviceRepr>(
        &self,
        logits: &CudaStorage,
        ll: &Layout,
        targets: &CudaStorage,
        tl: &Layout,
        suffix: &str,
    ) -> Result<(CudaStorage, Shape)> {
        let device = logits.device().clone();
        let (rows, vocab) = ll.shape().dims2()?;
        if rows == 0 {
            candle_core::bail!("the loss kernel needs at least one row");
        }
        let contiguous = |l: &Layout| {
            l.contiguous_offsets().ok_or_else(|| {
                candle_core::Error::Msg("the loss kernel's inputs must be contiguous".into())
            })
        };
        let (l0, l1) = contiguous(ll)?;
        let (t0, t1) = contiguous(tl)?;
        if t1 - t0 != rows {
            candle_core::bail!("the loss kernel has {} targets for {rows} rows", t1 - t0);
        }
        let logits = logits.as_cuda_slice::<T>()?.slice(l0..l1);
        let targets = targets.as_cuda_slice::<u32>()?.slice(t0..t1);
        let (rows32, vocab32) = (rows as u32, vocab as u32);
        let config = LaunchConfig {
            grid_dim: (rows32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        match &self.backward {
            None => {
                let func = device.get_or_load_custom_func(
                    &format!("log_softmax_pick_{suffix}"),
                    "leafe_ops",
                    OPS_PTX,
                )?;
                // SAFETY: block `row` writes out[row] and out[rows + row].
                let out = unsafe { device.alloc::<f32>(2 * rows)? };
                let mut builder = func.builder();
                builder.arg(&logits);
                builder.arg(&targets);
                builder.arg(&out);
                candle_core::builder_arg!(builder, rows32, vocab32);
                // SAFETY: block `row` reads row `row` of the logits, of
                // `vocab` elements, and its target (checked below vocab).
                unsafe { builder.launch(config) }.w()?;
                Ok((
                    CudaStorage::wrap_cuda_slice(out, device),
                    Shape::from(2 * rows),
                ))
            }
            Some(lse_grad) => {
                let (storage, layout) = lse_grad.storage_and_layout();
                let Storage::Cuda(cuda) = &*storage else {
                    candle_core::bail!("the loss kernel's log-sum-exps are not on the GPU")
                };
                let Some((g0, g1)) = layout
                    .contiguous_offsets()
                    .filter(|(a, b)| b - a == 2 * rows)
                else {
                    candle_core::bail!(
                        "the loss kernel needs 2 x {rows} log-sum-exps and gradients"
                    )
                };
                let lse_grad = cuda.as_cuda_slice::<f32>()?.slice(g0..g1);
                let func = device.get_or_load_custom_func(
                    &format!("log_softmax_pick_backward_{suffix}"),
                    "leafe_ops",
                    OPS_PTX,
                )?;
                // SAFETY: block `row` writes row `row` of the output.
                let out = unsafe { device.alloc::<T>(rows * vocab)? };
                let mut builder = func.builder();
                builder.arg(&logits);
                builder.arg(&targets);
                builder.arg(&lse_grad);
                builder.arg(&out);
                candle_core::builder_arg!(builder, rows32, vocab32);
                // SAFETY: as above; lse_grad holds 2 x rows values.
                unsafe { builder.launch(config) }.w()?;
                Ok((
                    CudaStorage::wrap_cuda_slice(out, device),
                    ll.shape().clone(),
                ))
            }
        }
    }
}

/// Rotary embeddings of `x` `[.., t, d]` (f32 or bf16) with `cos` and `sin`
/// `[t, d]` of its dtype, in one pass; `inverse` rotates the other way (the
/// backward pass).
pub fn rotary(x: &Tensor, cos: &Tensor, sin: &Tensor, inverse: bool) -> Result<Tensor> {
    let sign = if inverse { -1.0 } else { 1.0 };
    x.contiguous()?
        .apply_op3_no_bwd(&cos.contiguous()?, &sin.contiguous()?, &Rotary { sign })
}

struct Rotary {
    sign: f32,
}

impl CustomOp3 for Rotary {
    fn name(&self) -> &'static str {
        "rotary-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("the CUDA rotary kernel runs on GPU tensors only")
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        cos: &CudaStorage,
        cl: &Layout,
        sin: &CudaStorage,
        sl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let inputs = [(x, xl), (cos, cl), (sin, sl)];
        let out = match x.dtype() {
            DType::F32 => self.launch::<f32>(x.device(), &inputs, "rotary_f32")?,
            DType::BF16 => self.launch::<half::bf16>(x.device(), &inputs, "rotary_bf16")?,
            other => candle_core::bail!("no rotary kernel for {other:?}"),
        };
        Ok((out, xl.shape().clone()))
    }
}

impl Rotary {
    fn launch<T: CudaDType + DeviceRepr>(
        &self,
        device: &CudaDevice,
        inputs: &[(&CudaStorage, &Layout); 3],
        kernel: &str,
    ) -> Result<CudaStorage> {
        let [(_, xl), (_, cl), _] = *inputs;
        let dims = xl.dims();
        let (t, d) = match dims {
            [.., t, d] if *d % 2 == 0 => (*t, *d),
            _ => candle_core::bail!("rotary: x must be [.., t, d] with an even d"),
        };
        if cl.dims() != [t, d] {
            candle_core::bail!("rotary: the tables must be [{t}, {d}], not {:?}", cl.dims());
        }
        let n = xl.shape().elem_count();
        let views = views::<T>(kernel, inputs)?;
        if views[2].len() != t * d {
            candle_core::bail!("rotary: sin does not match cos");
        }
        let func = device.get_or_load_custom_func(kernel, "leafe_ops", OPS_PTX)?;
        // SAFETY: the kernel writes every one of the `n` elements.
        let out = unsafe { device.alloc::<T>(n)? };
        let mut builder = func.builder();
        for view in &views {
            builder.arg(view);
        }
        builder.arg(&out);
        let (n64, t32, d32) = (n as u64, t as u32, d as u32);
        candle_core::builder_arg!(builder, n64, t32, d32, self.sign);
        // SAFETY: element i reads x[i], its partner in the other half of
        // its own row of d, and the tables at its (position, j) < t * d.
        unsafe { builder.launch(launch(n)) }.w()?;
        Ok(CudaStorage::wrap_cuda_slice(out, device.clone()))
    }
}

/// Each input's elements as a contiguous view (an error names `kernel`).
fn views<'a, T: CudaDType>(
    kernel: &str,
    inputs: &[(&'a CudaStorage, &Layout)],
) -> Result<Vec<CudaView<'a, T>>> {
    inputs
        .iter()
        .map(|(storage, layout)| {
            let Some((start, end)) = layout.contiguous_offsets() else {
                candle_core::bail!("{kernel}: an input is not contiguous")
            };
            Ok(storage.as_cuda_slice::<T>()?.slice(start..end))
        })
        .collect()
}

/// Launch `KERNEL_f32` or `KERNEL_bf16` over `inputs` (contiguous, `n`
/// elements each) and a new output of `outputs * n` elements; the kernel
/// takes the inputs, the output and `n`.
fn elementwise(
    device: &CudaDevice,
    kernel: &str,
    dtype: DType,
    inputs: &[(&CudaStorage, &Layout)],
    outputs: usize,
) -> Result<CudaStorage> {
    match dtype {
        DType::F32 => elementwise_of::<f32>(device, &format!("{kernel}_f32"), inputs, outputs),
        DType::BF16 => {
            elementwise_of::<half::bf16>(device, &format!("{kernel}_bf16"), inputs, outputs)
        }
        other => candle_core::bail!("no {kernel} kernel for {other:?}"),
    }
}

fn elementwise_of<T: CudaDType + DeviceRepr>(
    device: &CudaDevice,
    kernel: &str,
    inputs: &[(&CudaStorage, &Layout)],
    outputs: usize,
) -> Result<CudaStorage> {
    let n = inputs
        .first()
        .map_or(0, |(_, layout)| layout.shape().elem_count());
    let views = views::<T>(kernel, inputs)?;
    if views.iter().any(|v| v.len() != n) {
        candle_core::bail!("{kernel}: the inputs differ in size");
    }
    let func = device.get_or_load_custom_func(kernel, "leafe_ops", OPS_PTX)?;
    // SAFETY: the kernel writes every one of the `outputs * n` elements.
    let out = unsafe { device.alloc::<T>(outputs * n)? };
    let mut builder = func.builder();
    for view in &views {
        builder.arg(view);
    }
    builder.arg(&out);
    let n64 = n as u64;
    builder.arg(&n64);
    // SAFETY: each input holds `n` elements and the output `outputs * n`,
    // as the kernel reads and writes them.
    unsafe { builder.launch(launch(n)) }.w()?;
    Ok(CudaStorage::wrap_cuda_slice(out, device.clone()))
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
