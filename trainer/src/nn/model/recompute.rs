//! Activation recomputation (`--grad-checkpoint`): each decoder layer is one
//! op that keeps only its input for the backward pass, and its backward pass
//! runs the layer again to get the activations it needs. A step then holds
//! one hidden-size vector per token and layer, plus one layer's activations
//! at a time, at the price of a second forward pass.
//!
//! An op's backward pass can only return gradients for its own inputs, so
//! the gradients of the layer's weights found there wait in [`WeightGrads`]
//! until the outer backward pass is over and are then added to its store
//! ([`crate::nn::model::Model::backward`]).

use super::layer::Layer;
use crate::nn::config::ModelConfig;
use crate::nn::ops::Precomputed;
use crate::nn::ops::attention::causal_attention;
use crate::nn::ops::rope::rotary;
use candle_core::backprop::GradStore;
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, Layout, Result, Shape, Tensor, TensorId, Var,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Gradients of the weights, found by the recomputing layers' backward
/// passes, waiting to join the outer backward pass's store.
#[derive(Default)]
pub(super) struct WeightGrads(Mutex<HashMap<TensorId, Tensor>>);

impl WeightGrads {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<TensorId, Tensor>>> {
        self.0
            .lock()
            .map_err(|_| candle_core::Error::Msg("the weight gradients' lock was poisoned".into()))
    }

    /// Keep the gradients of `store` that belong to `variables`. They are
    /// detached first: a gradient computed by candle's backward pass still
    /// references the activations it was computed from, which would keep
    /// every recomputed layer alive.
    fn add(&self, store: &GradStore, variables: &[TensorId]) -> Result<()> {
        let mut waiting = self.lock()?;
        for id in variables {
            let Some(grad) = store.get_id(*id) else {
                continue;
            };
            let grad = grad.detach();
            let sum = match waiting.remove(id) {
                Some(before) => (before + grad)?,
                None => grad,
            };
            waiting.insert(*id, sum);
        }
        Ok(())
    }

    /// Add the waiting gradients to `store`, and forget them.
    pub fn move_into(&self, store: &mut GradStore) -> Result<()> {
        for (id, grad) in self.lock()?.drain() {
            let sum = match store.get_id(id) {
                Some(before) => (before + grad)?,
                None => grad,
            };
            store.insert_id(id, sum);
        }
        Ok(())
    }
}

/// A training layer as the model runs it: causal attention over the whole
/// sequence from position 0.
#[derive(Clone)]
pub(super) struct TrainingLayer {
    pub layer: Layer,
    pub cfg: ModelConfig,
    /// The rotary tables' first `t` rows.
    pub cos: Tensor,
    pub sin: Tensor,
    pub scale: f64,
}

impl TrainingLayer {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.layer.forward(
            &self.cfg,
            x,
            |h| rotary(h, &self.cos, &self.sin),
            |q, k, v| causal_attention(q, k, v, 0, self.scale),
        )
    }

    /// The layer over `x`, keeping only `x` for the backward pass; the
    /// weights' gradients go to `grads`.
    pub fn forward_recomputed(&self, x: &Tensor, grads: &Arc<WeightGrads>) -> Result<Tensor> {
        // The op joins the graph only through its input: where the input
        // needs no gradient (a LoRA adapter's frozen embedding) it becomes a
        // variable so that the weights' gradients are still computed.
        let x = match x.track_op() {
            true => x.clone(),
            false => Var::from_tensor(x)?.into_inner(),
        };
        let output = self.forward(&x.detach())?;
        x.apply_op1(Recompute {
            layer: self.clone(),
            grads: grads.clone(),
            output: Precomputed::new(output),
        })
    }
}

struct Recompute {
    layer: TrainingLayer,
    grads: Arc<WeightGrads>,
    output: Precomputed,
}

impl CustomOp1 for Recompute {
    fn name(&self) -> &'static str {
        "recomputed-layer"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        self.output.cpu()
    }

    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> Result<(CudaStorage, Shape)> {
        self.output.cuda()
    }

    /// Run the layer again with a graph, and back-propagate `grad` through
    /// it: the input's gradient is returned, the weights' kept.
    fn bwd(&self, x: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let x = Var::from_tensor(&x.detach())?.into_inner();
        let y = self.layer.forward(&x)?;
        let store = (y * grad.detach())?.sum_all()?.backward()?;
        self.grads.add(&store, &self.layer.layer.variables)?;
        Ok(store.get(&x).map(Tensor::detach))
    }
}
