//! `import-gguf` on GGUF files written here from tiny checkpoints the way
//! llama.cpp's converter writes them (Llama q/k rows permuted, norms in
//! F32, the tokenizer in metadata), in every supported tensor type, and on
//! broken files.

use crate::common::{self, max_diff};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use leafe_trainer::io::gguf::import;
use leafe_trainer::jobs::tiny::TinySpec;
use leafe_trainer::nn::config::{Arch, ModelConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const CORPUS: &str = "the box is left of the goal. push the box up, then right. \
    def add(a, b): return a + b\nprint(add(2, 3))\n";

/// llama.cpp's `permute` for the Llama q/k rows: `[head, 2, half]` to `[head, half, 2]`.
fn permute(t: &Tensor, heads: usize) -> Tensor {
    let dims = t.dims().to_vec();
    let half = dims[0] / heads / 2;
    let cols: usize = dims[1..].iter().product();
    t.reshape((heads, 2, half, cols))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape(dims)
        .unwrap()
}

/// How to spoil the file, for the error tests.
#[derive(Default)]
struct Spoil {
    arch: Option<&'static str>,
    drop_tensor: Option<&'static str>,
    feed_forward_length: Option<u32>,
}

/// Write the checkpoint `dir` as a GGUF file, matrices in `dtype`.
fn write_gguf(dir: &Path, dtype: GgmlDType, spoil: &Spoil) -> PathBuf {
    let cfg = ModelConfig::load(dir).unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let arch = match cfg.arch {
        Arch::Llama => "llama",
        Arch::Qwen2 => "qwen2",
    };
    let mut q: Vec<(String, QTensor)> = Vec::new();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let mut t = tensors[name].clone();
        if cfg.arch == Arch::Llama {
            if name.contains("q_proj") {
                t = permute(&t, cfg.num_attention_heads);
            } else if name.contains("k_proj") {
                t = permute(&t, cfg.num_key_value_heads);
            }
        }
        let gname = leafe_trainer::io::gguf::gguf_name(name).unwrap();
        if spoil.drop_tensor == Some(gname.as_str()) {
            continue;
        }
        let ty = if t.rank() == 1 { GgmlDType::F32 } else { dtype };
        q.push((gname, QTensor::quantize(&t, ty).unwrap()));
    }
    let tok: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tokenizer.json")).unwrap()).unwrap();
    let vocab = tok["model"]["vocab"].as_object().unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (t, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = t.clone();
    }
    let mut types = vec![1i32; tokens.len()];
    for added in tok["added_tokens"].as_array().unwrap() {
        types[added["id"].as_u64().unwrap() as usize] = 3;
    }
    let merges: Vec<Value> = tok["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => Value::String(s.clone()),
            pair => Value::String(format!(
                "{} {}",
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap()
            )),
        })
        .collect();
    let template: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tokenizer_config.json")).unwrap()).unwrap();
    let a = spoil.arch.unwrap_or(arch);
    let u = |n: usize| Value::U32(n as u32);
    let meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(a.into())),
        (format!("{a}.embedding_length"), u(cfg.hidden_size)),
        (
            format!("{a}.feed_forward_length"),
            Value::U32(
                spoil
                    .feed_forward_length
                    .unwrap_or(cfg.intermediate_size as u32),
            ),
        ),
        (format!("{a}.block_count"), u(cfg.num_hidden_layers)),
        (
            format!("{a}.attention.head_count"),
            u(cfg.num_attention_heads),
        ),
        (
            format!("{a}.attention.head_count_kv"),
            u(cfg.num_key_value_heads),
        ),
        (
            format!("{a}.context_length"),
            u(cfg.max_position_embeddings),
        ),
        (
            format!("{a}.rope.freq_base"),
            Value::F32(cfg.rope_theta as f32),
        ),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(cfg.rms_norm_eps as f32),
        ),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("default".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(merges)),
        (
            "tokenizer.ggml.eos_token_id".into(),
            u(cfg.eos_token_id.unwrap() as usize),
        ),
        (
            "tokenizer.chat_template".into(),
            Value::String(template["chat_template"].as_str().unwrap().into()),
        ),
    ];
    let mut meta = meta;
    if let Some(bos) = cfg.bos_token_id {
        meta.push(("tokenizer.ggml.bos_token_id".into(), u(bos as usize)));
    }
    let path = dir.with_extension(format!("{dtype:?}.gguf"));
    let mut file = std::fs::File::create(&path).unwrap();
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let q_refs: Vec<(&str, &QTensor)> = q.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut file, &meta_refs, &q_refs).unwrap();
    path
}

fn tiny(dir: &Path, arch: Arch, hidden: usize) -> PathBuf {
    let spec = TinySpec {
        arch,
        vocab_size: 300,
        hidden_size: hidden,
        intermediate_size: 2 * hidden,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        max_positions: 256,
        seed: 3,
    };
    common::tiny_model(dir, CORPUS, &spec)
}

fn weights(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
}

fn last_logits(dir: &Path, text: &str) -> Tensor {
    let (model, tokenizer) = common::load(dir);
    let ids = leafe_trainer::io::tokenizer::ids(&tokenizer, text).unwrap();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model.forward(&input).unwrap().squeeze(0).unwrap();
    logits.get(ids.len() - 1).unwrap()
}

#[test]
fn f32_imports_give_the_original_logits_tokenizer_and_template() {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let tmp = tempfile::tempdir().unwrap();
        let original = tiny(tmp.path(), arch, 64);
        let gguf = write_gguf(&original, GgmlDType::F32, &Spoil::default());
        let out = tmp.path().join("imported");
        let done = import(&gguf, &out, DType::F32).unwrap();
        assert_eq!(done.config.arch, arch);
        // Every weight back in transformers' layout: this fails if the
        // Llama q/k permutation is not undone.
        let (a, b) = (weights(&original), weights(&out));
        assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            assert_eq!(max_diff(t, &b[name]), 0.0, "{arch:?} {name}");
        }
        let text = "push the box up, then right";
        let diff = max_diff(&last_logits(&original, text), &last_logits(&out, text));
        assert!(diff < 1e-5, "{arch:?}: logits differ by {diff}");
        let (_, tok_a) = common::load(&original);
        let (_, tok_b) = common::load(&out);
        let ids =
            |t: &tokenizers::Tokenizer, s: &str| leafe_trainer::io::tokenizer::ids(t, s).unwrap();
        for s in [
            CORPUS,
            "<|im_start|>user\nhi<|im_end|>",
            "  spaced  out\n\n",
        ] {
            assert_eq!(ids(&tok_a, s), ids(&tok_b, s), "{arch:?}: {s:?}");
        }
        let question = "Which way?";
        assert_eq!(
            common::chat_prompt(&original, &tok_a, question),
            common::chat_prompt(&out, &tok_b, question)
        );
        // GGUF keeps the epsilon as an f32 (transformers reads it so too).
        let mut cfg = ModelConfig::load(&out).unwrap();
        assert_eq!(cfg.rms_norm_eps as f32, 1e-6f32);
        cfg.rms_norm_eps = 1e-6;
        assert_eq!(cfg, ModelConfig::load(&original).unwrap());

        // Run straight from the GGUF file: the imported model, without the import.
        let (direct, tok_c, template) = leafe_trainer::io::load_for_inference(
            &gguf,
            &Device::Cpu,
            leafe_trainer::nn::quant::Quantization::None,
        )
        .unwrap();
        let ids_c = ids(&tok_c, text);
        let input = Tensor::new(ids_c.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = direct.forward(&input).unwrap().squeeze(0).unwrap();
        let diff = max_diff(
            &logits.get(ids_c.len() - 1).unwrap(),
            &last_logits(&out, text),
        );
        assert_eq!(
            diff, 0.0,
            "{arch:?}: straight from the GGUF, logits differ by {diff}"
        );
        let rendered = template
            .render(
                &[leafe_trainer::io::chat::Message::new("user", question)],
                true,
            )
            .unwrap();
        assert_eq!(
            ids(&tok_c, &rendered),
            common::chat_prompt(&out, &tok_b, question)
        );
    }
}

#[test]
fn every_supported_tensor_type_dequantizes_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    // 256 columns: the K-quants' block.
    let original = tiny(tmp.path(), Arch::Llama, 256);
    let a = weights(&original);
    for dtype in [
        GgmlDType::F16,
        GgmlDType::BF16,
        GgmlDType::Q8_0,
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q5_1,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ] {
        let gguf = write_gguf(&original, dtype, &Spoil::default());
        let out = tmp.path().join(format!("imported-{dtype:?}"));
        import(&gguf, &out, DType::F32).unwrap();
        let b = weights(&out);
        for name in [
            "model.layers.1.self_attn.q_proj.weight",
            "model.layers.0.mlp.down_proj.weight",
        ] {
            // Rows are quantized independently, so the permutation commutes
            // with the rounding: the import equals the rounded original.
            let want = QTensor::quantize(&a[name], dtype)
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap();
            assert_eq!(max_diff(&want, &b[name]), 0.0, "{dtype:?} {name}");
            let error = max_diff(&a[name], &b[name]);
            assert!(error > 0.0 || dtype == GgmlDType::F16, "{dtype:?}");
            assert!(error < 0.02, "{dtype:?} {name}: rounding error {error}");
        }
    }
}

#[test]
fn bf16_import_writes_bf16_and_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let original = tiny(tmp.path(), Arch::Qwen2, 64);
    let gguf = write_gguf(&original, GgmlDType::F32, &Spoil::default());
    let out = tmp.path().join("bf16");
    import(&gguf, &out, DType::BF16).unwrap();
    let b = weights(&out);
    assert!(b.values().all(|t| t.dtype() == DType::BF16));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    let text = "push the box";
    let diff = max_diff(&last_logits(&original, text), &last_logits(&out, text));
    assert!(diff < 0.05, "bf16 logits differ by {diff}");
}

/// The error of importing `gguf` into a fresh directory, which must then
/// not exist, nor any temporary directory beside it.
fn import_error(gguf: &Path) -> String {
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    let e = import(gguf, &out, DType::F32).unwrap_err();
    assert!(!out.exists(), "a failed import left {}", out.display());
    let left: Vec<_> = std::fs::read_dir(parent.path()).unwrap().collect();
    assert!(left.is_empty(), "a failed import left {left:?}");
    format!("{e:#}")
}

#[test]
fn broken_files_are_clear_errors_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let original = tiny(tmp.path(), Arch::Llama, 64);
    let good = write_gguf(&original, GgmlDType::Q8_0, &Spoil::default());

    let text = tmp.path().join("notes.gguf");
    std::fs::write(&text, "not a model at all").unwrap();
    assert!(import_error(&text).contains("is not a GGUF file"));

    let bytes = std::fs::read(&good).unwrap();
    for keep in [bytes.len() / 2, bytes.len() - 100, 40] {
        let cut = tmp.path().join(format!("cut-{keep}.gguf"));
        std::fs::write(&cut, &bytes[..keep]).unwrap();
        let e = import_error(&cut);
        assert!(
            e.contains("truncated") || e.contains("remaining in file"),
            "{keep}: {e}"
        );
    }

    let spoil = Spoil {
        drop_tensor: Some("blk.1.ffn_up.weight"),
        ..Spoil::default()
    };
    let missing = write_gguf(&original, GgmlDType::Q8_0, &spoil);
    let e = import_error(&missing);
    assert!(e.contains("no tensor blk.1.ffn_up.weight"), "{e}");

    let spoil = Spoil {
        feed_forward_length: Some(96),
        ..Spoil::default()
    };
    let e = import_error(&write_gguf(&original, GgmlDType::Q8_0, &spoil));
    assert!(
        e.contains("blk.0.ffn_gate.weight has shape") && e.contains("metadata implies"),
        "{e}"
    );

    let spoil = Spoil {
        arch: Some("gemma3"),
        ..Spoil::default()
    };
    let e = import_error(&write_gguf(&original, GgmlDType::Q8_0, &spoil));
    assert!(
        e.contains("unsupported architecture gemma3 (supported: llama, qwen2)"),
        "{e}"
    );

    // An existing, non-empty --out is never touched.
    let e = import(&good, &original, DType::F32).unwrap_err();
    assert!(format!("{e}").contains("already exists"), "{e}");
    assert!(original.join("model.safetensors").exists());
}

/// A GGUF v3 header: `tensors` tensors and the metadata entries as raw
/// (key, type, value bytes); nothing after it.
fn header(tensors: u64, entries: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(tensors.to_le_bytes());
    b.extend((entries.len() as u64).to_le_bytes());
    for (key, kind, value) in entries {
        b.extend((key.len() as u64).to_le_bytes());
        b.extend(key.as_bytes());
        b.extend(kind.to_le_bytes());
        b.extend(value);
    }
    b
}

/// Import `bytes` as a GGUF file: it must fail (or pass) without a panic,
/// within a few seconds. Returns the error, if any.
fn import_untrusted(dir: &Path, name: &str, bytes: &[u8]) -> Option<String> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = dir.join(format!("{name}.out"));
    let limit = std::time::Duration::from_secs(5);
    let result = common::survives(name, limit, || import(&path, &out, DType::F32));
    let _ = std::fs::remove_dir_all(&out);
    result.err().map(|e| format!("{e:#}"))
}

#[test]
fn hostile_headers_and_corrupted_bytes_fail_fast_without_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Counts and lengths far beyond the file: refused before any allocation.
    let string = |len: u64, text: &[u8]| [len.to_le_bytes().to_vec(), text.to_vec()].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("tensors", header(u64::MAX, &[])),
        ("tensors-under-cap", header(1 << 29, &[])),
        (
            "string",
            header(0, &[("general.name", 8, string(1 << 40, b"x"))]),
        ),
        (
            "string-under-cap",
            header(0, &[("general.name", 8, string(1 << 29, b"x"))]),
        ),
        (
            "array",
            header(
                0,
                &[(
                    "tokenizer.ggml.tokens",
                    9,
                    [
                        8u32.to_le_bytes().to_vec(),
                        (1u64 << 33).to_le_bytes().to_vec(),
                    ]
                    .concat(),
                )],
            ),
        ),
        (
            "nested-arrays",
            header(
                0,
                &[(
                    "x",
                    9,
                    [9u32.to_le_bytes().to_vec(), 1u64.to_le_bytes().to_vec()]
                        .concat()
                        .repeat(100),
                )],
            ),
        ),
        ("value-type", header(0, &[("x", 99, vec![0; 8])])),
    ];
    for (name, bytes) in &cases {
        let e = import_untrusted(dir, name, bytes).unwrap_or_else(|| panic!("{name} imported"));
        assert!(e.contains("GGUF header cannot be read"), "{name}: {e}");
    }
    // A tensor whose dimensions multiply past any size, in a valid header.
    let mut huge = header(1, &[]);
    huge.extend(string(4, b"blob"));
    huge.extend(2u32.to_le_bytes());
    huge.extend(u64::MAX.to_le_bytes());
    huge.extend(u64::MAX.to_le_bytes());
    huge.extend(0u32.to_le_bytes()); // F32
    huge.extend(0u64.to_le_bytes());
    assert!(import_untrusted(dir, "huge-tensor", &huge).is_some());

    // Random corruptions of a real file's header and data: never a panic.
    let original = tiny(dir, Arch::Llama, 64);
    let good = std::fs::read(write_gguf(&original, GgmlDType::Q8_0, &Spoil::default())).unwrap();
    let mut rng = leafe_trainer::nn::init::SeededRng::new(7);
    let mut below = |n: usize| (rng.next_u64() % n as u64) as usize;
    let mut failed = 0;
    for case in 0..1000 {
        let mut bytes = good.clone();
        let flips = 1 + below(8);
        for _ in 0..flips {
            // Mostly in the header, where the lengths and counts are.
            let span = if below(4) == 0 {
                bytes.len()
            } else {
                4096.min(bytes.len())
            };
            let at = below(span);
            bytes[at] = match below(3) {
                0 => 0xff,
                1 => 0,
                _ => below(256) as u8,
            };
        }
        if import_untrusted(dir, &format!("corrupt-{case}"), &bytes).is_some() {
            failed += 1;
        }
    }
    assert!(failed > 0, "no corruption was noticed");
}
