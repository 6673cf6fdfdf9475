//! Helpers shared by the trainer's integration tests.

use candle_core::{DType, Device};
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
