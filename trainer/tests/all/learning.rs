//! The trainer learns and is correct: it overfits a handful of
//! conversations, trains on assistant tokens only, its gradients match finite
//! differences, and a saved model gives bit-identical logits when loaded.

use crate::common;
use crate::common::load;

use candle_core::{DType, Device, Tensor};
use leafe_trainer::io::chat::{ChatTemplate, Message, encode_conversation};
use leafe_trainer::io::checkpoint;
use leafe_trainer::jobs::generate::{GenerateConfig, generate};
use leafe_trainer::jobs::sft::{SetNorm, SftConfig, make_batch, masked_nll_sum, train};
use leafe_trainer::jobs::tiny::TinySpec;
use leafe_trainer::nn::config::{Arch, ModelConfig};
use leafe_trainer::nn::model::{KvBatch, KvCache, Model};
use leafe_trainer::nn::params::init_params;
use std::path::{Path, PathBuf};

const QA: [(&str, &str); 5] = [
    ("What is 2 plus 3?", "5"),
    ("Name a colour of the sky.", "blue"),
    ("Push the box left or right?", "right, then up"),
    ("Say hello.", "hello there"),
    ("Which move: up or down?", "down"),
];

fn conversations() -> Vec<Vec<Message>> {
    QA.iter()
        .map(|(q, a)| vec![Message::new("user", q), Message::new("assistant", a)])
        .collect()
}

/// A tiny model and its chat data in a temporary directory.
fn setup(arch: Arch) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let template =
        leafe_trainer::io::chat::ChatTemplate::new(leafe_trainer::io::chat::QWEN2_TEMPLATE, "", "")
            .unwrap();
    let text: String = conversations()
        .iter()
        .map(|c| template.render(c, false).unwrap())
        .collect::<Vec<_>>()
        .join("");
    let model = common::tiny_model(
        dir.path(),
        &text.repeat(20),
        &TinySpec {
            arch,
            ..common::small_spec()
        },
    );
    let data = dir.path().join("data.jsonl");
    let lines: Vec<String> = conversations()
        .iter()
        .map(|c| serde_json::json!({ "messages": c }).to_string())
        .collect();
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    (dir, model, data)
}

fn reply(dir: &Path, question: &str) -> String {
    let (model, tok) = load(dir);
    let ids = common::chat_prompt(dir, &tok, question);
    let eos: Vec<u32> = model.cfg.eos_token_id.into_iter().collect();
    generate(
        &model,
        &tok,
        &ids,
        &eos,
        &GenerateConfig {
            max_tokens: 20,
            ..Default::default()
        },
    )
    .unwrap()
    .text
}

#[test]
fn overfits_a_handful_of_conversations_and_reproduces_them_greedily() {
    for arch in [Arch::Qwen2, Arch::Llama] {
        let (dir, model, data) = setup(arch);
        let out = dir.path().join("sft");
        let cfg = SftConfig {
            epochs: 300,
            batch_size: 5,
            lr: 3e-3,
            warmup_steps: 5,
            ..SftConfig::default()
        };
        let report = train(&model, &data, &out, &cfg, &Device::Cpu, false, false).unwrap();
        assert!(
            report.final_loss < 0.01,
            "{arch:?}: loss {}",
            report.final_loss
        );
        for (q, a) in QA {
            assert_eq!(reply(&out, q), a, "{arch:?}: {q}");
        }
        assert!(out.join("loss_curve.svg").exists() && out.join("loss_log.jsonl").exists());
    }
}

#[test]
fn only_assistant_tokens_carry_gradient() {
    let (_dir, model_dir, _) = setup(Arch::Qwen2);
    let cfg = ModelConfig::load(&model_dir).unwrap();
    let params = checkpoint::load_params(&model_dir, &cfg, DType::F32, &Device::Cpu).unwrap();
    let model = Model::new(&cfg, &params).unwrap();
    let tok = leafe_trainer::io::tokenizer::load(&model_dir).unwrap();
    let template = ChatTemplate::load(&model_dir).unwrap();
    let convo = [
        Message::new("system", "Be brief."),
        Message::new("user", "Say hello."),
        Message::new("assistant", "hello there"),
    ];
    let example = encode_conversation(&template, &tok, &convo).unwrap();
    let trained = example.trained.iter().filter(|t| **t).count();
    assert!(
        trained >= 2 && trained < example.ids.len() / 2,
        "{example:?}"
    );
    let batch = make_batch(&[&example], 0, &Device::Cpu, &SetNorm::none()).unwrap();
    // The gradient of every parameter, for the given targets.
    let grads = |targets: &Tensor| -> Vec<Vec<f32>> {
        let logits = model.forward(&batch.inputs).unwrap();
        let store = masked_nll_sum(&logits, targets, &batch.mask)
            .unwrap()
            .backward()
            .unwrap();
        let mut vars: Vec<_> = params
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.iter()
            .map(|(name, v)| {
                let g = store
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("no gradient for {name}"));
                g.flatten_all().unwrap().to_vec1().unwrap()
            })
            .collect()
    };
    let original = batch.targets.to_vec2::<u32>().unwrap();
    let mask = batch.mask.to_vec2::<f32>().unwrap();
    let change = |keep_trained: bool| {
        let mut t = original.clone();
        for (x, m) in t[0].iter_mut().zip(&mask[0]) {
            if (*m == 0.0) == keep_trained {
                *x = (*x + 7) % cfg.vocab_size as u32;
            }
        }
        Tensor::new(t, &Device::Cpu).unwrap()
    };
    let base = grads(&batch.targets);
    // Every target outside the assistant turns changed: the same gradient, bit for bit.
    assert_eq!(grads(&change(true)), base);
    // A changed assistant target does change it (the test can fail).
    assert_ne!(grads(&change(false)), base);
}

/// A model small enough for finite differences, in f64 (so that central
/// differences are accurate), with weights larger than the 0.02 init so that
/// every path carries a visible gradient.
fn small_model(dtype: DType) -> (ModelConfig, candle_nn::VarMap) {
    let cfg = ModelConfig {
        arch: Arch::Qwen2,
        vocab_size: 13,
        hidden_size: 8,
        intermediate_size: 12,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        max_position_embeddings: 16,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: false,
        attention_bias: true,
        bos_token_id: None,
        eos_token_id: None,
    };
    let params = init_params(&cfg, 7, dtype, &Device::Cpu).unwrap();
    for var in params.all_vars() {
        if var.rank() >= 1 {
            let t = (var.as_tensor() * 20.0).unwrap();
            let t = if var.rank() == 1 {
                (t + 1.0).unwrap()
            } else {
                t
            };
            var.set(&t).unwrap();
        }
    }
    (cfg, params)
}

#[test]
fn gradients_match_finite_differences() {
    let dev = Device::Cpu;
    let (cfg, params) = small_model(DType::F64);
    let model = Model::new(&cfg, &params).unwrap();
    let ids = Tensor::new(&[[1u32, 5, 3, 9, 2, 11]], &dev).unwrap();
    let targets = Tensor::new(&[[5u32, 3, 9, 2, 11, 4]], &dev).unwrap();
    let mask = Tensor::new(&[[0f32, 1.0, 1.0, 0.0, 1.0, 1.0]], &dev).unwrap();
    // The plain loss over whole logits, and the trainer's: only the trained
    // positions (flattened indices), projected by `target_log_probs`.
    let rows = Tensor::new(&[1u32, 2, 4, 5], &dev).unwrap();
    let row_targets = Tensor::new(&[3u32, 9, 11, 4], &dev).unwrap();
    let losses: [&dyn Fn(&Model) -> Tensor; 2] = [
        &|m| masked_nll_sum(&m.forward(&ids).unwrap(), &targets, &mask).unwrap(),
        &|m| {
            m.target_log_probs(&ids, &rows, &row_targets)
                .unwrap()
                .sum_all()
                .unwrap()
                .neg()
                .unwrap()
        },
    ];
    for loss in losses {
        let value = loss(&model).to_scalar::<f64>().unwrap();
        assert!(value > 0.0);
        check_against_finite_differences(
            &model,
            &params,
            &|m| loss(m).to_scalar::<f64>().unwrap(),
            &loss(&model).backward().unwrap(),
        );
    }
}

/// The trainer's loss over a few trained positions of a fixed sequence.
fn small_loss(model: &Model) -> Tensor {
    let dev = Device::Cpu;
    let ids = Tensor::new(&[[1u32, 5, 3, 9, 2, 11], [4, 4, 8, 0, 12, 7]], &dev).unwrap();
    let rows = Tensor::new(&[1u32, 2, 4, 5, 6, 9, 11], &dev).unwrap();
    let targets = Tensor::new(&[3u32, 9, 11, 4, 8, 1, 2], &dev).unwrap();
    model
        .target_log_probs(&ids, &rows, &targets)
        .unwrap()
        .sum_all()
        .unwrap()
        .neg()
        .unwrap()
}

/// Every variable of `trained` has a gradient in both stores, the two
/// within `tolerance` of each other relative to the largest entry.
fn assert_same_gradients(
    trained: &candle_nn::VarMap,
    a: &candle_core::backprop::GradStore,
    b: &candle_core::backprop::GradStore,
    tolerance: f64,
) {
    for (name, var) in leafe_trainer::nn::params::named_vars(trained) {
        let grad = |store: &candle_core::backprop::GradStore| {
            store
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient reaches {name}"))
                .to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        let (a, b) = (grad(a), grad(b));
        let scale = a.iter().fold(0f64, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{name}: zero gradient");
        let diff = a
            .iter()
            .zip(&b)
            .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= tolerance * scale,
            "{name}: differ by {diff} (scale {scale})"
        );
    }
}

#[test]
fn recomputed_layers_give_the_same_gradients() {
    // All weights, f64: the same ops in the same order, so equal to rounding.
    let (cfg, params) = small_model(DType::F64);
    let plain = Model::new(&cfg, &params).unwrap();
    let recomputing = Model::new(&cfg, &params).unwrap().with_recomputation(true);
    let (loss, loss_recomputed) = (small_loss(&plain), small_loss(&recomputing));
    assert_eq!(
        loss.to_scalar::<f64>().unwrap(),
        loss_recomputed.to_scalar::<f64>().unwrap()
    );
    let expected = plain.backward(&loss).unwrap();
    assert_same_gradients(
        &params,
        &expected,
        &recomputing.backward(&loss_recomputed).unwrap(),
        1e-12,
    );
    // The layers' weight gradients come only from `Model::backward`: the
    // plain backward pass of a recomputing model misses them (so the
    // comparison above sees them).
    let q = params
        .data()
        .lock()
        .unwrap()
        .get("model.layers.0.self_attn.q_proj.weight")
        .unwrap()
        .clone();
    assert!(
        small_loss(&recomputing)
            .backward()
            .unwrap()
            .get(q.as_tensor())
            .is_none()
    );

    // bf16 mixed precision, and a LoRA adapter (frozen weights: the layers'
    // input needs no gradient; gradients reach the adapter only).
    let (cfg, params) = small_model(DType::F32);
    let lora =
        leafe_trainer::nn::lora::LoraConfig::new(2, 4.0, &["q_proj".into(), "down_proj".into()])
            .unwrap();
    let adapter = leafe_trainer::nn::lora::init(&cfg, &lora, 3, &Device::Cpu).unwrap();
    // B starts at zero; make it non-zero so that A's gradient is too.
    for var in adapter.all_vars() {
        var.set(&(var.as_tensor().ones_like().unwrap() * 0.3).unwrap())
            .unwrap();
    }
    let gradients = |dtype: DType, lora_adapter: bool, recompute: bool| {
        let ad = lora_adapter.then_some(leafe_trainer::nn::model::Adapter {
            config: &lora,
            params: &adapter,
        });
        let model = Model::for_training(&cfg, &params, ad, dtype)
            .unwrap()
            .with_recomputation(recompute);
        model.backward(&small_loss(&model)).unwrap()
    };
    for (dtype, lora_adapter, trained) in
        [(DType::BF16, false, &params), (DType::F32, true, &adapter)]
    {
        let plain = gradients(dtype, lora_adapter, false);
        let recomputed = gradients(dtype, lora_adapter, true);
        assert_same_gradients(trained, &plain, &recomputed, 1e-6);
    }
}

fn check_against_finite_differences(
    model: &Model,
    params: &candle_nn::VarMap,
    loss: &dyn Fn(&Model) -> f64,
    grads: &candle_core::backprop::GradStore,
) {
    let dev = Device::Cpu;
    let data = params.data().lock().unwrap();
    let names = [
        "model.embed_tokens.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.bias",
        "model.layers.1.self_attn.v_proj.weight",
        "model.layers.1.self_attn.o_proj.weight",
        "model.layers.1.mlp.gate_proj.weight",
        "model.layers.1.post_attention_layernorm.weight",
        "model.norm.weight",
        "lm_head.weight",
    ];
    let eps = 1e-5;
    for name in names {
        let var = data.get(name).unwrap();
        let analytic = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient reaches {name}"));
        let flat_grad: Vec<f64> = analytic.flatten_all().unwrap().to_vec1().unwrap();
        let original = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for k in [0, original.len() / 2, original.len() - 1] {
            let bump = |delta: f64| {
                let mut v = original.clone();
                v[k] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap())
                    .unwrap();
                let l = loss(model);
                var.set(&Tensor::from_vec(original.clone(), var.shape(), &dev).unwrap())
                    .unwrap();
                l
            };
            let numeric = (bump(eps) - bump(-eps)) / (2.0 * eps);
            let a = flat_grad[k];
            assert!(
                (a - numeric).abs() <= 1e-5 + 1e-4 * numeric.abs().max(a.abs()),
                "{name}[{k}]: analytic {a}, numeric {numeric}"
            );
        }
    }
}

#[test]
fn save_then_load_gives_bit_identical_logits_and_kv_cache_agrees() {
    let (dir, model_dir, _) = setup(Arch::Llama);
    let (model, tok) = load(&model_dir);
    let ids = tok
        .encode("Push the box left or right?", false)
        .unwrap()
        .get_ids()
        .to_vec();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model.forward(&input).unwrap();
    let copy = dir.path().join("copy");
    let cfg = ModelConfig::load(&model_dir).unwrap();
    let params = checkpoint::load_params(&model_dir, &cfg, DType::F32, &Device::Cpu).unwrap();
    checkpoint::save(&copy, &cfg, &params, &model_dir, DType::F32).unwrap();
    let (again, _) = load(&copy);
    let logits2 = again.forward(&input).unwrap();
    let (a, b) = (
        logits.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        logits2.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    // Cached generation and full recomputation produce the same text.
    let eos: Vec<u32> = cfg.eos_token_id.into_iter().collect();
    let base = GenerateConfig {
        max_tokens: 12,
        ..Default::default()
    };
    let cached = generate(&again, &tok, &ids, &eos, &base).unwrap();
    let full = generate(
        &again,
        &tok,
        &ids,
        &eos,
        &GenerateConfig {
            no_cache: true,
            ..base
        },
    )
    .unwrap();
    assert_eq!(cached.tokens, full.tokens);
}

fn flat_logits(model: &Model, input: &Tensor) -> Vec<f32> {
    model
        .forward(input)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn sharded_and_half_precision_checkpoints_load() {
    let (dir, model_dir, _) = setup(Arch::Qwen2);
    let cfg = ModelConfig::load(&model_dir).unwrap();
    let tensors =
        candle_core::safetensors::load(model_dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let (model, tok) = load(&model_dir);
    let ids = tok.encode("Say hello.", false).unwrap().get_ids().to_vec();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let reference: Vec<f32> = flat_logits(&model, &input);
    let copy_tokenizer = |to: &Path| {
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(model_dir.join(f), to.join(f)).unwrap();
        }
    };

    // Two shards and an index, as transformers writes large models.
    let sharded = dir.path().join("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    copy_tokenizer(&sharded);
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let shard: std::collections::HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), tensors[*n].clone()))
            .collect();
        candle_core::safetensors::save(&shard, sharded.join(file)).unwrap();
        for n in part.iter() {
            weight_map.insert((*n).clone(), serde_json::json!(file));
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let (from_shards, _) = load(&sharded);
    let logits: Vec<f32> = flat_logits(&from_shards, &input);
    assert_eq!(logits, reference);

    // bf16 and f16 weights are read and widened to f32.
    for dtype in [DType::BF16, DType::F16] {
        let half = dir.path().join(format!("{dtype:?}"));
        std::fs::create_dir_all(&half).unwrap();
        copy_tokenizer(&half);
        let converted: std::collections::HashMap<String, Tensor> = tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.to_dtype(dtype).unwrap()))
            .collect();
        candle_core::safetensors::save(&converted, half.join("model.safetensors")).unwrap();
        let (m, _) = load(&half);
        let logits: Vec<f32> = flat_logits(&m, &input);
        let worst = logits
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 0.05, "{dtype:?}: {worst}");
        assert_eq!(cfg.vocab_size * ids.len(), logits.len());
    }
}

/// Mixed precision (bf16 or f16 matmuls over f32 master weights, f16 with
/// loss scaling) tracks f32 training: same data, seed and steps, a loss
/// within 1% of f32's at every one of 30 steps (measured: bf16 within 0.2%,
/// f16 within 0.02%), and the f32 weights written either way. Training with
/// recomputed layers (`--grad-checkpoint`) gives f32's losses.
#[test]
fn mixed_precision_and_recomputation_track_f32_training() {
    let (dir, model, data) = setup(Arch::Qwen2);
    let run = |dtype: DType, grad_checkpoint: bool| -> Vec<f64> {
        let out = dir.path().join(format!("sft-{dtype:?}-{grad_checkpoint}"));
        let cfg = SftConfig {
            epochs: 30,
            batch_size: 5,
            lr: 3e-3,
            warmup_steps: 3,
            dtype,
            grad_checkpoint,
            ..SftConfig::default()
        };
        train(&model, &data, &out, &cfg, &Device::Cpu, false, false).unwrap();
        let weights =
            candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
        assert!(weights.values().all(|t| t.dtype() == DType::F32));
        std::fs::read_to_string(out.join("loss_log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let (full, mixed) = (run(DType::F32, false), run(DType::BF16, false));
    let recomputed = run(DType::F32, true);
    let half = run(DType::F16, false);
    assert_eq!(half.len(), 30);
    for (step, (a, b)) in full.iter().zip(&half).enumerate() {
        assert!(
            (a - b).abs() <= 0.01 * a,
            "step {step}: f32 loss {a}, f16 loss {b}"
        );
    }
    assert_eq!(recomputed.len(), 30);
    for (step, (a, b)) in full.iter().zip(&recomputed).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * a,
            "step {step}: loss {a}, with recomputed layers {b}"
        );
    }
    assert_eq!(full.len(), 30);
    assert_eq!(full.len(), mixed.len());
    for (step, (a, b)) in full.iter().zip(&mixed).enumerate() {
        assert!(
            (a - b).abs() <= 0.01 * a,
            "step {step}: f32 loss {a}, bf16 loss {b}"
        );
    }
    assert!(
        mixed[29] < 0.5 * mixed[0],
        "bf16 training learns: {mixed:?}"
    );
    // bf16 really ran: the losses are close, not equal.
    assert!(full.iter().zip(&mixed).any(|(a, b)| a != b));
}

/// f16 with a loss scale far too large: the first steps overflow, update
/// nothing and halve the scale, until the gradients fit; then training goes
/// on and learns.
#[test]
fn f16_loss_scaling_skips_overflowing_steps_and_backs_off() {
    let (dir, model, data) = setup(Arch::Qwen2);
    let out = dir.path().join("sft-f16-overflow");
    let cfg = SftConfig {
        epochs: 30,
        batch_size: 5,
        lr: 3e-3,
        warmup_steps: 3,
        dtype: DType::F16,
        initial_loss_scale: 2f64.powi(26),
        ..SftConfig::default()
    };
    let report = train(&model, &data, &out, &cfg, &Device::Cpu, false, false).unwrap();
    let log: Vec<serde_json::Value> = std::fs::read_to_string(out.join("loss_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(log.len(), 30);
    let overflowed = log.iter().take_while(|e| e["overflow"] == true).count();
    assert!(
        (1..15).contains(&overflowed),
        "{overflowed} steps overflowed"
    );
    assert!(
        log[overflowed..]
            .iter()
            .all(|e| e.get("overflow").is_none())
    );
    assert_eq!(report.overflowed_steps, overflowed);
    for (i, entry) in log.iter().enumerate().take(overflowed + 1) {
        assert_eq!(entry["loss_scale"], 2f64.powi(26 - i as i32), "step {i}");
    }
    // A skipped step updated nothing: the next step sees the same loss.
    let loss = |i: usize| log[i]["loss"].as_f64().unwrap();
    for i in 1..=overflowed {
        assert!((loss(i) - loss(0)).abs() < 1e-5 * loss(0), "step {i}");
    }
    assert!(loss(29) < 0.8 * loss(overflowed), "learns after: {log:?}");
}

/// `save_dtype: BF16` writes the final model in bf16 (about half the bytes,
/// config.json's torch_dtype saying so) and it loads, its logits close to
/// the same run's saved in f32; the checkpoints along the way stay f32.
#[test]
fn the_final_model_is_written_in_the_precision_asked_for() {
    let (dir, model, data) = setup(Arch::Qwen2);
    let run = |save_dtype: DType| -> PathBuf {
        let out = dir.path().join(format!("save-{save_dtype:?}"));
        let cfg = SftConfig {
            epochs: 2,
            batch_size: 5,
            save_every: 1,
            save_dtype,
            ..SftConfig::default()
        };
        train(&model, &data, &out, &cfg, &Device::Cpu, false, false).unwrap();
        out
    };
    let (full, half) = (run(DType::F32), run(DType::BF16));
    let dtypes = |dir: &Path| -> Vec<DType> {
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
            .unwrap()
            .values()
            .map(|t| t.dtype())
            .collect()
    };
    assert!(dtypes(&half).iter().all(|d| *d == DType::BF16));
    assert!(
        dtypes(&half.join("checkpoint-1"))
            .iter()
            .all(|d| *d == DType::F32)
    );
    assert!(dtypes(&full).iter().all(|d| *d == DType::F32));
    let config = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
    };
    assert_eq!(config(&half)["torch_dtype"], "bfloat16");
    assert_eq!(config(&full)["torch_dtype"], "float32");
    let size = |dir: &Path| {
        std::fs::metadata(dir.join("model.safetensors"))
            .unwrap()
            .len()
    };
    assert!(
        size(&half) * 10 < size(&full) * 6,
        "{} vs {}",
        size(&half),
        size(&full)
    );

    let logits = |dir: &Path| -> Vec<f32> {
        let (model, _) = load(dir);
        recomputed(&model, &[3, 17, 42, 8])
    };
    let (a, b) = (logits(&full), logits(&half));
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff > 0.0 && diff < 0.05 * scale,
        "logits differ by {diff} (scale {scale})"
    );
}

/// The next-token logits after `tokens`, recomputed from scratch (no
/// cache): what the cached and batched paths are held to.
fn recomputed(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let input = Tensor::new(tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    model
        .forward_last(&input)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

/// A batched decoding step over sequences at different positions gives each
/// sequence the logits it gets alone, and sequences can leave the batch (the
/// last one takes the free row) and join it.
#[test]
fn a_batched_decode_step_matches_each_sequence_alone() {
    let (_dir, model_dir, _) = setup(Arch::Qwen2);
    let (model, tok) = common::load_frozen(&model_dir);
    let prompts = [
        "Say hello.",
        "Push the box left or right?",
        "What is 2 plus 3? Answer",
    ];
    let mut alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| tok.encode(*p, false).unwrap().get_ids().to_vec())
        .collect();
    let prefilled = |p: &[u32]| -> KvCache { model.prefill_batch(&[p]).unwrap().1.remove(0) };
    let mut batch = KvBatch::new();
    for p in &alone {
        batch.push(prefilled(p)).unwrap();
    }
    let step_and_check =
        |batch: &mut KvBatch, alone: &mut Vec<Vec<u32>>, next: [u32; 3], what: &str| {
            let batched = model
                .decode_batch(&next, batch)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            for i in 0..3 {
                alone[i].push(next[i]);
                let diff = max_diff(&recomputed(&model, &alone[i]), &batched[i]);
                assert!(diff < 1e-5, "{what}, sequence {i}: logits differ by {diff}");
                assert_eq!(batch.positions(i), alone[i].len());
            }
        };
    // Twelve steps with all three, at their different positions (past the
    // batch's first capacity of 16 positions, so it grows).
    for step in 0..12u32 {
        step_and_check(
            &mut batch,
            &mut alone,
            [7 + step, 11 + step, 13 + step],
            &format!("step {step}"),
        );
    }
    assert!((0..3).all(|i| batch.positions(i) > 16));
    // The first leaves (the third takes its row); a new one joins.
    batch.swap_remove(0).unwrap();
    alone.swap_remove(0);
    let joining = tok.encode("up up", false).unwrap().get_ids().to_vec();
    batch.push(prefilled(&joining)).unwrap();
    alone.push(joining);
    assert_eq!(batch.len(), 3);
    step_and_check(&mut batch, &mut alone, [3, 5, 9], "after the swap");
}

/// Prompts of different lengths prefilled together (padded to the longest)
/// get the next-token logits each gets alone, and caches that decode on as
/// each prompt alone does.
#[test]
fn prompts_prefilled_together_match_each_prompt_alone() {
    let (_dir, model_dir, _) = setup(Arch::Qwen2);
    let (model, tok) = common::load_frozen(&model_dir);
    let ids: Vec<Vec<u32>> = [
        "Say hello.",
        "Push the box left or right? Then up, twice.",
        "up",
    ]
    .iter()
    .map(|p| tok.encode(*p, false).unwrap().get_ids().to_vec())
    .collect();
    let prompts: Vec<&[u32]> = ids.iter().map(|p| p.as_slice()).collect();
    let (together, caches) = model.prefill_batch(&prompts).unwrap();
    let together = together.to_vec2::<f32>().unwrap();
    let mut batch = KvBatch::new();
    for ((prompt, cache), logits) in prompts.iter().zip(caches).zip(&together) {
        assert_eq!(cache.len(), prompt.len());
        batch.push(cache).unwrap();
        let diff = max_diff(&recomputed(&model, prompt), logits);
        assert!(diff < 1e-5, "prefill logits differ by {diff}");
    }
    let next = [5, 6, 7];
    let decoded = model
        .decode_batch(&next, &mut batch)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for ((prompt, token), logits) in prompts.iter().zip(next).zip(&decoded) {
        let mut continued = prompt.to_vec();
        continued.push(token);
        let diff = max_diff(&recomputed(&model, &continued), logits);
        assert!(diff < 1e-5, "decoding on differs by {diff}");
    }
}
