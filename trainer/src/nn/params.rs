//! A model's parameters: each one's Hugging Face name, shape and
//! initialisation, a fresh seeded set, and the set as named tensors. A leaf
//! that the model, checkpoints and LoRA all build on.

use crate::nn::config::ModelConfig;
use crate::nn::init::SeededRng;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use std::collections::HashMap;

/// One parameter: its name, its shape and how a fresh model initialises it.
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Normal(f64),
    Ones,
    Zeros,
}

/// Every parameter of a model with this config, in a fixed order.
pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let kv = cfg.num_key_value_heads * cfg.head_dim();
    let std = 0.02;
    let mut specs = vec![ParamSpec {
        name: "model.embed_tokens.weight".into(),
        shape: vec![v, h],
        init: Init::Normal(std),
    }];
    for l in 0..cfg.num_hidden_layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        let mut push =
            |name: String, shape: Vec<usize>, init| specs.push(ParamSpec { name, shape, init });
        push(p("input_layernorm.weight"), vec![h], Init::Ones);
        for (proj, out) in [("q_proj", h), ("k_proj", kv), ("v_proj", kv)] {
            push(
                p(&format!("self_attn.{proj}.weight")),
                vec![out, h],
                Init::Normal(std),
            );
            if cfg.attention_bias {
                push(p(&format!("self_attn.{proj}.bias")), vec![out], Init::Zeros);
            }
        }
        push(p("self_attn.o_proj.weight"), vec![h, h], Init::Normal(std));
        push(p("post_attention_layernorm.weight"), vec![h], Init::Ones);
        push(p("mlp.gate_proj.weight"), vec![i, h], Init::Normal(std));
        push(p("mlp.up_proj.weight"), vec![i, h], Init::Normal(std));
        push(p("mlp.down_proj.weight"), vec![h, i], Init::Normal(std));
    }
    specs.push(ParamSpec {
        name: "model.norm.weight".into(),
        shape: vec![h],
        init: Init::Ones,
    });
    if !cfg.tie_word_embeddings {
        specs.push(ParamSpec {
            name: "lm_head.weight".into(),
            shape: vec![v, h],
            init: Init::Normal(std),
        });
    }
    specs
}

/// A freshly initialised parameter set, reproducible from `seed`.
pub fn init_params(cfg: &ModelConfig, seed: u64, dtype: DType, device: &Device) -> Result<VarMap> {
    let map = VarMap::new();
    let mut rng = SeededRng::new(seed);
    {
        let mut data = map
            .data()
            .lock()
            .expect("the var map lock is never poisoned");
        for spec in param_specs(cfg) {
            let t = match spec.init {
                Init::Normal(std) => rng.normal_tensor(&spec.shape, std, dtype, device)?,
                Init::Ones => Tensor::ones(spec.shape.as_slice(), dtype, device)?,
                Init::Zeros => Tensor::zeros(spec.shape.as_slice(), dtype, device)?,
            };
            data.insert(spec.name, Var::from_tensor(&t)?);
        }
    }
    Ok(map)
}

/// The variables by name (what an optimizer updates).
pub fn named_vars(params: &VarMap) -> Vec<(String, Var)> {
    let data = params
        .data()
        .lock()
        .expect("the var map lock is never poisoned");
    data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The parameters as f32 tensors by name, ready for `safetensors::save`.
pub fn named_tensors(params: &VarMap) -> Result<HashMap<String, Tensor>> {
    let data = params
        .data()
        .lock()
        .expect("the var map lock is never poisoned");
    data.iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_dtype(DType::F32)?)))
        .collect()
}
