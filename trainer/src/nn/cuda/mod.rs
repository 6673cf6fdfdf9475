//! The trainer's own CUDA kernels (`kernels/*.cu`, compiled to PTX by
//! build.rs): where candle's tensor ops would take many launches and passes
//! over memory for one step. Each is checked against candle's tensor ops on
//! the device before its first use in a process ([`verified`]), since no
//! test can run it where no GPU is. `LEAFE_CUDA_KERNELS=0` switches them off
//! (the tensor-op paths run instead), to compare the two or to work around
//! one.
//!
//! Without the `cuda` feature there is no GPU tensor, so no `*_applies`
//! check passes and the kernels' functions are never called; they exist
//! (as errors) so that callers need no feature gates of their own.

mod common;
#[cfg(feature = "cuda")]
mod kernels;
#[cfg(not(feature = "cuda"))]
mod off;

pub use common::*;
#[cfg(feature = "cuda")]
pub use kernels::*;
#[cfg(not(feature = "cuda"))]
pub use off::*;
