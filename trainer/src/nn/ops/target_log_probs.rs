//! The log-probability of each target token under the vocabulary projection,
//! without the `[tokens, vocab]` logits ever existing whole.
//!
//! Written as plain ops, the projection and its log-softmax keep several
//! `tokens x vocab` tensors alive from the forward pass to the end of the
//! backward pass: at Qwen2's 152k-entry vocabulary and 4,096 tokens, ~2.5 GB
//! each in f32. Here the forward pass computes the logits a chunk of rows at
//! a time and keeps only each row's log-sum-exp; the backward pass computes
//! each chunk's logits again and turns them straight into the gradients
//! (recomputing one matmul is cheaper than storing its result).

use super::{Precomputed, accumulation_dtype};
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// Elements of the largest logits chunk (`rows x vocab`): 128 MiB in f32.
const CHUNK_ELEMENTS: usize = 1 << 25;

/// Elements of the chunk-sized tensors alive at once (logits, their
/// exponentials, the gradient and a cast) for `rows` trained positions.
pub fn workspace_elements(rows: usize, vocab: usize) -> usize {
    4 * CHUNK_ELEMENTS.min(rows * vocab)
}

/// `log softmax(hidden W^T)[i, targets[i]]` for each row `i`: `hidden` is
/// `[rows, h]`, `weight` the projection `[vocab, h]` as transformers stores
/// it, `targets` `[rows]` (u32). Returns `[rows]` in the inputs'
/// [`accumulation_dtype`] (f32 for bf16 inputs); gradients reach `hidden` and
/// `weight`.
pub fn target_log_probs(hidden: &Tensor, weight: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (vocab, _) = weight.dims2()?;
    in_chunks(hidden, weight, targets, CHUNK_ELEMENTS / vocab)
}

/// [`target_log_probs`] with `chunk` rows of logits at a time.
fn in_chunks(hidden: &Tensor, weight: &Tensor, targets: &Tensor, chunk: usize) -> Result<Tensor> {
    let (rows, _) = hidden.dims2()?;
    if rows == 0 {
        return Tensor::zeros(0, accumulation_dtype(hidden.dtype()), hidden.device());
    }
    let chunk = chunk.clamp(1, rows);
    let (hidden_const, weight_const) = (hidden.detach(), weight.detach());
    let (mut log_probs, mut lses) = (Vec::new(), Vec::new());
    for start in (0..rows).step_by(chunk) {
        let n = chunk.min(rows - start);
        let logits = hidden_const
            .narrow(0, start, n)?
            .matmul(&weight_const.t()?)?;
        let targets = targets.narrow(0, start, n)?;
        let (log_prob, lse) = match kernel_applies(&logits) {
            true => crate::nn::cuda::log_softmax_pick(&logits, &targets)?,
            false => pick(&logits, &targets)?,
        };
        log_probs.push(log_prob);
        lses.push(lse);
    }
    let op = TargetLogProbs {
        value: Precomputed::new(Tensor::cat(&log_probs, 0)?),
        lse: Tensor::cat(&lses, 0)?,
        targets: targets.detach(),
        chunk,
    };
    hidden.apply_op2(weight, op)
}

/// The targets' log-probabilities `[n]` and the log-sum-exp `[n, 1]` of
/// `logits` `[n, vocab]`, in the accumulation dtype.
fn pick(logits: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor)> {
    let logits = logits.to_dtype(accumulation_dtype(logits.dtype()))?;
    let lse = log_sum_exp(&logits)?;
    let picked = logits.gather(&targets.unsqueeze(1)?, 1)?;
    Ok(((picked - &lse)?.squeeze(1)?, lse))
}

/// `[n, 1]`: the log-sum-exp of each row of `[n, vocab]`.
fn log_sum_exp(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(1)?;
    logits
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(1)?
        .log()?
        .add(&max)
}

/// d log p(target) / d logits, times `grad` `[n]`: grad · (onehot(target) -
/// softmax(logits)), in the logits' dtype.
fn d_logits(logits: &Tensor, lse: &Tensor, targets: &Tensor, grad: &Tensor) -> Result<Tensor> {
    let softmax = logits.to_dtype(lse.dtype())?.broadcast_sub(lse)?.exp()?;
    let g = grad.to_dtype(lse.dtype())?.unsqueeze(1)?;
    softmax
        .broadcast_mul(&g)?
        .neg()?
        .scatter_add(&targets.unsqueeze(1)?, &g, 1)?
        .to_dtype(logits.dtype())
}

/// Whether the CUDA kernels (`kernels/ops.cu`) compute [`pick`] and
/// [`d_logits`]: f32 or bf16 logits on a GPU, found to agree with them there.
fn kernel_applies(logits: &Tensor) -> bool {
    static VERIFIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    crate::nn::cuda::elementwise_applies(&[logits])
        && crate::nn::cuda::verified(&VERIFIED, "log_softmax_pick", || {
            kernel_difference(logits.device())
        })
}

/// The kernels' largest difference from [`pick`] and [`d_logits`] on
/// random logits, over the tolerance of each dtype (of the largest value).
fn kernel_difference(device: &candle_core::Device) -> Result<f64> {
    use candle_core::DType;
    let mut rng = crate::nn::init::SeededRng::new(23);
    let (n, vocab) = (5, 5003);
    let targets: Vec<u32> = (0..n).map(|i| (i * 1237 % vocab) as u32).collect();
    let targets = Tensor::new(targets, device)?;
    let grad = rng.normal_tensor(&[n], 1.0, DType::F32, device)?;
    let mut worst = 0f64;
    for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::BF16, 1e-2)] {
        let logits = rng
            .normal_tensor(&[n, vocab], 3.0, DType::F32, device)?
            .to_dtype(dtype)?;
        let (ours, ours_lse) = crate::nn::cuda::log_softmax_pick(&logits, &targets)?;
        let (theirs, theirs_lse) = pick(&logits, &targets)?;
        let ours_d =
            crate::nn::cuda::log_softmax_pick_backward(&logits, &theirs_lse, &targets, &grad)?;
        let theirs_d = d_logits(&logits, &theirs_lse, &targets, &grad)?;
        for (a, b) in [(ours, theirs), (ours_lse, theirs_lse), (ours_d, theirs_d)] {
            worst = worst.max(super::relative_difference(&a, &b)? / tolerance);
        }
    }
    Ok(worst)
}

/// The op's record of its forward pass: the result (see [`Precomputed`])
/// and what the backward pass needs besides the inputs.
struct TargetLogProbs {
    /// `[rows]`, in the accumulation dtype.
    value: Precomputed,
    /// `[rows, 1]`, in the accumulation dtype.
    lse: Tensor,
    targets: Tensor,
    chunk: usize,
}

impl CustomOp2 for TargetLogProbs {
    fn name(&self) -> &'static str {
        "target-log-probs"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.value.cpu()
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.value.cuda()
    }

    /// d log p(t) / d logits = onehot(t) - softmax(logits), chunk by chunk.
    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (hidden, weight) = (hidden.detach(), weight.detach());
        let wide = accumulation_dtype(hidden.dtype());
        let grad = grad.to_dtype(wide)?;
        let rows = hidden.dim(0)?;
        let mut grad_hidden = Vec::new();
        let mut grad_weight: Option<Tensor> = None;
        for start in (0..rows).step_by(self.chunk) {
            let n = self.chunk.min(rows - start);
            let h = hidden.narrow(0, start, n)?;
            let logits = h.matmul(&weight.t()?)?;
            let (lse, targets) = (
                self.lse.narrow(0, start, n)?,
                self.targets.narrow(0, start, n)?,
            );
            let g = grad.narrow(0, start, n)?;
            let d = match kernel_applies(&logits) {
                true => crate::nn::cuda::log_softmax_pick_backward(&logits, &lse, &targets, &g)?,
                false => d_logits(&logits, &lse, &targets, &g)?,
            };
            grad_hidden.push(d.matmul(&weight)?);
            let d_weight = d.t()?.matmul(&h)?.to_dtype(wide)?;
            grad_weight = Some(match grad_weight {
                Some(acc) => (acc + d_weight)?,
                None => d_weight,
            });
        }
        let grad_weight = match grad_weight {
            Some(g) => Some(g.to_dtype(weight.dtype())?),
            None => None,
        };
        Ok((Some(Tensor::cat(&grad_hidden, 0)?), grad_weight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::init::SeededRng;
    use crate::nn::ops::testing::assert_close;
    use candle_core::{DType, Device, Var};

    /// log softmax over the last dimension from plain differentiable ops.
    fn plain_log_softmax(x: &Tensor) -> Result<Tensor> {
        let max = x.max_keepdim(1)?.detach();
        let shifted = x.broadcast_sub(&max)?;
        let lse = shifted.exp()?.sum_keepdim(1)?.log()?;
        shifted.broadcast_sub(&lse)
    }

    /// The same log-probabilities and gradients as the plain ops, in one
    /// chunk and in several (the last one short).
    #[test]
    fn matches_the_plain_log_softmax_and_its_gradients() {
        for chunk in [usize::MAX, 3] {
            matches_plain_ops(chunk);
        }
    }

    fn matches_plain_ops(chunk: usize) {
        let dev = Device::Cpu;
        let (rows, h, vocab) = (7, 5, 11);
        let mut rng = SeededRng::new(3);
        let hidden = Var::from_tensor(
            &rng.normal_tensor(&[rows, h], 1.0, DType::F32, &dev)
                .unwrap(),
        )
        .unwrap();
        let weight = Var::from_tensor(
            &rng.normal_tensor(&[vocab, h], 0.5, DType::F32, &dev)
                .unwrap(),
        )
        .unwrap();
        let targets: Vec<u32> = (0..rows).map(|i| (i * 4 % vocab) as u32).collect();
        let targets = Tensor::new(targets.as_slice(), &dev).unwrap();
        let row_weights = Tensor::new(&[1.0f32, -0.5, 2.0, 0.0, 1.0, 0.25, 3.0], &dev).unwrap();

        let ours = in_chunks(hidden.as_tensor(), weight.as_tensor(), &targets, chunk).unwrap();
        let plain = plain_log_softmax(
            &hidden
                .as_tensor()
                .matmul(&weight.as_tensor().t().unwrap())
                .unwrap(),
        )
        .unwrap()
        .gather(&targets.unsqueeze(1).unwrap(), 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
        assert_close(&ours, &plain, 1e-4, "log-probs");

        let loss = |lp: &Tensor| (lp * &row_weights).unwrap().sum_all().unwrap();
        let (g_ours, g_plain) = (
            loss(&ours).backward().unwrap(),
            loss(&plain).backward().unwrap(),
        );
        for var in [&hidden, &weight] {
            assert_close(
                g_ours.get(var.as_tensor()).unwrap(),
                g_plain.get(var.as_tensor()).unwrap(),
                1e-5,
                "gradient",
            );
        }
    }

    #[test]
    fn no_rows_give_an_empty_result() {
        let dev = Device::Cpu;
        let hidden = Tensor::zeros((0, 4), DType::F32, &dev).unwrap();
        let weight = Tensor::ones((9, 4), DType::F32, &dev).unwrap();
        let targets = Tensor::zeros(0, DType::U32, &dev).unwrap();
        let out = target_log_probs(&hidden, &weight, &targets).unwrap();
        assert_eq!(out.dims(), &[0]);
    }
}
