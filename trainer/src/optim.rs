//! AdamW with decoupled weight decay, a linear-warmup + cosine schedule and
//! global-norm gradient clipping. Our own, so its state (moments and step)
//! can be checkpointed and a run resumed exactly.

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
    pub fn apply(&mut self, grads: &[Option<Tensor>], lr: f64, max_grad_norm: f64) -> Result<f64> {
        // Which gradients take the fused in-place CPU path.
        let mut flat: Vec<Option<()>> = Vec::with_capacity(grads.len());
        let mut total = 0.0f64;
        for ((_, var, _), g) in self.slots.iter().zip(grads) {
            match g {
                Some(g) if fused_cpu(var) && g.dtype() == DType::F32 => {
                    total += f64::from(g.apply_op1_no_bwd(&SumOfSquares)?.to_scalar::<f32>()?);
                    flat.push(Some(()));
                }
                Some(g) => {
                    total += f64::from(
                        g.sqr()?
                            .sum_all()?
                            .to_dtype(DType::F32)?
                            .to_scalar::<f32>()?,
                    );
                    flat.push(None);
                }
                None => flat.push(None),
            }
        }
        let norm = total.sqrt();
        let clip = if max_grad_norm > 0.0 && norm > max_grad_norm {
            max_grad_norm / (norm + 1e-6)
        } else {
            1.0
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
        for (((_, var, moments), g), flat) in self.slots.iter_mut().zip(grads).zip(flat) {
            let Some(g) = g else { continue };
            let decay = if var.rank() >= 2 { weight_decay } else { 0.0 };
            match moments {
                Moments::Cpu(m, v) if flat.is_some() => {
                    let c = Coefficients {
                        beta1,
                        beta2,
                        eps,
                        bias1,
                        bias2,
                        lr,
                        decay,
                        clip,
                    };
                    // Updates the variable's own storage: no copies of weights or gradients.
                    let op = InPlaceAdamW {
                        moments: std::cell::RefCell::new((m, v)),
                        c,
                    };
                    var.as_tensor().inplace_op2(g, &op)?;
                }
                Moments::Cpu(..) => bail!("a gradient of the wrong dtype for a CPU variable"),
                Moments::Device(m, v) => {
                    let g = (g * clip)?;
                    *m = ((&*m * beta1)? + (&g * (1.0 - beta1))?)?;
                    *v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                    let update = ((&*m / bias1)? / ((&*v / bias2)?.sqrt()? + eps)?)?;
                    let theta = ((var.as_tensor() * (1.0 - lr * decay))? - (update * lr)?)?;
                    var.set(&theta)?;
                }
            }
        }
        Ok(norm)
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

/// The fused AdamW update applied in place to a CPU f32 variable.
struct InPlaceAdamW<'a> {
    moments: std::cell::RefCell<(&'a mut Vec<f32>, &'a mut Vec<f32>)>,
    c: Coefficients,
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
        update_parallel(&mut theta[start..end], m, v, g, &self.c);
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

struct Coefficients {
    beta1: f64,
    beta2: f64,
    eps: f64,
    bias1: f64,
    bias2: f64,
    lr: f64,
    decay: f64,
    clip: f64,
}

/// The AdamW update of one variable in one pass over memory.
fn update(theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &Coefficients) {
    let (b1, b2) = (c.beta1 as f32, c.beta2 as f32);
    let (inv1, inv2) = ((1.0 / c.bias1) as f32, (1.0 / c.bias2) as f32);
    let (lr, eps, clip) = (c.lr as f32, c.eps as f32, c.clip as f32);
    let keep = (1.0 - c.lr * c.decay) as f32;
    for i in 0..theta.len() {
        let gi = g[i] * clip;
        m[i] = b1 * m[i] + (1.0 - b1) * gi;
        v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
        theta[i] = theta[i] * keep - lr * (m[i] * inv1) / ((v[i] * inv2).sqrt() + eps);
    }
}

/// [`update`] split over the cores for large variables.
fn update_parallel(theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &Coefficients) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if threads == 1 || theta.len() < 1 << 16 {
        return update(theta, m, v, g, c);
    }
    let chunk = theta.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (((t, m), v), g) in theta
            .chunks_mut(chunk)
            .zip(m.chunks_mut(chunk))
            .zip(v.chunks_mut(chunk))
            .zip(g.chunks(chunk))
        {
            s.spawn(move || update(t, m, v, g, c));
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
        let run = |dtype: DType| {
            let var = Var::from_tensor(
                &Tensor::new(&[[1.0f32, -1.0]], &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            )
            .unwrap();
            let mut opt =
                AdamW::new(vec![("w".into(), var.clone())], AdamWConfig::default()).unwrap();
            let grads = vec![Some(
                Tensor::new(&[[30.0f32, -40.0]], &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap(),
            )];
            let norm = opt.apply(&grads, 0.1, 1.0).unwrap();
            assert!((norm - 50.0).abs() < 1e-3);
            opt.apply(&grads, 0.1, 1.0).unwrap();
            var.as_tensor()
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
        };
        // f32 takes the fused CPU path, f64 the tensor path: the same numbers.
        let (fused, generic) = (run(DType::F32), run(DType::F64));
        assert!(
            (fused[0][0] - 0.8).abs() < 1e-4 && (fused[0][1] + 0.8).abs() < 1e-4,
            "{fused:?}"
        );
        for (a, b) in fused[0].iter().zip(&generic[0]) {
            assert!((a - b).abs() < 1e-5, "{fused:?} vs {generic:?}");
        }
    }
}
