//! `leafe-trainer init-tiny`.

use super::Ctx;
use anyhow::Result;
use clap::Args;
use leafe_trainer::jobs::tiny::{TinySpec, init_tiny};
use leafe_trainer::nn::config::Arch;
use std::path::PathBuf;

#[derive(Args)]
pub struct InitTinyCmd {
    #[arg(long, value_parser = ["qwen2", "llama"], default_value = "qwen2")]
    arch: String,
    /// Text file the tokenizer is trained on.
    #[arg(long)]
    corpus: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = TinySpec::default().vocab_size)]
    vocab_size: usize,
    #[arg(long, default_value_t = TinySpec::default().hidden_size)]
    hidden_size: usize,
    #[arg(long, default_value_t = TinySpec::default().intermediate_size)]
    intermediate_size: usize,
    #[arg(long, default_value_t = TinySpec::default().layers)]
    layers: usize,
    #[arg(long, default_value_t = TinySpec::default().heads)]
    heads: usize,
    #[arg(long, default_value_t = TinySpec::default().kv_heads)]
    kv_heads: usize,
    #[arg(long, default_value_t = TinySpec::default().max_positions)]
    max_positions: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl InitTinyCmd {
    pub fn execute(self, _ctx: &Ctx) -> Result<()> {
        let spec = TinySpec {
            arch: Arch::parse(&self.arch)?,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            layers: self.layers,
            heads: self.heads,
            kv_heads: self.kv_heads,
            max_positions: self.max_positions,
            seed: self.seed,
        };
        let cfg = init_tiny(&self.corpus, &self.out, &spec)?;
        println!(
            "wrote a {} model with {} parameters to {}",
            self.arch,
            cfg.parameter_count(),
            self.out.display()
        );
        Ok(())
    }
}
