//! Helpers shared by the trainer's integration tests.
// Each test binary uses only some of them.
#![allow(dead_code)]

use candle_core::{DType, Device};
use leafe_trainer::io::chat::{ChatTemplate, Message};
use leafe_trainer::io::checkpoint;
use leafe_trainer::jobs::tiny::{TinySpec, init_tiny};
use leafe_trainer::nn::config::ModelConfig;
use leafe_trainer::nn::model::Model;
use leafe_trainer::nn::quant::Quantization;
use std::path::{Path, PathBuf};

/// A tiny random model in `dir/tiny`, its tokenizer trained on `corpus`.
pub fn tiny_model(dir: &Path, corpus: &str, spec: &TinySpec) -> PathBuf {
    let corpus_file = dir.join("corpus.txt");
    std::fs::write(&corpus_file, corpus).unwrap();
    let model = dir.join("tiny");
    init_tiny(&corpus_file, &model, spec).unwrap();
    model
}

/// The spec the tests use unless they need another: a 300-token vocabulary.
pub fn small_spec() -> TinySpec {
    TinySpec {
        vocab_size: 300,
        ..TinySpec::default()
    }
}

/// The model and tokenizer of a checkpoint directory, on the CPU.
pub fn load(dir: &Path) -> (Model, tokenizers::Tokenizer) {
    let cfg = ModelConfig::load(dir).unwrap();
    let params = checkpoint::load_params(dir, &cfg, DType::F32, &Device::Cpu).unwrap();
    (
        Model::new(&cfg, &params).unwrap(),
        leafe_trainer::io::tokenizer::load(dir).unwrap(),
    )
}

/// The model (inference only) and tokenizer of a checkpoint, on the CPU.
pub fn load_frozen(dir: &Path) -> (Model, tokenizers::Tokenizer) {
    load_quantized(dir, Quantization::None)
}

/// [`load_frozen`] with the projections stored as `q` says.
pub fn load_quantized(dir: &Path, q: Quantization) -> (Model, tokenizers::Tokenizer) {
    checkpoint::load_for_inference(dir, &Device::Cpu, q).unwrap()
}

/// The prompt ids for one user turn, rendered with the checkpoint's chat template.
pub fn chat_prompt(dir: &Path, tokenizer: &tokenizers::Tokenizer, question: &str) -> Vec<u32> {
    let prompt = ChatTemplate::load(dir)
        .unwrap()
        .render(&[Message::new("user", question)], true)
        .unwrap();
    leafe_trainer::io::tokenizer::ids(tokenizer, &prompt).unwrap()
}

/// A tiny model served on a loopback port as "tiny", with `limits`; the
/// directory lives as long as the returned guard.
pub fn serve_tiny(
    limits: leafe_trainer::jobs::serve::ServeLimits,
) -> (
    tempfile::TempDir,
    std::sync::Arc<leafe_trainer::jobs::serve::Served>,
    std::net::SocketAddr,
) {
    serve_tiny_quantized(limits, Quantization::None)
}

/// [`serve_tiny`] with the projections stored as `q` says.
pub fn serve_tiny_quantized(
    limits: leafe_trainer::jobs::serve::ServeLimits,
    q: Quantization,
) -> (
    tempfile::TempDir,
    std::sync::Arc<leafe_trainer::jobs::serve::Served>,
    std::net::SocketAddr,
) {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = tiny_model(
        dir.path(),
        &"user: which way? assistant: left, then down. ".repeat(40),
        &small_spec(),
    );
    let (model, tok) = load_quantized(&model_dir, q);
    let state = std::sync::Arc::new(leafe_trainer::jobs::serve::Served::with_limits(
        "tiny".into(),
        model,
        tok,
        ChatTemplate::load(&model_dir).unwrap(),
        limits,
    ));
    let addr = leafe_trainer::jobs::serve::spawn_on_loopback(state.clone()).unwrap();
    (dir, state, addr)
}

/// The largest |a - b| over all elements.
pub fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// `f` run on untrusted input: it must return within `limit`, never panic.
pub fn survives<T>(what: &str, limit: std::time::Duration, f: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| panic!("{what} panicked"));
    let took = started.elapsed();
    assert!(took < limit, "{what} took {took:?}");
    out
}
