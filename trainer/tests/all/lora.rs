//! LoRA: no change at initialisation, merged == unmerged, only the adapted
//! projections change, and the adapter is saved under PEFT's names.

use crate::common;

use candle_core::{DType, Device, Tensor};
use leafe_trainer::io::checkpoint;
use leafe_trainer::jobs::sft::{SftConfig, train};
use leafe_trainer::nn::config::ModelConfig;
use leafe_trainer::nn::lora::{self, LoraConfig};
use leafe_trainer::nn::model::{Adapter, Model};
use std::path::PathBuf;

const DATA: &str = r#"{"messages": [{"role": "user", "content": "Which way?"}, {"role": "assistant", "content": "left, then down"}]}
{"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi there"}]}
"#;

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(dir.path(), &DATA.repeat(10), &common::small_spec());
    let data = dir.path().join("data.jsonl");
    std::fs::write(&data, DATA).unwrap();
    (dir, model, data)
}

fn logits(model: &Model) -> Vec<f32> {
    let ids = Tensor::new(&[[3u32, 40, 41, 42, 99, 7]], &Device::Cpu).unwrap();
    model
        .forward(&ids)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn targets() -> Vec<String> {
    vec!["q_proj".into(), "v_proj".into(), "down_proj".into()]
}

#[test]
fn a_fresh_adapter_changes_nothing() {
    let (_dir, model_dir, _) = setup();
    let cfg = ModelConfig::load(&model_dir).unwrap();
    let base = checkpoint::load_params(&model_dir, &cfg, DType::F32, &Device::Cpu).unwrap();
    let lcfg = LoraConfig::new(4, 8.0, &targets()).unwrap();
    let adapter = lora::init(&cfg, &lcfg, 1, &Device::Cpu).unwrap();
    let plain = logits(&Model::new(&cfg, &base).unwrap());
    let adapted = logits(
        &Model::with_adapter(
            &cfg,
            &base,
            Some(Adapter {
                config: &lcfg,
                params: &adapter,
            }),
        )
        .unwrap(),
    );
    assert!(
        plain
            .iter()
            .zip(&adapted)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}

#[test]
fn training_changes_only_the_adapter_and_merging_preserves_outputs() {
    let (dir, model_dir, data) = setup();
    let out = dir.path().join("lora");
    let lcfg = LoraConfig::new(4, 8.0, &targets()).unwrap();
    let cfg = SftConfig {
        epochs: 100,
        batch_size: 2,
        lr: 3e-2,
        warmup_steps: 2,
        lora: Some(lcfg.clone()),
        ..SftConfig::default()
    };
    let report = train(&model_dir, &data, &out, &cfg, &Device::Cpu, false, false).unwrap();
    let log = std::fs::read_to_string(out.join("loss_log.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    let first = first["loss"].as_f64().unwrap();
    assert!(
        report.final_loss < 0.85 * first,
        "the adapter learns: {first} -> {}",
        report.final_loss
    );

    // The adapter on disk carries PEFT's names and config.
    let adapter_cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("adapter/adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(adapter_cfg["peft_type"], "LORA");
    assert_eq!(adapter_cfg["r"], 4);
    let names: Vec<String> =
        candle_core::safetensors::load(out.join("adapter/adapter_model.safetensors"), &Device::Cpu)
            .unwrap()
            .into_keys()
            .collect();
    assert!(
        names.contains(
            &"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".to_string()
        )
    );
    assert!(
        names.contains(&"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight".to_string())
    );
    assert_eq!(names.len(), 2 * 3 * 2);

    // Only the adapted projections differ between the base and the merged model.
    let model_cfg = ModelConfig::load(&model_dir).unwrap();
    let base =
        candle_core::safetensors::load(model_dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let merged =
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(base.len(), merged.len());
    for (name, t) in &base {
        let same = t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            == merged[name]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
        let adapted = ["q_proj.weight", "v_proj.weight", "down_proj.weight"]
            .iter()
            .any(|m| name.ends_with(m));
        assert_eq!(same, !adapted, "{name}");
    }

    // Base + adapter gives the merged model's outputs.
    let base_params =
        checkpoint::load_params(&model_dir, &model_cfg, DType::F32, &Device::Cpu).unwrap();
    let (loaded_cfg, adapter) =
        lora::load_adapter(&out.join("adapter"), &model_cfg, &Device::Cpu).unwrap();
    assert_eq!(loaded_cfg, lcfg);
    let unmerged = logits(
        &Model::with_adapter(
            &model_cfg,
            &base_params,
            Some(Adapter {
                config: &lcfg,
                params: &adapter,
            }),
        )
        .unwrap(),
    );
    let merged_params =
        checkpoint::load_params(&out, &model_cfg, DType::F32, &Device::Cpu).unwrap();
    let merged_logits = logits(&Model::new(&model_cfg, &merged_params).unwrap());
    let worst = unmerged
        .iter()
        .zip(&merged_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "merged and unmerged differ by {worst}");
    assert!(
        unmerged
            .iter()
            .zip(&logits(&Model::new(&model_cfg, &base_params).unwrap()))
            .any(|(a, b)| a != b)
    );
}

#[test]
fn bad_lora_settings_are_refused() {
    assert!(LoraConfig::new(0, 8.0, &targets()).is_err());
    let err = LoraConfig::new(4, 8.0, &["attention".to_string()]).unwrap_err();
    assert!(
        err.to_string().contains("unknown LoRA target 'attention'"),
        "{err}"
    );
}
