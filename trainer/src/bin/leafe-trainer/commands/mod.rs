//! One file per command: its flags and an `execute` that calls the library
//! and prints. A new command is a file here plus one variant in `main.rs`.

pub mod bench;
pub mod check_device;
pub mod check_parity;
pub mod generate;
pub mod import_gguf;
pub mod init_tiny;
pub mod logits;
pub mod serve;
pub mod sft;

use anyhow::{Context, Result};
use candle_core::Device;
use std::path::Path;

/// What every command gets besides its own flags.
pub struct Ctx {
    pub device: Device,
    /// `--device` as given: cpu or cuda.
    pub device_name: &'static str,
    /// Whether to draw progress bars (stderr is a terminal).
    pub progress: bool,
}

/// `--json FILE` of bench and check-device.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("cannot write {}", path.display()))
}
