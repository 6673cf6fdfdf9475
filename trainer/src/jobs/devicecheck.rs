//! `leafe-trainer check-device`: the trainer's own ops and a training step
//! computed on the CPU and on another device from the same inputs, and the
//! largest difference of each. What a GPU visit runs first: the tests only
//! ever see a CPU.

use crate::nn::init::SeededRng;
use crate::nn::model::{KvBatch, Model};
use crate::nn::ops::attention::causal_attention;
use crate::nn::ops::target_log_probs::target_log_probs;
use crate::nn::optim::{AdamW, AdamWConfig};
use crate::nn::params::init_params;
use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};

/// One computation's largest difference between the two devices.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Agreement {
    pub what: String,
    pub max_abs_diff: f64,
    pub tolerance: f64,
}

impl Agreement {
    pub fn holds(&self) -> bool {
        self.max_abs_diff <= self.tolerance
    }
}

/// The largest |a - b| (both read back as f32).
fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    let cpu = Device::Cpu;
    let a = a.to_device(&cpu)?.to_dtype(DType::F32)?.flatten_all()?;
    let b = b.to_device(&cpu)?.to_dtype(DType::F32)?.flatten_all()?;
    Ok(f64::from((a - b)?.abs()?.max(0)?.to_scalar::<f32>()?))
}

/// Random inputs made on the CPU, so both devices get the same numbers.
fn random(rng: &mut SeededRng, dims: &[usize], device: &Device) -> Result<Tensor> {
    Ok(rng
        .normal_tensor(dims, 1.0, DType::F32, &Device::Cpu)?
        .to_device(device)?)
}

/// An op's output on random inputs of `shapes` (in `dtype`), and the
/// gradient of each input (of the output weighted by fixed random numbers).
fn with_gradients(
    device: &Device,
    dtype: DType,
    shapes: &[&[usize]],
    op: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) -> Result<Vec<Tensor>> {
    let mut rng = SeededRng::new(13);
    let inputs: Vec<Var> = shapes
        .iter()
        .map(|dims| {
            Ok(Var::from_tensor(
                &random(&mut rng, dims, device)?.to_dtype(dtype)?,
            )?)
        })
        .collect::<Result<_>>()?;
    let tensors: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let out = op(&tensors)?;
    let weights = random(&mut rng, out.dims(), device)?.to_dtype(out.dtype())?;
    let grads = (&out * &weights)?.sum_all()?.backward()?;
    let mut all = vec![out];
    for input in &inputs {
        all.push(
            grads
                .get(input.as_tensor())
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no gradient"))?,
        );
    }
    Ok(all)
}

/// Attention's output and its gradients for q, k and v.
fn attention(device: &Device, dtype: DType, start: usize) -> Result<Vec<Tensor>> {
    let (b, heads, kv_heads, t, d) = (2, 4, 2, 33, 16);
    let shapes: [&[usize]; 3] = [
        &[b, heads, t, d],
        &[b, kv_heads, start + t, d],
        &[b, kv_heads, start + t, d],
    ];
    with_gradients(device, dtype, &shapes, |x| {
        causal_attention(&x[0], &x[1], &x[2], start, 0.25)
    })
}

/// RMSNorm, rotary embeddings and the gated MLP's product, with gradients.
fn small_ops(device: &Device) -> Result<Vec<(&'static str, Vec<Tensor>)>> {
    let f32 = DType::F32;
    Ok(vec![
        (
            "rms norm",
            with_gradients(device, f32, &[&[3, 5, 16], &[16]], |t| {
                crate::nn::ops::rms_norm::rms_norm(&t[0], &t[1], 1e-6)
            })?,
        ),
        (
            "rotary embedding",
            with_gradients(device, f32, &[&[2, 3, 5, 8]], |t| {
                let angles = (Tensor::arange(0u32, 40, t[0].device())?
                    .to_dtype(DType::F32)?
                    .reshape((5, 8))?
                    * 0.1)?;
                crate::nn::ops::rope::rotary(&t[0], &angles.cos()?, &angles.sin()?)
            })?,
        ),
        (
            "silu(gate) * up",
            with_gradients(device, f32, &[&[4, 6, 10], &[4, 6, 10]], |t| {
                crate::nn::ops::swiglu::silu_mul(&t[0], &t[1])
            })?,
        ),
    ])
}

/// The loss op's log-probabilities and its gradients for hidden and weight.
fn loss_op(device: &Device) -> Result<Vec<Tensor>> {
    let (rows, h, vocab) = (37, 16, 1000);
    with_gradients(device, DType::F32, &[&[rows, h], &[vocab, h]], |t| {
        let targets: Vec<u32> = (0..rows).map(|i| (i * 97 % vocab) as u32).collect();
        target_log_probs(&t[0], &t[1], &Tensor::new(targets, t[0].device())?)
    })
}

/// Three training steps of a tiny random model (three, so that AdamW's
/// moments and bias corrections matter: its first step is about `lr *
/// sign(grad)`): the first loss, the last gradient norm and every weight
/// after the last AdamW update.
fn training_steps(
    device: &Device,
    dtype: DType,
    recompute: bool,
) -> Result<(f64, f64, Vec<Tensor>)> {
    let cfg = crate::jobs::tiny::tiny_config();
    let params = init_params(&cfg, 3, DType::F32, device)?;
    let (batch, seq) = (2, 24);
    let ids: Vec<u32> = (0..batch * (seq + 1))
        .map(|i| (i * 31 % cfg.vocab_size) as u32)
        .collect();
    let all = Tensor::from_vec(ids, (batch, seq + 1), device)?;
    let inputs = all.narrow(1, 0, seq)?.contiguous()?;
    let targets = all.narrow(1, 1, seq)?.flatten_all()?;
    let rows = Tensor::arange(0u32, (batch * seq) as u32, device)?;
    let mut opt = AdamW::new(
        crate::nn::params::named_vars(&params),
        AdamWConfig::default(),
    )?;
    let (mut first_loss, mut norm) = (None, 0.0);
    for _ in 0..3 {
        let model = Model::for_training(&cfg, &params, None, dtype)?.with_recomputation(recompute);
        let loss = (model
            .target_log_probs(&inputs, &rows, &targets)?
            .sum_all()?
            .neg()?
            / (batch * seq) as f64)?;
        first_loss.get_or_insert(f64::from(loss.to_scalar::<f32>()?));
        // f16 trains with a scaled loss, as `sft --dtype f16` does.
        let scale = if dtype == DType::F16 { 1024.0 } else { 1.0 };
        let grads = model.backward(&(loss * scale)?)?;
        let grads: Vec<Option<Tensor>> = opt
            .vars()
            .map(|(_, v)| grads.get(v.as_tensor()).cloned())
            .collect();
        // A clipping bound below the norm, so that clipping is exercised.
        norm = opt
            .apply_scaled(&grads, scale, 1e-3, 0.5)?
            .ok_or_else(|| candle_core::Error::Msg("the gradients overflowed".into()))?;
    }
    let weights = opt.vars().map(|(_, v)| v.as_tensor().clone()).collect();
    Ok((first_loss.unwrap_or_default(), norm, weights))
}

/// Next-token logits of three sequences decoded together after their prompts.
fn decoding(device: &Device) -> Result<Tensor> {
    let cfg = crate::jobs::tiny::tiny_config();
    let params = init_params(&cfg, 4, DType::F32, device)?;
    let model = Model::frozen(&cfg, &params)?;
    let prompts: Vec<Vec<u32>> = [5u32, 9, 2]
        .iter()
        .map(|&len| (0..len).map(|i| (i * 7 + len) % 50).collect())
        .collect();
    let prompts: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let (_, caches) = model.prefill_batch(&prompts)?;
    let mut batch = KvBatch::new();
    for cache in caches {
        batch.push(cache)?;
    }
    model.decode_batch(&[1, 2, 3], &mut batch)?;
    Ok(model.decode_batch(&[4, 5, 6], &mut batch)?)
}

/// Every check, `device` against the CPU.
pub fn compare(device: &Device) -> Result<Vec<Agreement>> {
    let cpu = Device::Cpu;
    let mut out = Vec::new();
    let mut push = |what: &str, diff: f64, tolerance: f64| {
        out.push(Agreement {
            what: what.into(),
            max_abs_diff: diff,
            tolerance,
        })
    };
    let names = ["output", "dq", "dk", "dv"];
    for start in [0, 7] {
        let (here, there) = (
            attention(&cpu, DType::F32, start)?,
            attention(device, DType::F32, start)?,
        );
        for ((a, b), name) in here.iter().zip(&there).zip(names) {
            push(
                &format!("attention f32, {start} cached: {name}"),
                max_diff(a, b)?,
                1e-4,
            );
        }
    }
    let (full, half) = (
        attention(&cpu, DType::F32, 0)?,
        attention(device, DType::BF16, 0)?,
    );
    push(
        "attention bf16 vs f32 on the CPU: output",
        max_diff(&full[0], &half[0])?,
        5e-2,
    );
    for ((name, here), (_, there)) in small_ops(&cpu)?.into_iter().zip(small_ops(device)?) {
        // The output, then each input's gradient.
        for (index, (a, b)) in here.iter().zip(&there).enumerate() {
            let part = match index {
                0 => "output".to_string(),
                n => format!("gradient of input {n}"),
            };
            push(&format!("{name}: {part}"), max_diff(a, b)?, 1e-4);
        }
    }
    let (here, there) = (loss_op(&cpu)?, loss_op(device)?);
    for ((a, b), name) in here
        .iter()
        .zip(&there)
        .zip(["log-probs", "d hidden", "d weight"])
    {
        push(&format!("loss op: {name}"), max_diff(a, b)?, 1e-4);
    }
    let reference = training_steps(&cpu, DType::F32, false)?;
    for (dtype, recompute) in [
        (DType::F32, false),
        (DType::BF16, false),
        (DType::F16, false),
        (DType::F32, true),
    ] {
        let there = training_steps(device, dtype, recompute)?;
        let (label, tolerance) = match (dtype, recompute) {
            (DType::F32, false) => ("f32", 1e-5),
            (DType::F32, true) => ("f32 with recomputed layers", 1e-5),
            (DType::F16, _) => ("f16, loss scaled", 5e-3),
            _ => ("bf16", 2e-2),
        };
        let name = format!("3 training steps {label} vs f32 on the CPU");
        push(
            &format!("{name}: loss"),
            (reference.0 - there.0).abs(),
            tolerance * reference.0.abs().max(1.0),
        );
        push(
            &format!("{name}: gradient norm"),
            (reference.1 - there.1).abs(),
            tolerance * reference.1.max(1.0),
        );
        let mut worst = 0.0f64;
        for (a, b) in reference.2.iter().zip(&there.2) {
            worst = worst.max(max_diff(a, b)?);
        }
        push(&format!("{name}: weights after AdamW"), worst, tolerance);
    }
    push(
        "batched decoding: logits",
        max_diff(&decoding(&cpu)?, &decoding(device)?)?,
        1e-4,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every check runs (on the CPU against itself, where all agree exactly).
    #[test]
    fn every_check_runs_and_agrees_with_itself() {
        let checks = compare(&Device::Cpu).unwrap();
        assert_eq!(checks.len(), 33);
        for check in &checks {
            // bf16 and f16 (both named "..f16") are compared with f32: close, not equal.
            if check.what.contains("f16") {
                assert!(check.holds() && check.max_abs_diff > 0.0, "{check:?}");
            } else {
                assert_eq!(check.max_abs_diff, 0.0, "{check:?}");
            }
        }
    }
}
