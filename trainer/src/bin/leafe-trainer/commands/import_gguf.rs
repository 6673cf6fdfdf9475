//! `leafe-trainer import-gguf`.

use super::Ctx;
use crate::args::{F32OrBf16, flag_error};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ImportGgufCmd {
    /// The .gguf file.
    gguf: PathBuf,
    /// The new checkpoint directory (must not exist, or be empty).
    #[arg(long)]
    out: PathBuf,
    /// Precision of the written weights (quantized tensors are dequantized).
    #[arg(long, value_enum, default_value = "f32")]
    dtype: F32OrBf16,
}

impl ImportGgufCmd {
    pub fn execute(self, _ctx: &Ctx) -> Result<()> {
        let done = leafe_trainer::io::gguf::import(&self.gguf, &self.out, self.dtype.into())
            .map_err(flag_error)?;
        let types: Vec<String> = done
            .tensor_types
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        println!(
            "imported a {:?} model ({} parameters, vocabulary {}, tensors: {}) to {}",
            done.config.arch,
            done.config.parameter_count(),
            done.config.vocab_size,
            types.join(", "),
            done.out.display()
        );
        Ok(())
    }
}
