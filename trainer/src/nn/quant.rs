//! Quantized projections for inference: a weight `[out, in]` held in one of
//! GGML's block formats and multiplied by candle's quantized CPU kernels,
//! which quantize the activations to 8 bits and work on integers.
//!
//! The input dimension is padded with zero columns to a multiple of 256:
//! candle's repacked x86 kernels (AVX2 / AVX-512 VNNI), several times faster
//! than its generic ones, need it, and SmolLM2's hidden size (576) is not
//! one. A zero column adds nothing to any dot product, so the result is
//! that of the unpadded weight; the activations are padded to match.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Result, Tensor};
use std::sync::Arc;

/// The columns every quantized weight is padded to a multiple of.
const PAD_TO: usize = 256;

/// How the projections of an inference model are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quantization {
    /// In the checkpoint's float format (f32 on a CPU).
    #[default]
    None,
    /// 8-bit blocks of 32 with one f16 scale (8.5 bits a weight).
    Q8_0,
    /// llama.cpp's 4-bit k-quant: super-blocks of 256 with 6-bit scales and
    /// minimums (4.5 bits a weight). The output projection (and the
    /// embedding it shares) stays at Q8_0, as llama.cpp's Q4_K_M keeps it
    /// above 4 bits.
    Q4K,
}

impl Quantization {
    /// `none`, `q8_0` or `q4k`.
    pub fn parse(name: &str) -> std::result::Result<Quantization, String> {
        match name {
            "none" => Ok(Quantization::None),
            "q8_0" => Ok(Quantization::Q8_0),
            "q4k" | "q4_k" => Ok(Quantization::Q4K),
            other => Err(format!("unknown quantization '{other}' (none, q8_0, q4k)")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Q8_0 => "q8_0",
            Quantization::Q4K => "q4k",
        }
    }

    /// The format of the layers' projections.
    pub fn projections(self) -> Option<GgmlDType> {
        match self {
            Quantization::None => None,
            Quantization::Q8_0 => Some(GgmlDType::Q8_0),
            Quantization::Q4K => Some(GgmlDType::Q4K),
        }
    }

    /// The format of the output projection and the embedding.
    pub fn output(self) -> Option<GgmlDType> {
        match self {
            Quantization::None => None,
            Quantization::Q8_0 | Quantization::Q4K if std::env::var_os("XQ").is_none() => {
                Some(GgmlDType::Q8_0)
            }
            _ => None,
        }
    }
}

/// A weight `[out, in]` in a quantized format, its input dimension padded.
pub struct QuantWeight {
    matmul: QMatMul,
    /// The weight as quantized (for embedding lookups).
    tensor: Arc<QTensor>,
    out: usize,
    inp: usize,
    padded: usize,
}

impl QuantWeight {
    /// `weight` `[out, in]` (any float dtype) quantized to `format`.
    pub fn new(weight: &Tensor, format: GgmlDType) -> Result<QuantWeight> {
        let (out, inp) = weight.dims2()?;
        let padded = inp.div_ceil(PAD_TO) * PAD_TO;
        let weight = weight.to_dtype(DType::F32)?;
        let weight = pad_columns(&weight, padded)?;
        let tensor = Arc::new(QTensor::quantize(&weight, format)?);
        Ok(QuantWeight {
            matmul: QMatMul::from_arc(tensor.clone())?,
            tensor,
            out,
            inp,
            padded,
        })
    }

    /// `x` `[rows, in]` times the weight transposed: `[rows, out]`, f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = pad_columns(&x.to_dtype(DType::F32)?, self.padded)?;
        self.matmul.forward(&x.contiguous()?)
    }

    /// Rows `ids` of the weight, dequantized: `[ids.., in]` f32 (an
    /// embedding table's lookup).
    pub fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        let rows = self.tensor.embedding(ids)?;
        let last = rows.rank() - 1;
        rows.narrow(last, 0, self.inp)
    }

    /// `[out, in]`, as given.
    pub fn dims(&self) -> (usize, usize) {
        (self.out, self.inp)
    }

    /// Bytes the quantized blocks take.
    pub fn bytes(&self) -> usize {
        self.tensor.storage_size_in_bytes()
    }
}

/// `x` `[rows, cols]` with zero columns added up to `width`.
fn pad_columns(x: &Tensor, width: usize) -> Result<Tensor> {
    let (rows, cols) = x.dims2()?;
    if cols == width {
        return Ok(x.clone());
    }
    let zeros = Tensor::zeros((rows, width - cols), x.dtype(), x.device())?;
    Tensor::cat(&[x, &zeros], 1)
}
