//! Hugging Face checkpoint directories: `config.json`, `model.safetensors`
//! (or shards listed in `model.safetensors.index.json`), `tokenizer.json`,
//! `tokenizer_config.json` with the chat template.

use crate::nn::config::ModelConfig;
use crate::nn::model::Model;
use crate::nn::params::{named_tensors, param_specs};
use crate::nn::quant::Quantization;
use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The weight files of a checkpoint.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("cannot read {}", index.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", index.display()))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .context("index has no weight_map")?;
        let files: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if !single.exists() {
        bail!(
            "{} has no model.safetensors (nor a model.safetensors.index.json)",
            dir.display()
        );
    }
    Ok(vec![single])
}

/// Load the parameters of `cfg` from `dir` as trainable f32 (or `dtype`) variables.
pub fn load_params(dir: &Path, cfg: &ModelConfig, dtype: DType, device: &Device) -> Result<VarMap> {
    crate::nn::memory::check(crate::nn::memory::weights(cfg) * 2, "loading this model")?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for file in weight_files(dir)? {
        let loaded = candle_core::safetensors::load(&file, device).with_context(|| {
            format!(
                "cannot read {} (corrupt or not safetensors)",
                file.display()
            )
        })?;
        tensors.extend(loaded);
    }
    let map = VarMap::new();
    {
        let mut data = map
            .data()
            .lock()
            .expect("the var map lock is never poisoned");
        for spec in param_specs(cfg) {
            let t = tensors.remove(&spec.name).with_context(|| {
                format!(
                    "the checkpoint in {} has no tensor {}",
                    dir.display(),
                    spec.name
                )
            })?;
            if t.dims() != spec.shape.as_slice() {
                bail!(
                    "tensor {} has shape {:?}, config.json implies {:?}",
                    spec.name,
                    t.dims(),
                    spec.shape
                );
            }
            data.insert(spec.name, Var::from_tensor(&t.to_dtype(dtype)?)?);
        }
    }
    Ok(map)
}

/// Load a checkpoint for inference (generation, serving, logits): its
/// config, its weights as constants, stored as `quantization` says
/// ([`Model::quantized`]; the float weights are freed once quantized), and
/// its tokenizer.
pub fn load_for_inference(
    dir: &Path,
    device: &Device,
    quantization: Quantization,
) -> Result<(Model, tokenizers::Tokenizer)> {
    let cfg = ModelConfig::load(dir)?;
    let params = load_params(dir, &cfg, DType::F32, device)?;
    let model = Model::quantized(&cfg, &params, quantization)?;
    Ok((model, crate::io::tokenizer::load(dir)?))
}

/// Write the parameters as `model.safetensors` (in `dtype`, F32 or BF16;
/// Hugging Face names), `config.json` (its `torch_dtype` says which) and
/// `generation_config.json` into `dir`, and copy the tokenizer files from
/// `tokenizer_dir`.
pub fn save(
    dir: &Path,
    cfg: &ModelConfig,
    params: &VarMap,
    tokenizer_dir: &Path,
    dtype: DType,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tensors = named_tensors(params)?
        .into_iter()
        .map(|(name, t)| Ok((name, t.to_dtype(dtype)?)))
        .collect::<Result<std::collections::HashMap<_, _>>>()?;
    let tmp = dir.join("model.safetensors.tmp");
    candle_core::safetensors::save(&tensors, &tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("model.safetensors"))?;
    let mut json = cfg.to_json();
    json["torch_dtype"] = serde_json::json!(crate::nn::config::torch_dtype(dtype));
    let mut config = serde_json::to_vec_pretty(&json)?;
    config.push(b'\n');
    std::fs::write(dir.join("config.json"), config)?;
    let generation = serde_json::json!({
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "do_sample": false,
    });
    std::fs::write(
        dir.join("generation_config.json"),
        serde_json::to_vec_pretty(&generation)?,
    )?;
    if tokenizer_dir != dir {
        for file in ["tokenizer.json", "tokenizer_config.json"] {
            let from = tokenizer_dir.join(file);
            if from.exists() {
                std::fs::copy(&from, dir.join(file))
                    .with_context(|| format!("cannot copy {}", from.display()))?;
            }
        }
    }
    Ok(())
}
