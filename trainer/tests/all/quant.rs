//! Quantized inference: a quantized projection computes what the dense one
//! does (within its format's rounding), whatever its input width; a
//! quantized model generates, batches concurrent requests and refuses to
//! train.

use crate::common;
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use leafe_trainer::jobs::serve::ServeLimits;
use leafe_trainer::nn::quant::{QuantWeight, Quantization};

/// |a - b| / |b| over all elements (Frobenius norms).
fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
    let diff = (a - b).unwrap().sqr().unwrap().sum_all().unwrap();
    let norm = b.sqr().unwrap().sum_all().unwrap();
    (diff.to_scalar::<f32>().unwrap() / norm.to_scalar::<f32>().unwrap()).sqrt()
}

#[test]
fn a_quantized_projection_computes_the_dense_one_within_its_rounding() {
    let dev = Device::Cpu;
    // 100 and 300 input columns: neither a multiple of the 256 it is padded to.
    for (out, inp) in [(96, 100), (48, 300), (32, 512)] {
        let w = Tensor::randn(0f32, 0.05, (out, inp), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (7, inp), &dev).unwrap();
        let dense = x.matmul(&w.t().unwrap()).unwrap();
        for (format, bound) in [(GgmlDType::Q8_0, 0.02), (GgmlDType::Q4K, 0.12)] {
            let q = QuantWeight::new(&w, format).unwrap();
            assert_eq!(q.dims(), (out, inp));
            let y = q.forward(&x).unwrap();
            assert_eq!(y.dims(), &[7, out]);
            let e = relative_error(&y, &dense);
            assert!(e < bound, "{format:?} {out}x{inp}: relative error {e}");
            // One row at a time (decoding) gives the rows of the batch.
            let row = q.forward(&x.narrow(0, 3, 1).unwrap()).unwrap();
            let same = relative_error(&row, &y.narrow(0, 3, 1).unwrap());
            assert!(same < 1e-5, "{format:?}: row 3 alone differs by {same}");
            // A lookup returns the dequantized rows, unpadded.
            let ids = Tensor::new(&[0u32, 5, 2], &dev).unwrap();
            let rows = q.rows(&ids).unwrap();
            assert_eq!(rows.dims(), &[3, inp]);
            let want = w.index_select(&ids, 0).unwrap();
            assert!(relative_error(&rows, &want) < bound);
        }
    }
    let bf16 = Tensor::randn(0f32, 0.05, (16, 64), &dev)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    assert!(
        QuantWeight::new(&bf16, GgmlDType::Q8_0).is_ok(),
        "any float dtype"
    );
}

#[test]
fn quantizations_are_named_as_the_flag_names_them() {
    for q in [Quantization::None, Quantization::Q8_0, Quantization::Q4K] {
        assert_eq!(Quantization::parse(q.as_str()).unwrap(), q);
    }
    let err = Quantization::parse("q2").unwrap_err();
    assert!(err.contains("none, q8_0, q4k"), "{err}");
}

#[test]
fn a_quantized_model_generates_batches_requests_and_refuses_to_train() {
    let (dir, state, addr) = common::serve_tiny_quantized(
        ServeLimits {
            concurrency: 3,
            queue: 8,
            max_context: 256,
            ..ServeLimits::default()
        },
        Quantization::Q8_0,
    );
    let model_dir = dir.path().join("tiny");
    let (model, tok) = common::load_quantized(&model_dir, Quantization::Q8_0);
    assert_eq!(model.quantization(), Quantization::Q8_0);
    // Concurrent requests, decoded together: each gets what it gets alone.
    let questions = ["which way?", "left or right?", "down"];
    crate::serve::each_gets_its_own_reply(&state, addr, &model_dir, &model, &tok, &questions, 16);
    assert!(state.largest_batch() >= 2, "{}", state.largest_batch());

    // The loss needs the dense output projection.
    let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let rows = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
    let targets = Tensor::new(&[2u32, 3], &Device::Cpu).unwrap();
    let err = model.target_log_probs(&ids, &rows, &targets).unwrap_err();
    assert!(err.to_string().contains("inference only"), "{err}");
}
