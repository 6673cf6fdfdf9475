//! `bench --ops`: where a training step's time goes. Each of the model's
//! ops is timed on its own at the step's shapes (forward and backward pass,
//! the device synchronised), and counted as often as one step runs it; what
//! the ops do not cover (residual sums, casts, the embedding, the
//! optimizer) is the step's time minus their sum.

use super::timing::best_seconds;
use crate::nn::config::ModelConfig;
use crate::nn::init::SeededRng;
use crate::nn::memory::TrainingStep;
use crate::nn::model::{Linear, Weight};
use crate::nn::ops::attention::causal_attention;
use crate::nn::ops::rms_norm::rms_norm;
use crate::nn::ops::rope::rotary;
use crate::nn::ops::swiglu::silu_mul;
use crate::nn::ops::target_log_probs::target_log_probs;
use anyhow::Result;
use candle_core::{DType, Device, Module, Tensor, Var};

/// One op's share of a training step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OpTime {
    pub op: &'static str,
    /// How many times one step runs it.
    pub calls: usize,
    /// Seconds per call, forward and backward.
    pub each_s: f64,
    pub per_step_s: f64,
}

/// The step's ops timed at the step's shapes, each the best of `reps`
/// calls after a warm-up.
pub fn op_times(
    cfg: &ModelConfig,
    step: TrainingStep,
    device: &Device,
    reps: usize,
) -> Result<Vec<OpTime>> {
    let (b, t, dtype) = (step.batch, step.seq, step.dtype);
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (nh, nkv, d) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim(),
    );
    let kv = nkv * d;
    let layers = cfg.num_hidden_layers;
    let mut rng = SeededRng::new(5);
    let mut var = |dims: &[usize], dtype: DType| -> Result<Var> {
        Ok(Var::from_tensor(
            &rng.normal_tensor(dims, 0.5, DType::F32, device)?
                .to_dtype(dtype)?,
        )?)
    };
    let mut out = Vec::new();
    let mut push = |op: &'static str, calls: usize, each_s: f64| {
        out.push(OpTime {
            op,
            calls,
            each_s,
            per_step_s: calls as f64 * each_s,
        })
    };

    // The residual stream is f32; the matmuls and what lies between them
    // run in the step's dtype.
    let (x, w) = (var(&[b, t, h], DType::F32)?, var(&[h], DType::F32)?);
    let eps = cfg.rms_norm_eps;
    push(
        "RMSNorm",
        2 * layers + 1,
        time(device, reps, || backward(&rms_norm(&x, &w, eps)?))?,
    );

    let (q, k, vv) = (
        var(&[b, nh, t, d], dtype)?,
        var(&[b, nkv, t, d], dtype)?,
        var(&[b, nkv, t, d], dtype)?,
    );
    let angles = (Tensor::arange(0u32, t as u32, device)?.to_dtype(DType::F32)? / 7.0)?
        .reshape((t, 1))?
        .broadcast_as((t, d))?
        .contiguous()?;
    let (cos, sin) = (
        angles.cos()?.to_dtype(dtype)?,
        angles.sin()?.to_dtype(dtype)?,
    );
    push(
        "rotary embeddings (q and k)",
        layers,
        time(device, reps, || {
            backward(&rotary(&q, &cos, &sin)?)?;
            backward(&rotary(&k, &cos, &sin)?)
        })?,
    );
    let scale = 1.0 / (d as f64).sqrt();
    push(
        "attention",
        layers,
        time(device, reps, || {
            backward(&causal_attention(&q, &k, &vv, 0, scale)?)
        })?,
    );

    let (gate, up) = (var(&[b, t, i], dtype)?, var(&[b, t, i], dtype)?);
    push(
        "silu(gate) * up",
        layers,
        time(device, reps, || backward(&silu_mul(&gate, &up)?))?,
    );

    let input = var(&[b, t, h], dtype)?;
    let wide = var(&[b, t, i], dtype)?;
    let linear = |out: usize, inp: usize, bias: bool| -> Result<Linear> {
        let mut rng = SeededRng::new((out * 31 + inp) as u64);
        let mut make = |dims: &[usize]| -> Result<Tensor> {
            let t = rng
                .normal_tensor(dims, 0.02, DType::F32, device)?
                .to_dtype(dtype)?;
            Ok(Var::from_tensor(&t)?.as_tensor().clone())
        };
        Ok(Linear {
            weight: Weight::Dense(make(&[out, inp])?),
            bias: if bias { Some(make(&[out])?) } else { None },
            lora: None,
        })
    };
    let bias = cfg.attention_bias;
    let into_hidden = [
        linear(h, h, bias)?,
        linear(kv, h, bias)?,
        linear(kv, h, bias)?,
        linear(h, h, false)?,
        linear(i, h, false)?,
        linear(i, h, false)?,
    ];
    let down = linear(h, i, false)?;
    push(
        "linear projections (7 per layer)",
        layers,
        time(device, reps, || {
            for lin in &into_hidden {
                backward(&lin.forward(&input)?)?;
            }
            backward(&down.forward(&wide)?)
        })?,
    );

    let hidden = var(&[b * t, h], dtype)?;
    let head = var(&[v, h], dtype)?;
    let targets: Vec<u32> = (0..b * t).map(|j| (j * 7919 % v) as u32).collect();
    let targets = Tensor::new(targets, device)?;
    push(
        "loss (vocabulary projection)",
        1,
        time(device, reps, || {
            backward(&target_log_probs(&hidden, &head, &targets)?)
        })?,
    );
    Ok(out)
}

/// Back-propagate the sum of `out` (the gradients are dropped).
fn backward(out: &Tensor) -> candle_core::Result<()> {
    out.sum_all()?.backward().map(drop)
}

/// The best seconds of `reps` calls of `f` after one warm-up call.
fn time(device: &Device, reps: usize, f: impl Fn() -> candle_core::Result<()>) -> Result<f64> {
    f()?;
    best_seconds(device, reps, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_of_a_step_is_timed_as_often_as_the_step_runs_it() {
        let cfg = crate::jobs::tiny::tiny_config();
        let step = TrainingStep {
            batch: 2,
            seq: 16,
            dtype: DType::F32,
            recompute: false,
        };
        let times = op_times(&cfg, step, &Device::Cpu, 1).unwrap();
        let layers = cfg.num_hidden_layers;
        let calls: Vec<(&str, usize)> = times.iter().map(|t| (t.op, t.calls)).collect();
        assert_eq!(
            calls,
            [
                ("RMSNorm", 2 * layers + 1),
                ("rotary embeddings (q and k)", layers),
                ("attention", layers),
                ("silu(gate) * up", layers),
                ("linear projections (7 per layer)", layers),
                ("loss (vocabulary projection)", 1),
            ]
        );
        for t in &times {
            assert!(
                t.each_s > 0.0 && t.per_step_s == t.each_s * t.calls as f64,
                "{t:?}"
            );
        }
    }
}
