//! LoRA adapters: `W x + (alpha / r) B A x` on chosen projections, with `B`
//! zero at the start so the model is unchanged until it trains. Saved both
//! as a PEFT adapter (`adapter_config.json` + `adapter_model.safetensors`
//! with PEFT's tensor names) and merged into a full checkpoint.

use crate::nn::config::ModelConfig;
use crate::nn::init::SeededRng;
use crate::setting::check;
use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use std::path::Path;

/// The projections an adapter may target.
pub const MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Rank, scaling and targets of an adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub targets: Vec<String>,
}

impl LoraConfig {
    pub fn new(rank: usize, alpha: f64, targets: &[String]) -> Result<LoraConfig> {
        check(rank >= 1, "lora.rank", "must be at least 1")?;
        check(!targets.is_empty(), "lora.targets", "names no module")?;
        for t in targets {
            if !MODULES.contains(&t.as_str()) {
                bail!(
                    "unknown LoRA target '{t}' (choose from {})",
                    MODULES.join(", ")
                );
            }
        }
        Ok(LoraConfig {
            rank,
            alpha,
            targets: targets.to_vec(),
        })
    }

    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// Each adapted module: its path (e.g. `model.layers.0.self_attn.q_proj`),
/// input and output sizes.
pub fn adapted_modules(cfg: &ModelConfig, lora: &LoraConfig) -> Vec<(String, usize, usize)> {
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let kv = cfg.num_key_value_heads * cfg.head_dim();
    let mut out = Vec::new();
    for l in 0..cfg.num_hidden_layers {
        for (module, group, inp, outp) in [
            ("q_proj", "self_attn", h, h),
            ("k_proj", "self_attn", h, kv),
            ("v_proj", "self_attn", h, kv),
            ("o_proj", "self_attn", h, h),
            ("gate_proj", "mlp", h, i),
            ("up_proj", "mlp", h, i),
            ("down_proj", "mlp", i, h),
        ] {
            if lora.targets.iter().any(|t| t == module) {
                out.push((format!("model.layers.{l}.{group}.{module}"), inp, outp));
            }
        }
    }
    out
}

/// PEFT's name for the A or B matrix of `module`.
pub fn peft_name(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.{which}.weight")
}

/// A fresh adapter: A drawn with std 1/sqrt(in), B zero.
pub fn init(cfg: &ModelConfig, lora: &LoraConfig, seed: u64, device: &Device) -> Result<VarMap> {
    let map = VarMap::new();
    let mut rng = SeededRng::new(seed ^ 0x10_4a);
    {
        let mut data = map
            .data()
            .lock()
            .expect("the var map lock is never poisoned");
        for (module, inp, out) in adapted_modules(cfg, lora) {
            let a = rng.normal_tensor(
                &[lora.rank, inp],
                1.0 / (inp as f64).sqrt(),
                DType::F32,
                device,
            )?;
            let b = Tensor::zeros((out, lora.rank), DType::F32, device)?;
            data.insert(peft_name(&module, "lora_A"), Var::from_tensor(&a)?);
            data.insert(peft_name(&module, "lora_B"), Var::from_tensor(&b)?);
        }
    }
    Ok(map)
}

/// The (A, B) tensors of `module`, if it is adapted.
pub fn delta(lora: &VarMap, module: &str) -> Option<(Tensor, Tensor)> {
    let data = lora
        .data()
        .lock()
        .expect("the var map lock is never poisoned");
    let a = data.get(&peft_name(module, "lora_A"))?.as_tensor().clone();
    let b = data.get(&peft_name(module, "lora_B"))?.as_tensor().clone();
    Some((a, b))
}

/// Write `DIR/adapter_config.json` and `DIR/adapter_model.safetensors`.
pub fn save_adapter(
    dir: &Path,
    lora: &LoraConfig,
    params: &VarMap,
    base_model: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tensors = crate::nn::params::named_tensors(params)?;
    candle_core::safetensors::save(&tensors, dir.join("adapter_model.safetensors"))?;
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "lora_dropout": 0.0,
        "target_modules": lora.targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "base_model_name_or_path": base_model.display().to_string(),
    });
    std::fs::write(
        dir.join("adapter_config.json"),
        serde_json::to_vec_pretty(&config)?,
    )?;
    Ok(())
}

/// Read an adapter written by [`save_adapter`] (or by PEFT).
pub fn load_adapter(
    dir: &Path,
    cfg: &ModelConfig,
    device: &Device,
) -> Result<(LoraConfig, VarMap)> {
    let path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let rank = v["r"].as_u64().context("adapter_config.json has no r")? as usize;
    let alpha = v["lora_alpha"]
        .as_f64()
        .context("adapter_config.json has no lora_alpha")?;
    let targets: Vec<String> =
        serde_json::from_value(v["target_modules"].clone()).context("bad target_modules")?;
    let lora = LoraConfig::new(rank, alpha, &targets)?;
    let file = dir.join("adapter_model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, device).with_context(|| {
        format!(
            "cannot read {} (corrupt or not safetensors)",
            file.display()
        )
    })?;
    let map = VarMap::new();
    {
        let mut data = map
            .data()
            .lock()
            .expect("the var map lock is never poisoned");
        for (module, inp, out) in adapted_modules(cfg, &lora) {
            for (which, shape) in [("lora_A", [rank, inp]), ("lora_B", [out, rank])] {
                let name = peft_name(&module, which);
                let t = tensors
                    .remove(&name)
                    .with_context(|| format!("the adapter has no {name}"))?;
                if t.dims() != shape {
                    bail!("{name} has shape {:?}, expected {shape:?}", t.dims());
                }
                data.insert(name, Var::from_tensor(&t.to_dtype(DType::F32)?)?);
            }
        }
    }
    Ok((lora, map))
}

/// Base parameters with `W + scale * B A` folded into every adapted weight.
pub fn merge(
    base: &VarMap,
    cfg: &ModelConfig,
    lora: &LoraConfig,
    adapter: &VarMap,
) -> Result<VarMap> {
    let merged = VarMap::new();
    let base_data = base
        .data()
        .lock()
        .expect("the var map lock is never poisoned");
    let mut data = merged
        .data()
        .lock()
        .expect("the var map lock is never poisoned");
    for (name, var) in base_data.iter() {
        data.insert(name.clone(), Var::from_tensor(&var.as_tensor().copy()?)?);
    }
    for (module, _, _) in adapted_modules(cfg, lora) {
        let (a, b) =
            delta(adapter, &module).with_context(|| format!("the adapter lacks {module}"))?;
        let name = format!("{module}.weight");
        let w = data
            .get(&name)
            .with_context(|| format!("no base weight {name}"))?;
        let update = (b.matmul(&a)? * lora.scale())?;
        w.set(&(w.as_tensor() + update.to_dtype(w.dtype())?)?)?;
    }
    drop(data);
    Ok(merged)
}
