//! Batches and the loss: examples packed into padded batches, length-bucketed
//! and shuffled per epoch, and the masked next-token loss.

use crate::chat::Example;
use crate::init::SeededRng;
use crate::model::log_softmax_last_dim;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};

/// A batch: inputs `[B, T]`, targets `[B, T]` and the loss mask `[B, T]`.
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
    pub mask: Tensor,
    /// Target tokens that count.
    pub tokens: usize,
}

/// Pack examples into one padded batch: position t predicts token t+1.
pub fn make_batch(examples: &[&Example], pad: u32, device: &Device) -> Result<Batch> {
    let t = examples
        .iter()
        .map(|e| e.ids.len() - 1)
        .max()
        .context("empty batch")?;
    let (mut inputs, mut targets, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    let mut tokens = 0;
    for e in examples {
        let n = e.ids.len() - 1;
        for i in 0..t {
            let real = i < n;
            inputs.push(if real { e.ids[i] } else { pad });
            targets.push(if real { e.ids[i + 1] } else { pad });
            let trained = real && e.trained[i + 1];
            tokens += usize::from(trained);
            mask.push(if trained { e.weight } else { 0.0 });
        }
    }
    let b = examples.len();
    Ok(Batch {
        inputs: Tensor::from_vec(inputs, (b, t), device)?,
        targets: Tensor::from_vec(targets, (b, t), device)?,
        mask: Tensor::from_vec(mask, (b, t), device)?,
        tokens,
    })
}

/// Summed negative log-likelihood of `targets` where `mask` is 1.
pub fn masked_nll_sum(
    logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    let logp = log_softmax_last_dim(logits)?;
    let picked = logp.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?;
    (picked * mask.to_dtype(logits.dtype())?)?.sum_all()?.neg()
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
