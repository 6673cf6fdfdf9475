//! Helpers shared by the trainer's integration tests.

use candle_core::{DType, Device};
use leafe_trainer::chat::{ChatTemplate, Message};
use leafe_trainer::checkpoint;
use leafe_trainer::config::ModelConfig;
use leafe_trainer::model::Model;
use std::path::Path;

/// The model and tokenizer of a checkpoint directory, on the CPU.
pub fn load(dir: &Path) -> (Model, tokenizers::Tokenizer) {
    let cfg = ModelConfig::load(dir).unwrap();
    let params = checkpoint::load_params(dir, &cfg, DType::F32, &Device::Cpu).unwrap();
    (
        Model::new(&cfg, &params).unwrap(),
        leafe_trainer::tokenizer::load(dir).unwrap(),
    )
}

/// The prompt ids for one user turn, rendered with the checkpoint's chat template.
pub fn chat_prompt(dir: &Path, tokenizer: &tokenizers::Tokenizer, question: &str) -> Vec<u32> {
    let prompt = ChatTemplate::load(dir)
        .unwrap()
        .render(&[Message::new("user", question)], true)
        .unwrap();
    leafe_trainer::tokenizer::ids(tokenizer, &prompt).unwrap()
}
