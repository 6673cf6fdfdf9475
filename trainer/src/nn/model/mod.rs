//! A Qwen2/Llama decoder built from differentiable candle ops, with
//! parameters in a [`VarMap`] under Hugging Face tensor names, so the same
//! model trains, generates and saves checkpoints transformers can load.
//!
//! candle-transformers' Qwen2/Llama modules are inference-only (private
//! linears, fused ops without a backward pass), so this is our own small copy:
//! RMSNorm and rotary embeddings (`rope_slow`) are written from
//! differentiable primitives, attention and the loss's vocabulary projection
//! are ops with their own backward pass ([`crate::nn::ops`]).
//!
//! Mixed precision works as PyTorch's autocast does: the matmuls (and the
//! attention and MLP activations between them) run in the compute dtype,
//! from copies of the weights cast at build time (so gradients flow back to
//! the f32 master weights through the casts), while the residual stream,
//! the norms, the attention softmax and the loss stay in f32.

mod cache;
mod decode;
mod layer;
mod recompute;

pub use cache::{KvBatch, KvCache};
pub use layer::{Linear, Weight};

use crate::nn::config::ModelConfig;

use crate::nn::ops::attention::causal_attention;
use crate::nn::ops::rms_norm::rms_norm;
use crate::nn::ops::rope::rotary;
use crate::nn::quant::{QuantWeight, Quantization};
use candle_core::backprop::GradStore;
use candle_core::{D, DType, Device, Result, Tensor};
use candle_nn::VarMap;
use layer::Layer;
use recompute::{TrainingLayer, WeightGrads};
use std::sync::Arc;

/// An adapter to apply: its config and its A/B matrices (PEFT names).
pub struct Adapter<'a> {
    pub config: &'a crate::nn::lora::LoraConfig,
    pub params: &'a VarMap,
}

/// The decoder.
pub struct Model {
    pub cfg: ModelConfig,
    /// The embedding table `[vocab, hidden]` (quantized with the output
    /// projection when that is).
    embed: Weight,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Weight,
    device: Device,
    quantization: Quantization,
    cos: Tensor,
    sin: Tensor,
    /// The dtype of the matmuls and the attention and MLP activations.
    compute: DType,
    /// Set when the layers recompute their activations in the backward
    /// pass ([`Model::with_recomputation`]): their weights' gradients.
    recomputed: Option<Arc<WeightGrads>>,
}

/// `log softmax` over the last dimension, differentiable.
pub fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

impl Model {
    /// Build the model over the tensors in `params` (names as transformers').
    pub fn new(cfg: &ModelConfig, params: &VarMap) -> Result<Model> {
        Model::with_adapter(cfg, params, None)
    }

    /// Build the model to train in `compute` precision (F32, or BF16 for
    /// mixed precision over the f32 weights in `params`), with or without a
    /// LoRA adapter. The weights are cast now: build it again after each
    /// optimizer step.
    pub fn for_training(
        cfg: &ModelConfig,
        params: &VarMap,
        adapter: Option<Adapter>,
        compute: DType,
    ) -> Result<Model> {
        let frozen = adapter.is_some();
        Model::build(
            cfg,
            params,
            adapter,
            frozen,
            Some(compute),
            Quantization::None,
        )
    }

    /// Build the model for inference only (generation, serving, logits):
    /// every weight is a constant, so no op records an autograd graph and
    /// each step's tensors are freed as soon as they are used.
    pub fn frozen(cfg: &ModelConfig, params: &VarMap) -> Result<Model> {
        Model::build(cfg, params, None, true, None, Quantization::None)
    }

    /// [`Model::frozen`] with the projections stored as `q` says:
    /// quantized (f32 activations, CPU only) for less memory and faster
    /// matmuls; `Quantization::None` is [`Model::frozen`]. `params` may be
    /// dropped afterwards; a quantized model keeps only the quantized
    /// weights (and the norms and biases).
    pub fn quantized(cfg: &ModelConfig, params: &VarMap, q: Quantization) -> Result<Model> {
        Model::build(cfg, params, None, true, None, q)
    }

    /// Build the model with a LoRA adapter. The base weights are then
    /// constants: gradients reach only the adapter.
    pub fn with_adapter(
        cfg: &ModelConfig,
        params: &VarMap,
        adapter: Option<Adapter>,
    ) -> Result<Model> {
        let frozen = adapter.is_some();
        Model::build(cfg, params, adapter, frozen, None, Quantization::None)
    }

    /// `compute`: None computes in the weights' own dtype (f32 when
    /// `quantization` is not `None`).
    fn build(
        cfg: &ModelConfig,
        params: &VarMap,
        adapter: Option<Adapter>,
        frozen: bool,
        compute: Option<DType>,
        quantization: Quantization,
    ) -> Result<Model> {
        if quantization != Quantization::None && (adapter.is_some() || !frozen) {
            candle_core::bail!("a quantized model is for inference only: merge the adapter first");
        }
        let data = params
            .data()
            .lock()
            .expect("the var map lock is never poisoned");
        // The trainable variables fetched since the last layer was built.
        let fetched = std::cell::RefCell::new(Vec::new());
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let var = data
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))?;
            if var.dims() != shape {
                candle_core::bail!(
                    "tensor {name} has shape {:?}, the config wants {shape:?}",
                    var.dims()
                );
            }
            Ok(if frozen {
                var.as_tensor().detach()
            } else {
                fetched.borrow_mut().push(var.as_tensor().id());
                var.as_tensor().clone()
            })
        };
        let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
        let kv = cfg.num_key_value_heads * cfg.head_dim();
        let embed = get("model.embed_tokens.weight", &[v, h])?;
        fetched.borrow_mut().clear();
        let compute = match quantization {
            Quantization::None => compute.unwrap_or(embed.dtype()),
            _ => DType::F32,
        };
        let device = embed.device().clone();
        if quantization != Quantization::None && !device.is_cpu() {
            candle_core::bail!("quantized inference runs on the CPU, not on {device:?}");
        }
        let weight = |tensor: Tensor| -> Result<Weight> {
            Ok(match quantization.projections() {
                Some(format) => Weight::Quantized(Arc::new(QuantWeight::new(&tensor, format)?)),
                None => Weight::Dense(tensor.to_dtype(compute)?),
            })
        };
        let linear = |name: &str, out: usize, inp: usize, bias: bool| -> Result<Linear> {
            let lora = match adapter.as_ref() {
                Some(ad) => match crate::nn::lora::delta(ad.params, name) {
                    Some((a, b)) => {
                        fetched.borrow_mut().extend([a.id(), b.id()]);
                        Some((
                            a.to_dtype(compute)?,
                            b.to_dtype(compute)?,
                            ad.config.scale(),
                        ))
                    }
                    None => None,
                },
                None => None,
            };
            Ok(Linear {
                lora,
                weight: weight(get(&format!("{name}.weight"), &[out, inp])?)?,
                bias: if bias {
                    Some(get(&format!("{name}.bias"), &[out])?.to_dtype(compute)?)
                } else {
                    None
                },
            })
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            layers.push(Layer {
                input_norm: get(&p("input_layernorm.weight"), &[h])?,
                q: linear(&p("self_attn.q_proj"), h, h, cfg.attention_bias)?,
                k: linear(&p("self_attn.k_proj"), kv, h, cfg.attention_bias)?,
                v: linear(&p("self_attn.v_proj"), kv, h, cfg.attention_bias)?,
                o: linear(&p("self_attn.o_proj"), h, h, false)?,
                post_norm: get(&p("post_attention_layernorm.weight"), &[h])?,
                gate: linear(&p("mlp.gate_proj"), i, h, false)?,
                up: linear(&p("mlp.up_proj"), i, h, false)?,
                down: linear(&p("mlp.down_proj"), h, i, false)?,
                variables: fetched.take(),
            });
        }
        let norm = get("model.norm.weight", &[h])?;
        let (embed, lm_head) = match quantization.output() {
            None => {
                let lm_head = if cfg.tie_word_embeddings {
                    embed.to_dtype(compute)?
                } else {
                    get("lm_head.weight", &[v, h])?.to_dtype(compute)?
                };
                (Weight::Dense(embed), Weight::Dense(lm_head))
            }
            // The embedding is looked up in the quantized table: one copy
            // when the output projection shares it.
            Some(format) => {
                let table = Weight::Quantized(Arc::new(QuantWeight::new(&embed, format)?));
                let lm_head = match cfg.tie_word_embeddings {
                    true => table.clone(),
                    false => {
                        let w = get("lm_head.weight", &[v, h])?;
                        Weight::Quantized(Arc::new(QuantWeight::new(&w, format)?))
                    }
                };
                (table, lm_head)
            }
        };
        let (cos, sin) = rope_tables(cfg, compute, &device)?;
        Ok(Model {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            lm_head,
            device,
            quantization,
            cos,
            sin,
            compute,
            recomputed: None,
        })
    }

    /// With `recompute`, keep only each layer's input for the backward pass
    /// and run the layer again there (activation recomputation,
    /// `--grad-checkpoint`): less memory for a second forward pass. The
    /// gradients then come from [`Model::backward`].
    pub fn with_recomputation(mut self, recompute: bool) -> Model {
        self.recomputed = recompute.then(Arc::default);
        self
    }

    /// The gradients of `loss`, a function of this model's outputs: what
    /// `loss.backward()` gives, plus the gradients of the recomputed layers'
    /// weights.
    pub fn backward(&self, loss: &Tensor) -> Result<GradStore> {
        let mut grads = loss.backward()?;
        if let Some(recomputed) = &self.recomputed {
            recomputed.move_into(&mut grads)?;
        }
        Ok(grads)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How the projections are stored.
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// The output projection: logits `[rows, vocab]` (in the compute
    /// dtype) of final hidden states `[rows, hidden]`.
    pub(super) fn project(&self, x: &Tensor) -> Result<Tensor> {
        self.lm_head.project(&x.to_dtype(self.compute)?)
    }

    /// The dtype of the matmuls (logits come out in it).
    pub fn dtype(&self) -> DType {
        self.compute
    }

    /// Logits `[batch, seq, vocab]` for token ids `[batch, seq]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let x = self.hidden(ids)?;
        let x = rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?;
        let (b, t, h) = x.dims3()?;
        self.project(&x.reshape((b * t, h))?)?
            .reshape((b, t, self.cfg.vocab_size))
    }

    /// The log-probabilities `[rows]` (f32) of `targets` `[rows]` at `rows`,
    /// positions of the flattened `[batch * seq]` grid of `ids`: what the
    /// training loss needs, without `[seq, vocab]` logits (only the listed
    /// positions are projected, a chunk at a time; see [`crate::nn::ops`]).
    pub fn target_log_probs(
        &self,
        ids: &Tensor,
        rows: &Tensor,
        targets: &Tensor,
    ) -> Result<Tensor> {
        let x = self.hidden(ids)?;
        let x = x.flatten_to(1)?.index_select(rows, 0)?;
        let x = rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?.to_dtype(self.compute)?;
        crate::nn::ops::target_log_probs::target_log_probs(&x, self.lm_head.dense()?, targets)
    }

    /// Logits `[batch, vocab]` of the last position only: what generation
    /// needs, without the `[seq, vocab]` projection of every position.
    pub fn forward_last(&self, ids: &Tensor) -> Result<Tensor> {
        let x = self.hidden(ids)?;
        let t = x.dim(1)?;
        let x = x.narrow(1, t - 1, 1)?.squeeze(1)?;
        let x = rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?;
        self.project(&x)
    }

    /// The last layer's output `[batch, seq, hidden]`, before the final norm.
    fn hidden(&self, ids: &Tensor) -> Result<Tensor> {
        let scale = 1.0 / (self.cfg.head_dim() as f64).sqrt();
        let Some(grads) = &self.recomputed else {
            return self.decoder(ids, &[0], |_, q, k, v| causal_attention(q, k, v, 0, scale));
        };
        let mut x = self.embed(ids, &[0])?;
        let t = ids.dim(1)?;
        let (cos, sin) = (self.cos.narrow(0, 0, t)?, self.sin.narrow(0, 0, t)?);
        for layer in &self.layers {
            let layer = TrainingLayer {
                layer: layer.clone(),
                cfg: self.cfg.clone(),
                cos: cos.clone(),
                sin: sin.clone(),
                scale,
            };
            x = layer.forward_recomputed(&x, grads)?;
        }
        Ok(x)
    }

    /// The embeddings `[b, t, hidden]` of `ids` `[b, t]`, row `i` to be at
    /// positions `starts[i]..starts[i] + t` (one start: all rows there).
    fn embed(&self, ids: &Tensor, starts: &[usize]) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if let Some(longest) = starts.iter().max()
            && longest + t > self.cfg.max_position_embeddings
        {
            candle_core::bail!(
                "sequence of {} positions is longer than max_position_embeddings {}",
                longest + t,
                self.cfg.max_position_embeddings
            );
        }
        let ids = ids.flatten_all()?;
        let rows = match &self.embed {
            Weight::Dense(table) => table.index_select(&ids, 0)?,
            Weight::Quantized(table) => table.rows(&ids)?,
        };
        rows.reshape((b, t, self.cfg.hidden_size))
    }

    /// The decoder layers over `ids` `[b, t]`, row `i` at positions
    /// `starts[i]..starts[i] + t` (one start: all rows there). `attend(l, q,
    /// k, v)` is layer `l`'s attention for queries, keys and values `[b,
    /// heads, t, d]` with rotary embeddings applied: the one thing that
    /// differs between training, a cached sequence and a batch of them.
    fn decoder(
        &self,
        ids: &Tensor,
        starts: &[usize],
        mut attend: impl FnMut(usize, &Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        // The residual stream keeps the embedding's dtype (f32 when training).
        let mut x = self.embed(ids, starts)?;
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer.forward(
                &self.cfg,
                &x,
                |h| self.rope(h, starts),
                |q, k, v| attend(l, q, k, v),
            )?;
        }
        Ok(x)
    }

    /// Rotary embeddings for `x` `[b, heads, t, d]` whose row `i` holds
    /// positions `starts[i]..starts[i] + t` (one start: all rows).
    fn rope(&self, x: &Tensor, starts: &[usize]) -> Result<Tensor> {
        let (b, _, t, d) = x.dims4()?;
        if let [start] = starts {
            let cos = self.cos.narrow(0, *start, t)?;
            let sin = self.sin.narrow(0, *start, t)?;
            return rotary(x, &cos, &sin);
        }
        let positions: Vec<u32> = starts
            .iter()
            .flat_map(|s| (*s..*s + t).map(|p| p as u32))
            .collect();
        let positions = Tensor::new(positions, x.device())?;
        let rows = |table: &Tensor| table.index_select(&positions, 0)?.reshape((b, 1, t, d));
        rotary(x, &rows(&self.cos)?, &rows(&self.sin)?)
    }
}

fn rope_tables(cfg: &ModelConfig, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
    let hd = cfg.head_dim();
    let inv: Vec<f32> = (0..hd / 2)
        .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64) as f32)
        .collect();
    let inv = Tensor::from_vec(inv, (1, hd / 2), device)?;
    let pos = Tensor::arange(0u32, cfg.max_position_embeddings as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((cfg.max_position_embeddings, 1))?;
    let freqs = pos.broadcast_mul(&inv)?;
    // Both halves of the last dimension use the same angles.
    let freqs = Tensor::cat(&[&freqs, &freqs], 1)?;
    Ok((freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?))
}
