//! `leafe-trainer generate`.

use super::Ctx;
use crate::args::QuantizeArg;
use anyhow::{Result, bail};
use clap::Args;
use leafe_trainer::io::chat::Message;
use leafe_trainer::io::load_for_inference;
use leafe_trainer::jobs::generate::{GenerateConfig, generate};
use std::path::PathBuf;

#[derive(Args)]
pub struct GenerateCmd {
    /// A checkpoint directory, or a GGUF file.
    #[arg(long)]
    model: PathBuf,
    /// A user message, rendered with the chat template.
    #[arg(long, conflicts_with = "prompt")]
    chat: Option<String>,
    /// Raw text to continue.
    #[arg(long)]
    prompt: Option<String>,
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop before this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Store the projections quantized, on the CPU: less memory and faster
    /// matmuls (the checkpoint's float weights are quantized at load).
    #[arg(long, value_enum, default_value = "none")]
    quantize: QuantizeArg,
}

impl GenerateCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let (m, tokenizer, template) =
            load_for_inference(&self.model, &ctx.device, self.quantize.into())?;
        let text = match (self.chat, self.prompt) {
            (Some(user), _) => template.render(&[Message::new("user", &user)], true)?,
            (None, Some(p)) => p,
            (None, None) => bail!("give --chat MESSAGE or --prompt TEXT"),
        };
        let ids = leafe_trainer::io::tokenizer::ids(&tokenizer, &text)?;
        let eos: Vec<u32> = m.cfg.eos_token_id.into_iter().collect();
        let cfg = GenerateConfig {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            stop: self.stop,
            no_cache: false,
            max_context: None,
        };
        let out = generate(&m, &tokenizer, &ids, &eos, &cfg)?;
        println!("{}", out.text);
        Ok(())
    }
}
