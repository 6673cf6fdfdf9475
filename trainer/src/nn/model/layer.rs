//! One decoder layer: its weights and its forward pass, shared by training,
//! generation and activation recomputation.

use crate::nn::config::ModelConfig;
use crate::nn::ops::rms_norm::rms_norm;
use crate::nn::ops::swiglu::silu_mul;
use crate::nn::quant::QuantWeight;
use candle_core::{Module, Result, Tensor, TensorId};
use std::sync::Arc;

/// A weight `[out, in]` as transformers stores it: dense (trainable, in
/// the compute dtype) or quantized (inference only, f32 in and out).
#[derive(Clone)]
pub enum Weight {
    Dense(Tensor),
    Quantized(Arc<QuantWeight>),
}

impl Weight {
    /// `x` `[rows, in]` times the weight transposed: `[rows, out]`, in the
    /// dense weight's dtype (f32 for a quantized one).
    pub fn project(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Dense(w) => x.to_dtype(w.dtype())?.matmul(&w.t()?),
            Weight::Quantized(q) => q.forward(x),
        }
    }

    /// The dense weight, for what only a dense one can do (training).
    pub fn dense(&self) -> Result<&Tensor> {
        match self {
            Weight::Dense(w) => Ok(w),
            Weight::Quantized(_) => {
                candle_core::bail!(
                    "a quantized model is for inference only; load it unquantized to train"
                )
            }
        }
    }
}

/// `y = x W^T + b (+ scale * x A^T B^T)`, with `W` as transformers stores
/// it (`[out, in]`) and an optional LoRA delta `(A, B, scale)`.
#[derive(Clone)]
pub struct Linear {
    pub weight: Weight,
    pub bias: Option<Tensor>,
    pub lora: Option<(Tensor, Tensor, f64)>,
}

impl Module for Linear {
    /// In the weight's dtype, whatever `x`'s. `x` is `[..., in]`; its
    /// leading dimensions are flattened into one `[rows, in] x [in, out]`
    /// product, so that the weight's gradient is one product too (a batched
    /// product would compute one per batch row and sum them).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let Some(inp) = dims.pop() else {
            candle_core::bail!("a linear layer's input has no dimensions")
        };
        let x = &x.reshape(((), inp))?;
        let mut y = self.weight.project(x)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some((a, b, scale)) = &self.lora {
            let x = x.to_dtype(y.dtype())?;
            let low = x.matmul(&a.t()?)?.matmul(&b.t()?)?;
            y = (y + (low * *scale)?)?;
        }
        dims.push(y.dim(1)?);
        y.reshape(dims)
    }
}

/// A layer's weights (cloning shares them).
#[derive(Clone)]
pub(super) struct Layer {
    pub input_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub post_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
    /// The trainable variables the weights above are (or are cast from).
    pub variables: Vec<TensorId>,
}

impl Layer {
    /// The layer over the residual stream `x` `[b, t, hidden]` (its dtype is
    /// kept). `rope` applies the rotary embeddings to queries or keys `[b,
    /// heads, t, d]`; `attend(q, k, v)` is the attention: what differs
    /// between training, a cached sequence and a batch of them.
    pub fn forward(
        &self,
        cfg: &ModelConfig,
        x: &Tensor,
        rope: impl Fn(&Tensor) -> Result<Tensor>,
        attend: impl FnOnce(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let (b, t, hidden) = x.dims3()?;
        let hd = cfg.head_dim();
        let residual = x.dtype();
        let h = rms_norm(x, &self.input_norm, cfg.rms_norm_eps)?;
        let heads = |lin: &Linear, n: usize| -> Result<Tensor> {
            lin.forward(&h)?
                .reshape((b, t, n, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = rope(&heads(&self.q, cfg.num_attention_heads)?)?;
        let k = rope(&heads(&self.k, cfg.num_key_value_heads)?)?;
        let y = attend(&q, &k, &heads(&self.v, cfg.num_key_value_heads)?)?;
        let y = y.transpose(1, 2)?.reshape((b, t, hidden))?;
        let x = (x + self.o.forward(&y)?.to_dtype(residual)?)?;
        let h = rms_norm(&x, &self.post_norm, cfg.rms_norm_eps)?;
        let mlp = self
            .down
            .forward(&silu_mul(&self.gate.forward(&h)?, &self.up.forward(&h)?)?)?;
        x + mlp.to_dtype(residual)?
    }
}
