//! Batches and the loss: examples packed into padded batches, length-bucketed
//! and shuffled per epoch, and the masked next-token loss.
//!
//! A data set may mix sets of records (their `kind`, e.g. LEAFE's `cf` and
//! `reh`). The loss of an optimizer step is the sum over the sets present
//! of each set's mean token loss, each token weighted by its record's
//! weight: L = L_cf + beta * L_reh with `reh` records at weight beta. So
//! beta weighs the sets against each other without changing the step size,
//! and a single set gives the plain weighted mean.

use crate::io::chat::Example;
use crate::nn::init::SeededRng;
use crate::nn::model::{Model, log_softmax_last_dim};
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};

/// A batch: inputs `[B, T]`, targets `[B, T]` and the loss mask `[B, T]`.
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
    pub mask: Tensor,
    /// 1 where a target token is trained, 0 elsewhere (whatever its weight).
    pub trained: Tensor,
    /// Target tokens that count.
    pub tokens: usize,
    /// The trained positions alone, as the loss reads them: their indices
    /// in the flattened `[B * T]` grid, their targets and their weights
    /// (`[tokens]` each).
    pub rows: Tensor,
    pub row_targets: Tensor,
    pub row_weights: Tensor,
}

/// Each set's share of an optimizer step's loss: 1 / its trained tokens in
/// the step.
pub struct SetNorm {
    factors: Vec<f32>,
}

impl SetNorm {
    /// The norms of a step over `examples` (every micro-batch of it).
    pub fn of<'a>(examples: impl IntoIterator<Item = &'a Example>) -> SetNorm {
        let mut tokens: Vec<usize> = Vec::new();
        for e in examples {
            if tokens.len() <= e.set {
                tokens.resize(e.set + 1, 0);
            }
            tokens[e.set] += e.trained.iter().skip(1).filter(|t| **t).count();
        }
        SetNorm {
            factors: tokens.iter().map(|n| 1.0 / (*n).max(1) as f32).collect(),
        }
    }

    /// No normalisation: the mask holds the record weights themselves.
    pub fn none() -> SetNorm {
        SetNorm { factors: vec![] }
    }

    fn factor(&self, set: usize) -> f32 {
        self.factors.get(set).copied().unwrap_or(1.0)
    }
}

/// Pack examples into one padded batch: position t predicts token t+1; the
/// mask holds each trained token's weight in the step's loss.
pub fn make_batch(
    examples: &[&Example],
    pad: u32,
    device: &Device,
    norm: &SetNorm,
) -> Result<Batch> {
    let t = examples
        .iter()
        .map(|e| e.ids.len() - 1)
        .max()
        .context("empty batch")?;
    let (mut inputs, mut targets, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    let mut trained_at = Vec::new();
    let (mut rows, mut row_targets, mut row_weights) = (Vec::new(), Vec::new(), Vec::new());
    let mut tokens = 0;
    for e in examples {
        let n = e.ids.len() - 1;
        let scale = e.weight * norm.factor(e.set);
        for i in 0..t {
            let real = i < n;
            inputs.push(if real { e.ids[i] } else { pad });
            targets.push(if real { e.ids[i + 1] } else { pad });
            let trained = real && e.trained[i + 1];
            tokens += usize::from(trained);
            if trained {
                rows.push(targets.len() as u32 - 1);
                row_targets.push(e.ids[i + 1]);
                row_weights.push(scale);
            }
            mask.push(if trained { scale } else { 0.0 });
            trained_at.push(f32::from(u8::from(trained)));
        }
    }
    let b = examples.len();
    Ok(Batch {
        inputs: Tensor::from_vec(inputs, (b, t), device)?,
        targets: Tensor::from_vec(targets, (b, t), device)?,
        mask: Tensor::from_vec(mask, (b, t), device)?,
        trained: Tensor::from_vec(trained_at, (b, t), device)?,
        tokens,
        rows: Tensor::from_vec(rows, tokens, device)?,
        row_targets: Tensor::from_vec(row_targets, tokens, device)?,
        row_weights: Tensor::from_vec(row_weights, tokens, device)?,
    })
}

/// The step's loss over a batch: the negative log-likelihood of the trained
/// tokens, each weighted by its mask entry, summed; and with a reference
/// model, the KL term of [`kl_to_reference_sum`] over the same tokens.
/// Projects only the trained positions onto the vocabulary.
pub fn batch_loss_sum(
    model: &Model,
    batch: &Batch,
    reference: Option<&Model>,
) -> candle_core::Result<(Tensor, Option<Tensor>)> {
    let log_probs = model.target_log_probs(&batch.inputs, &batch.rows, &batch.row_targets)?;
    let nll = (&log_probs * &batch.row_weights)?.sum_all()?.neg()?;
    let kl = match reference {
        Some(reference) => {
            let theirs = reference
                .target_log_probs(&batch.inputs, &batch.rows, &batch.row_targets)?
                .detach();
            Some(k3(&(theirs - &log_probs)?)?.sum_all()?)
        }
        None => None,
    };
    Ok((nll, kl))
}

/// exp(r) - r - 1: never negative, 0 at r = 0.
fn k3(r: &Tensor) -> candle_core::Result<Tensor> {
    (r.exp()? - r)? - 1.0
}

/// Negative log-likelihood of `targets`, each position weighted by `mask`
/// and summed, from the whole `[B, T, vocab]` logits: the plain form of
/// [`batch_loss_sum`]'s first term, which the tests hold it to.
pub fn masked_nll_sum(
    logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    let logp = log_softmax_last_dim(logits)?;
    let picked = logp.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?;
    (picked * mask.to_dtype(logits.dtype())?)?.sum_all()?.neg()
}

/// The KL divergence from a reference model, summed over the positions
/// where `mask` is 1, with the k3 estimator on the data's own tokens:
/// exp(r) - r - 1 for r = log p_ref(token) - log p(token). It is never
/// negative and its gradient pulls the model back towards the reference.
/// The plain form of [`batch_loss_sum`]'s second term, from whole logits.
pub fn kl_to_reference_sum(
    logits: &Tensor,
    reference_logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    let index = targets.unsqueeze(2)?;
    let logp = log_softmax_last_dim(logits)?
        .gather(&index, 2)?
        .squeeze(2)?;
    let ref_logp = log_softmax_last_dim(&reference_logits.to_dtype(logits.dtype())?)?
        .gather(&index, 2)?
        .squeeze(2)?
        .detach();
    (k3(&(ref_logp - logp)?)? * mask.to_dtype(logits.dtype())?)?.sum_all()
}

/// Length-bucketed batches: sorted by length, cut into batches, batch order
/// shuffled per epoch from the seed.
pub(crate) fn epoch_batches(
    examples: &[Example],
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|i| (examples[*i].ids.len(), *i));
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(|c| c.to_vec()).collect();
    let mut rng = SeededRng::new(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for i in (1..batches.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        batches.swap(i, j);
    }
    batches
}
