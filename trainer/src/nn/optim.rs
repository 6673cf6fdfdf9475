//! AdamW with decoupled weight decay, a linear-warmup + cosine schedule and
//! global-norm gradient clipping. Our own, so its state (moments and step)
//! can be checkpointed and a run resumed exactly.

use crate::nn::cuda::AdamWStep;
use anyhow::{Context, Result, bail};
use candle_core::{DType, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

/// Hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Applied to matrices only (not to norms and biases), as usual.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The moments of one variable: plain vectors on the CPU (updated in one
/// fused pass), tensors on other devices.
enum Moments {
    Cpu(Vec<f32>, Vec<f32>),
    Device(Tensor, Tensor),
}

pub struct AdamW {
    cfg: AdamWConfig,
    /// (name, variable, moments), sorted by name.
    slots: Vec<(String, Var, Moments)>,
    pub step: usize,
}

fn fused_cpu(var: &Var) -> bool {
    var.device().is_cpu() && var.dtype() == DType::F32
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<AdamW> {
        let mut slots = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            let moments = if fused_cpu(&var) {
                Moments::Cpu(vec![0.0; var.elem_count()], vec![0.0; var.elem_count()])
            } else {
                let zeros = var.as_tensor().zeros_like()?;
                Moments::Device(zeros.clone(), zeros)
            };
            slots.push((name, var, moments));
        }
        slots.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(AdamW {
            cfg,
            slots,
            step: 0,
        })
    }

    /// The variables, in a fixed order.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.slots.iter().map(|(n, v, _)| (n.as_str(), v))
    }

    /// Clip the gradients (given per variable, in the order of
    /// [`AdamW::vars`]) to a global norm of `max_grad_norm` (0: no clipping)
    /// and take one step. Returns the norm before clipping.
    ///
    /// Off the CPU the norm and the clipping factor stay on the device: the
    /// host waits once per step, for the norm it returns, after every update
    /// has been queued (not once per variable).
    pub fn apply(&mut self, grads: &[Option<Tensor>], lr: f64, max_grad_norm: f64) -> Result<f64> {
        let norm = self.update(grads, 1.0, lr, max_grad_norm, false)?;
        norm.context("an update that does not check for overflow always happens")
    }

    /// [`AdamW::apply`] for gradients multiplied by `scale` (f16 training's
    /// loss scaling): they are divided by it on the way (folded into the
    /// clipping factor, no extra pass), unless they overflowed — a norm
    /// that is not finite — in which case nothing is updated and `None` is
    /// returned, the step still counted (as PyTorch's schedulers count a
    /// step its GradScaler skipped). The host reads the norm before any
    /// update, as PyTorch's GradScaler does.
    pub fn apply_scaled(
        &mut self,
        grads: &[Option<Tensor>],
        scale: f64,
        lr: f64,
        max_grad_norm: f64,
    ) -> Result<Option<f64>> {
        self.update(grads, scale, lr, max_grad_norm, true)
    }

    fn update(
        &mut self,
        grads: &[Option<Tensor>],
        scale: f64,
        lr: f64,
        max_grad_norm: f64,
        skip_overflow: bool,
    ) -> Result<Option<f64>> {
        // Which gradients take the fused in-place CPU path; the others'
        // sums of squares stay on their device.
        let mut fused: Vec<bool> = Vec::with_capacity(grads.len());
        let mut host_sum = 0.0f64;
        let mut device_sums = Vec::new();
        for ((_, var, _), g) in self.slots.iter().zip(grads) {
            let takes_fused = matches!(g, Some(g) if fused_cpu(var) && g.dtype() == DType::F32);
            match g {
                Some(g) if takes_fused => {
                    host_sum += f64::from(g.apply_op1_no_bwd(&SumOfSquares)?.to_scalar::<f32>()?);
                }
                Some(g) => device_sums.push(g.sqr()?.sum_all()?.to_dtype(DType::F32)?),
                None => {}
            }
            fused.push(takes_fused);
        }
        // The norm of the unscaled gradients.
        let norm = match device_sums.is_empty() {
            true => Norm::Host(host_sum.sqrt() / scale),
            // The fused CPU updates, and the overflow check, need it on the host.
            false if skip_overflow || fused.iter().any(|f| *f) => {
                let device_sum = Tensor::stack(&device_sums, 0)?.sum_all()?;
                Norm::Host((host_sum + f64::from(device_sum.to_scalar::<f32>()?)).sqrt() / scale)
            }
            false => Norm::Device(
                ((Tensor::stack(&device_sums, 0)?.sum_all()? + host_sum)?.sqrt()? / scale)?,
            ),
        };
        if let Norm::Host(n) = norm
            && skip_overflow
            && !n.is_finite()
        {
            self.step += 1;
            return Ok(None);
        }
        // As PyTorch's clip_grad_norm_: min(1, max / (norm + 1e-6)), times
        // 1 / scale to unscale the gradients in the same multiplication.
        let clip = match &norm {
            _ if max_grad_norm <= 0.0 => Clip::Host(1.0 / scale),
            Norm::Host(n) => Clip::Host((max_grad_norm / (n + 1e-6)).min(1.0) / scale),
            Norm::Device(n) => {
                Clip::Device((((n + 1e-6)?.recip()? * max_grad_norm)?.minimum(1.0)? / scale)?)
            }
        };
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let bias1 = 1.0 - beta1.powi(self.step as i32);
        let bias2 = 1.0 - beta2.powi(self.step as i32);
        let mut host_clip_on_device: Option<Tensor> = None;
        for (((_, var, moments), g), fused) in self.slots.iter_mut().zip(grads).zip(fused) {
            let Some(g) = g else { continue };
            let c = Coefficients {
                beta1,
                beta2,
                eps,
                bias1,
                bias2,
                lr,
                decay: if var.rank() >= 2 { weight_decay } else { 0.0 },
            };
            match moments {
                Moments::Cpu(m, v) if fused => {
                    let Clip::Host(clip) = clip else {
                        bail!("the fused CPU update needs the clipping factor on the host")
                    };
                    // Updates the variable's own storage: no copies of weights or gradients.
                    let op = InPlaceAdamW {
                        moments: std::cell::RefCell::new((m, v)),
                        step: c.f32_step(),
                        clip,
                    };
                    var.as_tensor().inplace_op2(g, &op)?;
                }
                Moments::Cpu(..) => bail!("a gradient of the wrong dtype for a CPU variable"),
                Moments::Device(m, v)
                    if crate::nn::cuda::adamw_applies(var.as_tensor(), g)
                        && cuda_adamw_verified(var.device()) =>
                {
                    let clip = match &clip {
                        Clip::Device(c) => c.clone(),
                        // Copied to the device once per step, not per variable.
                        Clip::Host(c) => match &host_clip_on_device {
                            Some(t) => t.clone(),
                            None => {
                                let t = Tensor::new(*c as f32, var.device())?;
                                host_clip_on_device = Some(t.clone());
                                t
                            }
                        },
                    };
                    crate::nn::cuda::adamw(
                        var.as_tensor(),
                        &g.contiguous()?,
                        m,
                        v,
                        &clip,
                        c.f32_step(),
                    )?;
                }
                Moments::Device(m, v) => {
                    let [theta, new_m, new_v] = tensor_update(var.as_tensor(), g, m, v, &clip, &c)?;
                    (*m, *v) = (new_m, new_v);
                    var.set(&theta)?;
                }
            }
        }
        Ok(Some(match norm {
            Norm::Host(n) => n,
            Norm::Device(n) => f64::from(n.to_scalar::<f32>()?),
        }))
    }

    /// Save the moments as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for (name, var, moments) in &self.slots {
            let (m, v) = match moments {
                Moments::Cpu(m, v) => (
                    Tensor::from_slice(m, var.shape(), var.device())?,
                    Tensor::from_slice(v, var.shape(), var.device())?,
                ),
                Moments::Device(m, v) => (m.clone(), v.clone()),
            };
            tensors.insert(format!("m.{name}"), m);
            tensors.insert(format!("v.{name}"), v);
        }
        candle_core::safetensors::save(&tensors, path)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Restore the moments saved by [`AdamW::save`] and the step count.
    pub fn load(&mut self, path: &Path, step: usize) -> Result<()> {
        let device = self
            .slots
            .first()
            .map(|s| s.1.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let mut tensors = candle_core::safetensors::load(path, &device)
            .with_context(|| format!("cannot read optimizer state {}", path.display()))?;
        for (name, _, moments) in &mut self.slots {
            let m = tensors
                .remove(&format!("m.{name}"))
                .with_context(|| format!("optimizer state lacks {name}"))?;
            let v = tensors
                .remove(&format!("v.{name}"))
                .with_context(|| format!("optimizer state lacks {name}"))?;
            *moments = match moments {
                Moments::Cpu(..) => {
                    Moments::Cpu(m.flatten_all()?.to_vec1()?, v.flatten_all()?.to_vec1()?)
                }
                Moments::Device(..) => Moments::Device(m, v),
            };
        }
        self.step = step;
        Ok(())
    }
}

/// The global gradient norm, where it was computed.
enum Norm {
    Host(f64),
    /// An f32 scalar on the variables' device.
    Device(Tensor),
}

/// The factor the gradients are scaled by, where it lives.
enum Clip {
    Host(f64),
    Device(Tensor),
}

/// The fused AdamW update applied in place to a CPU f32 variable.
struct InPlaceAdamW<'a> {
    moments: std::cell::RefCell<(&'a mut Vec<f32>, &'a mut Vec<f32>)>,
    step: AdamWStep,
    clip: f64,
}

fn contiguous<'a, T>(
    data: &'a [T],
    layout: &candle_core::Layout,
    what: &str,
) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{what} is not contiguous"),
    }
}

impl candle_core::InplaceOp2 for InPlaceAdamW<'_> {
    fn name(&self) -> &'static str {
        "adamw-in-place"
    }

    fn cpu_fwd(
        &self,
        s1: &mut candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        use candle_core::CpuStorage::F32;
        let (F32(theta), F32(g)) = (s1, s2) else {
            candle_core::bail!("the fused AdamW step needs f32 weights and gradients")
        };
        let Some((start, end)) = l1.contiguous_offsets() else {
            candle_core::bail!("the weights are not contiguous")
        };
        let g = contiguous(g, l2, "the gradient")?;
        let mut moments = self.moments.borrow_mut();
        let (m, v) = &mut *moments;
        if g.len() != end - start || m.len() != g.len() {
            candle_core::bail!("the gradient does not match the weights");
        }
        update_parallel(&mut theta[start..end], m, v, g, &self.step, self.clip);
        Ok(())
    }
}

/// The sum of the squares of an f32 tensor, in one read.
struct SumOfSquares;

impl candle_core::CustomOp1 for SumOfSquares {
    fn name(&self) -> &'static str {
        "sum-of-squares"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let candle_core::CpuStorage::F32(data) = s else {
            candle_core::bail!("sum-of-squares needs f32")
        };
        let data = contiguous(data, l, "the gradient")?;
        let sum: f64 = data.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
        Ok((
            candle_core::CpuStorage::F32(vec![sum as f32]),
            candle_core::Shape::from(()),
        ))
    }
}

/// One variable's AdamW constants at one step.
#[derive(Clone, Copy)]
struct Coefficients {
    beta1: f64,
    beta2: f64,
    eps: f64,
    bias1: f64,
    bias2: f64,
    lr: f64,
    decay: f64,
}

impl Coefficients {
    /// In f32, as the fused CPU loop ([`update`]) and the CUDA kernel take
    /// them.
    fn f32_step(&self) -> AdamWStep {
        AdamWStep {
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            inv_bias1: (1.0 / self.bias1) as f32,
            inv_bias2: (1.0 / self.bias2) as f32,
            lr: self.lr as f32,
            eps: self.eps as f32,
            keep: (1.0 - self.lr * self.decay) as f32,
        }
    }
}

/// The AdamW update of one variable with candle's tensor ops (any device,
/// any dtype): the new weights and moments.
fn tensor_update(
    theta: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    clip: &Clip,
    c: &Coefficients,
) -> candle_core::Result<[Tensor; 3]> {
    let g = match clip {
        Clip::Host(c) if *c == 1.0 => g.clone(),
        Clip::Host(c) => (g * *c)?,
        Clip::Device(c) => g.broadcast_mul(&c.to_dtype(g.dtype())?)?,
    };
    let m = ((m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
    let v = ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
    let update = ((&m / c.bias1)? / ((&v / c.bias2)?.sqrt()? + c.eps)?)?;
    let theta = ((theta * (1.0 - c.lr * c.decay))? - (update * c.lr)?)?;
    Ok([theta, m, v])
}

/// Whether the CUDA AdamW kernel gives what [`tensor_update`] gives on
/// this GPU, checked once per process on random values (the kernel cannot
/// be tested where no GPU is, so it is tested where it runs). On a
/// disagreement the tensor ops are used, with a warning.
fn cuda_adamw_verified(device: &candle_core::Device) -> bool {
    static VERIFIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    crate::nn::cuda::verified(&VERIFIED, "adamw", || {
        Ok(cuda_adamw_difference(device)? / 1e-5)
    })
}

/// The largest difference between the kernel's and the tensor ops' new
/// weights and moments, for one step with non-trivial moments, clipping
/// and weight decay.
fn cuda_adamw_difference(device: &candle_core::Device) -> candle_core::Result<f64> {
    let mut rng = crate::nn::init::SeededRng::new(11);
    let n = 4099; // not a multiple of a block
    let mut random = |std: f64| rng.normal_tensor(&[n], std, DType::F32, device);
    let (theta, g, m) = (random(1.0)?, random(0.1)?, random(0.01)?);
    let v = random(0.01)?.sqr()?;
    let clip = Tensor::new(0.7f32, device)?;
    let c = Coefficients {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        bias1: 1.0 - 0.9f64.powi(3),
        bias2: 1.0 - 0.999f64.powi(3),
        lr: 1e-2,
        decay: 0.1,
    };
    let expected = tensor_update(&theta, &g, &m, &v, &Clip::Device(clip.clone()), &c)?;
    let (theta, m, v) = (theta.copy()?, m.copy()?, v.copy()?);
    crate::nn::cuda::adamw(&theta, &g, &m, &v, &clip, c.f32_step())?;
    let mut worst = 0f64;
    for (a, b) in [theta, m, v].iter().zip(&expected) {
        let diff = (a - b)?.abs()?.max(0)?.to_scalar::<f32>()?;
        worst = worst.max(f64::from(diff));
    }
    Ok(worst)
}

/// The AdamW update of one variable in one pass over memory.
fn update(theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &AdamWStep, clip: f64) {
    let AdamWStep {
        beta1: b1,
        beta2: b2,
        inv_bias1: inv1,
        inv_bias2: inv2,
        lr,
        eps,
        keep,
    } = *c;
    let clip = clip as f32;
    for i in 0..theta.len() {
        let gi = g[i] * clip;
        m[i] = b1 * m[i] + (1.0 - b1) * gi;
        v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
        theta[i] = theta[i] * keep - lr * (m[i] * inv1) / ((v[i] * inv2).sqrt() + eps);
    }
}

/// [`update`] split over the cores for large variables.
fn update_parallel(
    theta: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    c: &AdamWStep,
    clip: f64,
) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if threads == 1 || theta.len() < 1 << 16 {
        return update(theta, m, v, g, c, clip);
    }
    let chunk = theta.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (((t, m), v), g) in theta
            .chunks_mut(chunk)
            .zip(m.chunks_mut(chunk))
            .zip(v.chunks_mut(chunk))
            .zip(g.chunks(chunk))
        {
            s.spawn(move || update(t, m, v, g, c, clip));
        }
    });
}

/// Linear warmup to `peak`, then cosine decay to `peak * min_ratio` at `total`.
pub fn learning_rate(step: usize, total: usize, warmup: usize, peak: f64, min_ratio: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (min_ratio + (1.0 - min_ratio) * cosine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let lr = |s| learning_rate(s, 100, 10, 1.0, 0.1);
        assert!((lr(0) - 0.1).abs() < 1e-12);
        assert!((lr(9) - 1.0).abs() < 1e-12);
        assert!((lr(10) - 1.0).abs() < 1e-12);
        assert!((lr(55) - 0.55).abs() < 1e-9);
        assert!((lr(100) - 0.1).abs() < 1e-12);
        assert!(lr(30) > lr(60));
    }

    #[test]
    fn adamw_clips_and_moves_against_the_gradient_on_cpu_and_the_generic_path_agrees() {
        let dev = candle_core::Device::Cpu;
        // Two steps; returns the weights and the first step's norm.
        let run = |dtype: DType, max_grad_norm: f64| {
            let tensor = |v: [f32; 2]| Tensor::new(&[v], &dev).unwrap().to_dtype(dtype).unwrap();
            let var = Var::from_tensor(&tensor([1.0, -1.0])).unwrap();
            let mut opt =
                AdamW::new(vec![("w".into(), var.clone())], AdamWConfig::default()).unwrap();
            let grads = vec![Some(tensor([30.0, -40.0]))];
            let norm = opt.apply(&grads, 0.1, max_grad_norm).unwrap();
            opt.apply(&grads, 0.1, max_grad_norm).unwrap();
            let w = var
                .as_tensor()
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            (w[0].clone(), norm)
        };
        // f32 takes the fused CPU path, f64 the tensor path (the one other
        // devices take, norm and clipping factor on the device): the same
        // numbers, clipped (norm 50 > 1), not clipped (50 < 100) or unclipped (0).
        for max in [1.0, 100.0, 0.0] {
            let ((fused, fused_norm), (generic, generic_norm)) =
                (run(DType::F32, max), run(DType::F64, max));
            assert!((fused_norm - 50.0).abs() < 1e-3 && (generic_norm - 50.0).abs() < 1e-3);
            // Adam's first steps move each weight by ~lr whatever the scale.
            assert!(
                (fused[0] - 0.8).abs() < 1e-4 && (fused[1] + 0.8).abs() < 1e-4,
                "{fused:?}"
            );
            for (a, b) in fused.iter().zip(&generic) {
                assert!((a - b).abs() < 1e-5, "max {max}: {fused:?} vs {generic:?}");
            }
        }
    }

    /// One AdamW step (eps = 1, lr = 1) of weights `w` from gradient `g`,
    /// given multiplied by `scale`: the norm (None on overflow), the new
    /// weights and the step count.
    fn one_step(
        dtype: DType,
        w: &[f32],
        g: &[f32],
        scale: f64,
        max_grad_norm: f64,
    ) -> (Option<f64>, Vec<f32>, usize) {
        let dev = candle_core::Device::Cpu;
        let tensor = |v: &[f32]| Tensor::new(v, &dev).unwrap().to_dtype(dtype).unwrap();
        let var = Var::from_tensor(&tensor(w)).unwrap();
        let config = AdamWConfig {
            eps: 1.0,
            ..AdamWConfig::default()
        };
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], config).unwrap();
        let norm = opt
            .apply_scaled(&[Some(tensor(g))], scale, 1.0, max_grad_norm)
            .unwrap();
        let w = var.as_tensor().to_dtype(DType::F32).unwrap();
        (norm, w.to_vec1::<f32>().unwrap(), opt.step)
    }

    /// Clipping scales the gradient before the moments see it. Adam's step
    /// hardly depends on the gradient's scale, except through epsilon: with
    /// eps = 1 the step shows whether the gradient was clipped (2/3 if
    /// clipped to 2, 4/5 if not).
    #[test]
    fn clipping_scales_the_gradient_on_both_paths() {
        for dtype in [DType::F32, DType::F64] {
            let (_, w, _) = one_step(dtype, &[3.0], &[4.0], 1.0, 2.0);
            // Clipped to 2: m = 0.2, v = 0.004; bias-corrected 2 and 4; step 2 / (2 + 1).
            assert!((w[0] - (3.0 - 2.0 / 3.0)).abs() < 1e-4, "{dtype:?}: {w:?}");
        }
    }

    /// Scaled gradients (f16's loss scaling) give the step of the unscaled
    /// ones, on both paths (eps = 1 makes the step see the gradient's size);
    /// an overflowed gradient updates nothing, counts the step and says so.
    #[test]
    fn scaled_gradients_are_unscaled_and_an_overflow_skips_the_step() {
        for dtype in [DType::F32, DType::F64] {
            let run = |grad: f32, scale: f64, max_grad_norm: f64| {
                one_step(
                    dtype,
                    &[3.0, -1.0],
                    &[grad, -grad / 2.0],
                    scale,
                    max_grad_norm,
                )
            };
            for max_grad_norm in [0.0, 1.0] {
                let (plain_norm, plain, _) = run(4.0, 1.0, max_grad_norm);
                let (norm, scaled, step) = run(4.0 * 1024.0, 1024.0, max_grad_norm);
                assert_eq!(step, 1);
                let (a, b) = (plain_norm.unwrap(), norm.unwrap());
                assert!((a - b).abs() < 1e-6 * a, "{dtype:?}: norm {a} vs {b}");
                for (x, y) in plain.iter().zip(&scaled) {
                    assert!((x - y).abs() < 1e-5, "{dtype:?}: {plain:?} vs {scaled:?}");
                }
                // The scale matters: unscaled, the same gradient is another step.
                let (_, unscaled, _) = run(4.0 * 1024.0, 1.0, max_grad_norm);
                assert!((unscaled[0] - scaled[0]).abs() > 1e-3 || max_grad_norm > 0.0);
            }
            let (norm, w, step) = run(f32::INFINITY, 1024.0, 1.0);
            assert_eq!((norm, step), (None, 1));
            assert_eq!(w, vec![3.0, -1.0]);
        }
    }
}
