//! Flag values shared by several commands, as clap value enums that turn
//! into the library's types.

use anyhow::{Result, bail};
use candle_core::{DType, Device};
use clap::ValueEnum;
use leafe_trainer::nn::quant::Quantization;
use leafe_trainer::setting::BadSetting;

/// `--device`.
#[derive(Clone, Copy, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

impl DeviceArg {
    pub fn name(self) -> &'static str {
        match self {
            DeviceArg::Cpu => "cpu",
            DeviceArg::Cuda => "cuda",
        }
    }

    pub fn open(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Cuda if cfg!(feature = "cuda") => Ok(Device::new_cuda(0)?),
            DeviceArg::Cuda => {
                bail!("this leafe-trainer was built without CUDA: rebuild with `--features cuda`")
            }
        }
    }
}

/// The precision of a training step: f32, or mixed precision in bf16 or f16.
#[derive(Clone, Copy, ValueEnum)]
pub enum Precision {
    F32,
    Bf16,
    F16,
}

impl From<Precision> for DType {
    fn from(p: Precision) -> DType {
        match p {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }
}

/// f32 or bf16: the precision of written weights, and of `bench`'s step.
#[derive(Clone, Copy, ValueEnum)]
pub enum F32OrBf16 {
    F32,
    Bf16,
}

impl From<F32OrBf16> for DType {
    fn from(p: F32OrBf16) -> DType {
        match p {
            F32OrBf16::F32 => DType::F32,
            F32OrBf16::Bf16 => DType::BF16,
        }
    }
}

/// `--quantize`: how an inference model's projections are stored.
#[derive(Clone, Copy, ValueEnum)]
pub enum QuantizeArg {
    /// The checkpoint's f32 weights.
    None,
    /// 8-bit blocks (8.5 bits a weight); greedy tokens as f32's on the parity prompts.
    #[value(name = "q8_0")]
    Q8_0,
    /// llama.cpp's 4-bit k-quant (4.5 bits a weight), the output projection at Q8_0.
    Q4k,
}

impl From<QuantizeArg> for Quantization {
    fn from(q: QuantizeArg) -> Quantization {
        match q {
            QuantizeArg::None => Quantization::None,
            QuantizeArg::Q8_0 => Quantization::Q8_0,
            QuantizeArg::Q4k => Quantization::Q4K,
        }
    }
}

/// The library's error for a setting out of range, with the field named as
/// its flag (`lora.rank` -> `--lora-rank`); any other error as it is.
pub fn flag_error(e: impl Into<anyhow::Error>) -> anyhow::Error {
    let e = e.into();
    match e.downcast_ref::<BadSetting>() {
        Some(bad) => anyhow::anyhow!("--{} {}", bad.field.replace(['.', '_'], "-"), bad.problem),
        None => e,
    }
}
