//! A checkpoint's small files from untrusted bytes: seeded corruptions of a
//! real `config.json`, `tokenizer.json` and `tokenizer_config.json` are read
//! into a value or an error, quickly, never a panic. (GGUF files: gguf.rs.)

use crate::common;
use leafe_trainer::io::chat::ChatTemplate;
use leafe_trainer::nn::config::ModelConfig;
use leafe_trainer::nn::init::SeededRng;
use std::path::Path;
use std::time::Duration;

/// `bytes` with a few seeded changes (overwritten bytes, a span cut out or
/// repeated, the end cut off).
fn corrupt(bytes: &[u8], rng: &mut SeededRng) -> Vec<u8> {
    let mut below = |n: usize| (rng.next_u64() % n as u64) as usize;
    let mut b = bytes.to_vec();
    for _ in 0..1 + below(4) {
        if b.is_empty() {
            break;
        }
        let at = below(b.len());
        match below(5) {
            0 => b[at] = b"{}[]\",:0-9e\n"[below(12)],
            1 => b[at] = below(256) as u8,
            2 => {
                let end = (at + below(64)).min(b.len());
                b.drain(at..end);
            }
            3 => {
                let end = (at + below(64)).min(b.len());
                let copy = b[at..end].to_vec();
                b.splice(at..at, copy);
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// [`common::survives`] within two seconds.
fn survives<T>(what: &str, f: impl FnOnce() -> T) -> T {
    common::survives(what, Duration::from_secs(2), f)
}

#[test]
fn corrupted_config_and_tokenizer_files_are_errors_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(
        tmp.path(),
        &"user: which way? assistant: left, then down. ".repeat(40),
        &common::small_spec(),
    );
    let files = ["config.json", "tokenizer.json", "tokenizer_config.json"];
    let originals: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(model.join(f)).unwrap())
        .collect();
    let mut rng = SeededRng::new(3);
    for (file, original) in files.iter().zip(&originals) {
        let mut refused = 0;
        for case in 0..1000 {
            std::fs::write(model.join(file), corrupt(original, &mut rng)).unwrap();
            let what = format!("{file} case {case}");
            let failed = survives(&what, || read_all(&model));
            refused += usize::from(failed);
        }
        assert!(
            refused > 30,
            "{file}: only {refused} of 150 corruptions refused"
        );
        std::fs::write(model.join(file), original).unwrap();
    }
    assert!(!read_all(&model), "the intact files read");

    // A decoder of the wrong shape, and one that breaks the JSON inside it
    // (which tokenizers 0.23 reads with a panic): errors here.
    let mut json: serde_json::Value = serde_json::from_slice(&originals[1]).unwrap();
    json["decoder"] = serde_json::json!(5);
    std::fs::write(model.join("tokenizer.json"), json.to_string()).unwrap();
    let e = survives("a decoder of the wrong shape", || {
        leafe_trainer::io::tokenizer::load(&model).unwrap_err()
    });
    assert!(e.to_string().contains("cannot load"), "{e}");
    let text = json
        .to_string()
        .replace("\"decoder\":5", "\"decoder\":{\"type\" \"x\"}");
    std::fs::write(model.join("tokenizer.json"), text).unwrap();
    let e = survives("a decoder with broken JSON", || {
        leafe_trainer::io::tokenizer::load(&model).unwrap_err()
    });
    assert!(e.to_string().contains("is not valid JSON"), "{e}");
}

/// Whether reading the checkpoint's config, tokenizer or template failed.
fn read_all(dir: &Path) -> bool {
    let config = ModelConfig::load(dir);
    let tokenizer = leafe_trainer::io::tokenizer::load(dir);
    let template = ChatTemplate::load(dir);
    config.is_err() || tokenizer.is_err() || template.is_err()
}
