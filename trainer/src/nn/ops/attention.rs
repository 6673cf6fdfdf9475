//! Causal grouped-query attention that keeps no `queries x keys` tensor for
//! the backward pass.
//!
//! Written as plain ops, attention keeps about six `heads x seq x seq`
//! tensors per layer alive from the forward pass to the backward pass
//! (scores, scaled, masked, shifted, exponentiated, normalised), and copies
//! the keys and values once per query head. Here, as in FlashAttention, a
//! block of queries at a time is scored against the keys it may see, and only
//! the output and each query's log-sum-exp are kept; the backward pass scores
//! each block again. Query heads that share a key/value head are scored
//! together against it, so keys and values are never repeated.

use super::{Precomputed, accumulation_dtype};
use candle_core::{CpuStorage, CudaStorage, CustomOp3, Layout, Result, Tensor};

/// Elements of the largest block of scores (`batch x heads x block x keys`):
/// 128 MiB in f32.
const BLOCK_ELEMENTS: usize = 1 << 25;

/// `softmax(q k^T * scale + causal mask) v` for queries `q` `[b, heads, t,
/// d]` at positions `start..start + t` and keys/values `k`, `v` `[b,
/// kv_heads, start + t, d]` (query head `h` reads key/value head `h /
/// (heads / kv_heads)`, as transformers' `repeat_kv` lays them out).
/// Returns `[b, heads, t, d]` in `q`'s dtype; the softmax runs in its
/// accumulation dtype. Gradients reach `q`, `k` and `v`.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    start: usize,
    scale: f64,
) -> Result<Tensor> {
    let (b, heads, _, _) = q.dims4()?;
    let keys = k.dim(2)?;
    in_blocks(q, k, v, start, scale, block_rows(b * heads, keys))
}

/// Elements of the block-sized tensors alive at once (scores, mask, masked,
/// probabilities and their gradients) for `batch_heads` query heads over a
/// sequence of `t` positions.
pub fn workspace_elements(batch_heads: usize, t: usize) -> usize {
    6 * BLOCK_ELEMENTS.min(batch_heads * t * t)
}

/// Query positions per block.
fn block_rows(batch_heads: usize, keys: usize) -> usize {
    (BLOCK_ELEMENTS / (batch_heads * keys).max(1)).max(1)
}

/// [`causal_attention`] with `block` query positions at a time.
fn in_blocks(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    start: usize,
    scale: f64,
    block: usize,
) -> Result<Tensor> {
    let (_, heads, t, _) = q.dims4()?;
    let (_, kv_heads, keys, _) = k.dims4()?;
    if kv_heads == 0 || heads % kv_heads != 0 || keys != start + t || v.dims() != k.dims() {
        candle_core::bail!(
            "attention: {heads} query heads over {kv_heads} key/value heads, {t} queries after \
             {start} positions, keys {:?}, values {:?}",
            k.dims(),
            v.dims()
        );
    }
    let shape = Blocking {
        start,
        scale,
        block: block.clamp(1, t.max(1)),
    };
    let (q_const, k_const, v_const) = (q.detach(), k.detach(), v.detach());
    let mut outputs = Vec::new();
    let mut lses = Vec::new();
    for first in (0..t).step_by(shape.block) {
        let n = shape.block.min(t - first);
        let scored = shape.score(&q_const, &k_const, first, n)?;
        let probs = scored.probs()?;
        outputs.push(scored.ungroup(&probs.matmul(&scored.values(&v_const)?)?)?);
        lses.push(scored.lse);
    }
    let op = CausalAttention {
        value: Precomputed::new(Tensor::cat(&outputs, 2)?),
        lses,
        shape,
    };
    q.apply_op3(k, v, op)
}

/// How the queries are cut into blocks, and the attention's constants.
#[derive(Clone, Copy)]
struct Blocking {
    start: usize,
    scale: f64,
    block: usize,
}

/// One block of queries scored against the keys they may see.
struct Scored {
    /// `[b, kv_heads, groups * n, keys seen]` in the accumulation dtype,
    /// masked; query row `r * n + i` is head `kv * groups + r`, position `first + i`.
    scores: Tensor,
    /// `[b, kv_heads, groups * n, 1]`.
    lse: Tensor,
    /// The block's queries grouped as the scores' rows, in the input dtype.
    queries: Tensor,
    heads: usize,
    n: usize,
    seen: usize,
}

impl Blocking {
    /// Score queries `first..first + n` against keys `0..start + first + n`
    /// (the later ones are masked for all of them).
    fn score(&self, q: &Tensor, k: &Tensor, first: usize, n: usize) -> Result<Scored> {
        let (b, heads, _, d) = q.dims4()?;
        let kv_heads = k.dim(1)?;
        let groups = heads / kv_heads;
        let seen = self.start + first + n;
        let queries = q
            .narrow(2, first, n)?
            .contiguous()?
            .reshape((b, kv_heads, groups * n, d))?;
        let keys = k.narrow(2, 0, seen)?;
        let wide = accumulation_dtype(q.dtype());
        let raw = (queries.matmul(&keys.t()?)?.to_dtype(wide)? * self.scale)?;
        // Query position p may see keys 0..=p.
        let device = q.device();
        let positions = Tensor::arange((self.start + first) as u32, seen as u32, device)?;
        let allowed = Tensor::arange(0u32, seen as u32, device)?
            .unsqueeze(0)?
            .broadcast_le(&positions.unsqueeze(1)?)?;
        let mask = allowed.where_cond(
            &Tensor::zeros((n, seen), wide, device)?,
            &Tensor::full(f32::NEG_INFINITY, (n, seen), device)?.to_dtype(wide)?,
        )?;
        let scores = raw
            .reshape((b, kv_heads, groups, n, seen))?
            .broadcast_add(&mask)?
            .reshape((b, kv_heads, groups * n, seen))?;
        let max = scores.max_keepdim(3)?;
        let lse = scores
            .broadcast_sub(&max)?
            .exp()?
            .sum_keepdim(3)?
            .log()?
            .add(&max)?;
        Ok(Scored {
            scores,
            lse,
            queries,
            heads,
            n,
            seen,
        })
    }
}

impl Scored {
    /// The softmax of the scores, in the queries' dtype.
    fn probs(&self) -> Result<Tensor> {
        self.probs_wide()?.to_dtype(self.queries.dtype())
    }

    fn probs_wide(&self) -> Result<Tensor> {
        self.scores.broadcast_sub(&self.lse)?.exp()
    }

    /// The keys' or values' rows this block sees.
    fn values(&self, v: &Tensor) -> Result<Tensor> {
        v.narrow(2, 0, self.seen)
    }

    /// `[b, kv_heads, groups * n, d]` back to `[b, heads, n, d]`.
    fn ungroup(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, _, d) = x.dims4()?;
        x.reshape((b, self.heads, self.n, d))
    }

    /// `[b, heads, n, d]` (block `first..first + n` of a full tensor) to the
    /// grouped rows.
    fn group(&self, x: &Tensor, first: usize, kv_heads: usize) -> Result<Tensor> {
        let (b, _, _, d) = x.dims4()?;
        x.narrow(2, first, self.n)?.contiguous()?.reshape((
            b,
            kv_heads,
            self.heads / kv_heads * self.n,
            d,
        ))
    }
}

/// The op's record of its forward pass: the result (see [`Precomputed`])
/// and what the backward pass needs besides the inputs and the output.
struct CausalAttention {
    /// `[b, heads, t, d]`.
    value: Precomputed,
    /// Each block's log-sum-exps.
    lses: Vec<Tensor>,
    shape: Blocking,
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, candle_core::Shape)> {
        self.value.cpu()
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, candle_core::Shape)> {
        self.value.cuda()
    }

    /// Per block, with P the probabilities and O the output: dV = P^T dO,
    /// dS = P * (dO V^T - rowsum(dO * O)) * scale, dQ = dS K, dK = dS^T Q.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (q, k, v) = (q.detach(), k.detach(), v.detach());
        let (_, _, t, _) = q.dims4()?;
        let (_, kv_heads, keys, _) = k.dims4()?;
        let dtype = q.dtype();
        let wide = accumulation_dtype(dtype);
        let grad = grad.to_dtype(dtype)?;
        let mut grad_q = Vec::new();
        let mut grad_k = k.zeros_like()?.to_dtype(wide)?;
        let mut grad_v = v.zeros_like()?.to_dtype(wide)?;
        for (index, first) in (0..t).step_by(self.shape.block).enumerate() {
            let n = self.shape.block.min(t - first);
            let mut scored = self.shape.score(&q, &k, first, n)?;
            scored.lse = self.lses[index].clone();
            let probs = scored.probs_wide()?;
            let d_out = scored.group(&grad, first, kv_heads)?;
            let out = scored.group(out, first, kv_heads)?;
            let pad = |x: Tensor| x.to_dtype(wide)?.pad_with_zeros(2, 0, keys - scored.seen);
            grad_v = (grad_v + pad(probs.to_dtype(dtype)?.t()?.matmul(&d_out)?)?)?;
            let d_probs = d_out.matmul(&scored.values(&v)?.t()?)?.to_dtype(wide)?;
            let row_dot = (d_out.to_dtype(wide)? * out.to_dtype(wide)?)?.sum_keepdim(3)?;
            let d_scores = ((probs * d_probs.broadcast_sub(&row_dot)?)? * self.shape.scale)?
                .to_dtype(dtype)?;
            grad_q.push(scored.ungroup(&d_scores.matmul(&scored.values(&k)?)?)?);
            grad_k = (grad_k + pad(d_scores.t()?.matmul(&scored.queries)?)?)?;
        }
        Ok((
            Some(Tensor::cat(&grad_q, 2)?),
            Some(grad_k.to_dtype(dtype)?),
            Some(grad_v.to_dtype(dtype)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::init::SeededRng;
    use crate::nn::ops::testing::assert_close;
    use candle_core::{DType, Device, Var};

    /// The plain ops: keys and values repeated per query head, scores
    /// masked and softmaxed whole.
    fn plain(q: &Tensor, k: &Tensor, v: &Tensor, start: usize, scale: f64) -> Tensor {
        let (_, heads, t, _) = q.dims4().unwrap();
        let groups = heads / k.dim(1).unwrap();
        let k = candle_transformers::utils::repeat_kv(k.clone(), groups).unwrap();
        let v = candle_transformers::utils::repeat_kv(v.clone(), groups).unwrap();
        let keys = start + t;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..keys).map(move |j| {
                    if j > start + i {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, keys), q.device()).unwrap();
        let scores = (q.matmul(&k.t().unwrap()).unwrap() * scale)
            .unwrap()
            .broadcast_add(&mask.to_dtype(q.dtype()).unwrap())
            .unwrap();
        let max = scores.max_keepdim(3).unwrap().detach();
        let e = scores.broadcast_sub(&max).unwrap().exp().unwrap();
        let probs = e.broadcast_div(&e.sum_keepdim(3).unwrap()).unwrap();
        probs.matmul(&v).unwrap()
    }

    /// Values and gradients of q, k and v as the plain ops give them: in one
    /// block and in several (the last short), with and without cached
    /// positions before the queries, with grouped heads.
    #[test]
    fn matches_the_plain_ops_and_their_gradients() {
        let dev = Device::Cpu;
        let (b, heads, kv_heads, t, d) = (2, 4, 2, 7, 3);
        for start in [0, 3] {
            for block in [usize::MAX, 3] {
                let mut rng = SeededRng::new(5 + start as u64);
                let mut var = |dims: &[usize]| {
                    Var::from_tensor(&rng.normal_tensor(dims, 1.0, DType::F64, &dev).unwrap())
                        .unwrap()
                };
                let q = var(&[b, heads, t, d]);
                let k = var(&[b, kv_heads, start + t, d]);
                let v = var(&[b, kv_heads, start + t, d]);
                let weights = var(&[b, heads, t, d]);
                let ours = in_blocks(
                    q.as_tensor(),
                    k.as_tensor(),
                    v.as_tensor(),
                    start,
                    0.7,
                    block,
                )
                .unwrap();
                let theirs = plain(q.as_tensor(), k.as_tensor(), v.as_tensor(), start, 0.7);
                assert_close(&ours, &theirs, 1e-12, "output");
                let loss = |x: &Tensor| (x * weights.as_tensor()).unwrap().sum_all().unwrap();
                let (g_ours, g_theirs) = (
                    loss(&ours).backward().unwrap(),
                    loss(&theirs).backward().unwrap(),
                );
                for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
                    assert_close(
                        g_ours.get(x.as_tensor()).unwrap(),
                        g_theirs.get(x.as_tensor()).unwrap(),
                        1e-12,
                        &format!("d{name}, start {start}, block {block}"),
                    );
                }
            }
        }
    }

    /// bf16 inputs: the softmax runs in f32 and the result stays close to
    /// the f32 computation.
    #[test]
    fn bf16_follows_f32() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(9);
        let mut tensor = |dims: &[usize]| rng.normal_tensor(dims, 1.0, DType::F32, &dev).unwrap();
        let (q, k, v) = (
            tensor(&[1, 2, 5, 4]),
            tensor(&[1, 1, 5, 4]),
            tensor(&[1, 1, 5, 4]),
        );
        let full = causal_attention(&q, &k, &v, 0, 0.5).unwrap();
        let half = |x: &Tensor| x.to_dtype(DType::BF16).unwrap();
        let mixed = causal_attention(&half(&q), &half(&k), &half(&v), 0, 0.5).unwrap();
        assert_eq!(mixed.dtype(), DType::BF16);
        assert_close(
            &mixed.to_dtype(DType::F32).unwrap(),
            &full,
            0.05,
            "bf16 output",
        );
    }
}
