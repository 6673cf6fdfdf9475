//! AdamW with decoupled weight decay, a linear-warmup + cosine schedule and
//! global-norm gradient clipping. Our own, so its state (moments and step)
//! can be checkpointed and a run resumed exactly.

use anyhow::{Context, Result};
use candle_core::{Tensor, Var};
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

pub struct AdamW {
    cfg: AdamWConfig,
    /// (name, variable, first moment, second moment), sorted by name.
    slots: Vec<(String, Var, Tensor, Tensor)>,
    pub step: usize,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<AdamW> {
        let mut slots = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            let zeros = var.as_tensor().zeros_like()?;
            slots.push((name, var, zeros.clone(), zeros));
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
        self.slots.iter().map(|(n, v, _, _)| (n.as_str(), v))
    }

    /// One update with gradients given per variable (same order as [`AdamW::vars`]).
    pub fn apply(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let bias1 = 1.0 - beta1.powi(self.step as i32);
        let bias2 = 1.0 - beta2.powi(self.step as i32);
        for ((_, var, m, v), g) in self.slots.iter_mut().zip(grads) {
            let Some(g) = g else { continue };
            *m = ((&*m * beta1)? + (g * (1.0 - beta1))?)?;
            *v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let update = ((&*m / bias1)? / ((&*v / bias2)?.sqrt()? + eps)?)?;
            let decay = if var.rank() >= 2 { weight_decay } else { 0.0 };
            let theta = ((var.as_tensor() * (1.0 - lr * decay))? - (update * lr)?)?;
            var.set(&theta)?;
        }
        Ok(())
    }

    /// Save the moments as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for (name, _, m, v) in &self.slots {
            tensors.insert(format!("m.{name}"), m.clone());
            tensors.insert(format!("v.{name}"), v.clone());
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
        for (name, _, m, v) in &mut self.slots {
            *m = tensors
                .remove(&format!("m.{name}"))
                .with_context(|| format!("optimizer state lacks {name}"))?;
            *v = tensors
                .remove(&format!("v.{name}"))
                .with_context(|| format!("optimizer state lacks {name}"))?;
        }
        self.step = step;
        Ok(())
    }
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

/// Scale gradients so their global L2 norm is at most `max_norm`; returns
/// the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut total = 0.0f64;
    for g in grads.iter().flatten() {
        total += f64::from(
            g.sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_scalar::<f32>()?,
        );
    }
    let norm = total.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut().flatten() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
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
    fn adamw_moves_against_the_gradient_and_clipping_bounds_the_norm() {
        let dev = candle_core::Device::Cpu;
        let var = Var::from_tensor(&Tensor::new(&[[1.0f32, -1.0]], &dev).unwrap()).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], AdamWConfig::default()).unwrap();
        let mut grads = vec![Some(Tensor::new(&[[30.0f32, -40.0]], &dev).unwrap())];
        let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
        assert!((norm - 50.0).abs() < 1e-4);
        let clipped = clip_grad_norm(&mut grads.clone(), 0.0).unwrap();
        assert!((clipped - 1.0).abs() < 1e-3);
        opt.apply(&grads, 0.1).unwrap();
        let w = var.as_tensor().to_vec2::<f32>().unwrap();
        assert!(
            (w[0][0] - 0.9).abs() < 1e-4 && (w[0][1] + 0.9).abs() < 1e-4,
            "{w:?}"
        );
    }
}
