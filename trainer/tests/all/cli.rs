//! The `leafe-trainer` binary: reproducible training, exact resume, and a
//! clear one-line error for each kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leafe-trainer"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = trainer(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str], needle: &str) {
    let out = trainer(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

const DATA: &str = r#"{"messages": [{"role": "user", "content": "Which way?"}, {"role": "assistant", "content": "left"}]}
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]}
{"messages": [{"role": "user", "content": "Count to three."}, {"role": "assistant", "content": "one two three"}]}
"#;

/// A tiny model and data in a temp dir.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    std::fs::write(&corpus, DATA.repeat(10)).unwrap();
    let model = dir.path().join("tiny");
    ok(&[
        "init-tiny",
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
        "--vocab-size",
        "300",
    ]);
    let data = dir.path().join("data.jsonl");
    std::fs::write(&data, DATA).unwrap();
    (dir, model, data)
}

fn sft(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "sft",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend([
        "--batch-size",
        "2",
        "--max-steps",
        "10",
        "--epochs",
        "10",
        "--lr",
        "1e-3",
    ]);
    args.extend(extra);
    ok(&args)
}

fn losses(dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir.join("loss_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn training_is_reproducible_and_resumes_exactly() {
    let (dir, model, data) = setup();
    // f32, and f16 with its loss scaler (saved with the checkpoint).
    for (name, precision) in [("f32", &[][..]), ("f16", &["--dtype", "f16"][..])] {
        let run = |out: &Path, more: &[&str]| {
            let args: Vec<&str> = precision.iter().chain(more).copied().collect();
            sft(&model, &data, out, &args)
        };
        let d = |n: &str| dir.path().join(format!("{name}-{n}"));
        let (a, b) = (d("a"), d("b"));
        run(&a, &["--save-every", "5"]);
        run(&b, &[]);
        assert_eq!(losses(&a), losses(&b));
        assert_eq!(losses(&a).len(), 10);
        let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
        assert_eq!(weights(&a), weights(&b));
        // Keep only checkpoint-5 of run a, then resume: the same end, bit for bit.
        let c = d("c");
        std::fs::create_dir_all(&c).unwrap();
        let ck = c.join("checkpoint-5");
        std::fs::create_dir_all(&ck).unwrap();
        for entry in std::fs::read_dir(a.join("checkpoint-5")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), ck.join(entry.file_name())).unwrap();
        }
        let text = run(&c, &["--resume"]);
        assert!(text.contains("trained 10 steps"), "{text}");
        assert_eq!(losses(&c), losses(&a), "{name}");
        assert_eq!(weights(&c), weights(&a), "{name}");
    }
}

#[test]
fn generate_and_logits_run_from_the_command_line() {
    let (_dir, model, _) = setup();
    let m = model.to_str().unwrap();
    let args = [
        "generate",
        "--model",
        m,
        "--chat",
        "Which way?",
        "--max-tokens",
        "5",
        "--temperature",
        "0.8",
        "--seed",
        "3",
    ];
    // Sampling with a seed is reproducible.
    assert_eq!(ok(&args), ok(&args));
    let logits: Vec<f32> =
        serde_json::from_str(&ok(&["logits", "--model", m, "--text", "Say hi."])).unwrap();
    let vocab: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(logits.len() as u64, vocab["vocab_size"].as_u64().unwrap());

    // Quantized at load: the same vocabulary, logits near f32's.
    let q8: Vec<f32> = serde_json::from_str(&ok(&[
        "logits",
        "--model",
        m,
        "--text",
        "Say hi.",
        "--quantize",
        "q8_0",
    ]))
    .unwrap();
    assert_eq!(q8.len(), logits.len());
    let far = q8
        .iter()
        .zip(&logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(far > 0.0 && far < 0.5, "q8_0 logits differ by up to {far}");
    let quantized = [&args[..], &["--quantize", "q4k"]].concat();
    assert_eq!(ok(&quantized), ok(&quantized), "reproducible quantized too");
    fails(&[&args[..], &["--quantize", "q2"]].concat(), "q8_0");
}

#[test]
fn bad_input_is_a_clear_error() {
    let (dir, model, data) = setup();
    let d = |name: &str| dir.path().join(name);
    let m = model.to_str().unwrap();
    let out = d("out");
    let o = out.to_str().unwrap();
    let corpus = d("corpus.txt");
    let c = corpus.to_str().unwrap();

    fails(
        &[
            "init-tiny",
            "--corpus",
            d("none.txt").to_str().unwrap(),
            "--out",
            o,
        ],
        "cannot read corpus",
    );
    fails(
        &["init-tiny", "--corpus", c, "--out", o, "--heads", "3"],
        "not divisible",
    );
    fails(
        &[
            "init-tiny",
            "--corpus",
            c,
            "--out",
            o,
            "--hidden-size",
            "65536",
            "--intermediate-size",
            "262144",
            "--layers",
            "4096",
        ],
        "needs about",
    );
    fails(
        &[
            "sft",
            "--model",
            d("missing").to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            o,
        ],
        "config.json",
    );

    // A precision sft does not train in, and check-device with nothing to compare.
    fails(
        &[
            "sft",
            "--model",
            m,
            "--data",
            data.to_str().unwrap(),
            "--out",
            o,
            "--dtype",
            "f8",
        ],
        "invalid value 'f8'",
    );
    fails(&["check-device"], "pass --device cuda");

    // An architecture we do not support.
    let other = d("mistral");
    std::fs::create_dir_all(&other).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        std::fs::copy(model.join(f), other.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    cfg["architectures"] = serde_json::json!(["MistralForCausalLM"]);
    std::fs::write(other.join("config.json"), cfg.to_string()).unwrap();
    fails(
        &["logits", "--model", other.to_str().unwrap(), "--text", "hi"],
        "unsupported architecture 'MistralForCausalLM'",
    );

    // Corrupt weights.
    let broken = d("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json", "config.json"] {
        std::fs::copy(model.join(f), broken.join(f)).unwrap();
    }
    std::fs::write(
        broken.join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
    )
    .unwrap();
    fails(
        &[
            "logits",
            "--model",
            broken.to_str().unwrap(),
            "--text",
            "hi",
        ],
        "corrupt or not safetensors",
    );

    // Bad data lines: stop names the line; skip reports it and trains.
    let bad = d("bad.jsonl");
    let lines: Vec<&str> = DATA.lines().collect();
    let no_assistant = r#"{"messages": [{"role": "user", "content": "anyone?"}]}"#;
    std::fs::write(
        &bad,
        format!("{}\n{{broken\n{}\n{no_assistant}\n", lines[0], lines[1]),
    )
    .unwrap();
    let b = bad.to_str().unwrap();
    fails(&["sft", "--model", m, "--data", b, "--out", o], "line 2");
    let mut only_missing = String::from(lines[0]);
    only_missing.push('\n');
    only_missing.push_str(no_assistant);
    std::fs::write(d("noa.jsonl"), only_missing).unwrap();
    fails(
        &[
            "sft",
            "--model",
            m,
            "--data",
            d("noa.jsonl").to_str().unwrap(),
            "--out",
            o,
        ],
        "line 2: the conversation has no assistant turn",
    );
    let skipped = trainer(&[
        "sft",
        "--model",
        m,
        "--data",
        b,
        "--out",
        o,
        "--on-bad-line",
        "skip",
        "--max-steps",
        "1",
    ]);
    assert!(
        skipped.status.success(),
        "{}",
        String::from_utf8_lossy(&skipped.stderr)
    );
    let stderr = String::from_utf8_lossy(&skipped.stderr);
    assert!(
        stderr.contains("skipped line 2") && stderr.contains("skipped line 4"),
        "{stderr}"
    );

    let good_data = data.to_str().unwrap();
    for (flag, value) in [("--lr", "0"), ("--max-len", "1")] {
        fails(
            &[
                "sft", "--model", m, "--data", good_data, "--out", o, flag, value,
            ],
            flag,
        );
    }
    fails(&["generate", "--model", m], "--chat");
    if !cfg!(feature = "cuda") {
        fails(
            &["--device", "cuda", "logits", "--model", m, "--text", "x"],
            "CUDA",
        );
    }
    fails(
        &["logits", "--model", m, "--text", ""],
        "tokenises to nothing",
    );
}
