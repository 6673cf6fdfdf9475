//! One set of served weights: the model with its tokenizer, chat template
//! and end-of-turn tokens.

use crate::io::chat::ChatTemplate;
use crate::nn::model::Model;
use anyhow::Result;

/// One set of weights with its tokenizer and chat template.
pub struct ServedModel {
    pub model: Model,
    pub tokenizer: tokenizers::Tokenizer,
    pub template: ChatTemplate,
    pub eos: Vec<u32>,
}

impl ServedModel {
    pub fn new(model: Model, tokenizer: tokenizers::Tokenizer, template: ChatTemplate) -> Self {
        let eos = model.cfg.eos_token_id.into_iter().collect();
        ServedModel {
            model,
            tokenizer,
            template,
            eos,
        }
    }

    /// A checkpoint directory's weights, on `device`, for inference,
    /// quantized as `quantization` says.
    pub fn load(
        dir: &std::path::Path,
        device: &candle_core::Device,
        quantization: crate::nn::quant::Quantization,
    ) -> Result<Self> {
        let (model, tokenizer) =
            crate::io::checkpoint::load_for_inference(dir, device, quantization)?;
        Ok(ServedModel::new(model, tokenizer, ChatTemplate::load(dir)?))
    }
}
