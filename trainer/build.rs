//! With the `cuda` feature, compile the trainer's CUDA kernels
//! (`kernels/*.cu`) to PTX with nvcc, for the compute capability in
//! `CUDA_COMPUTE_CAP` (default 80; PTX is compiled again for newer GPUs by
//! the driver). Without the feature there is nothing to do.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo::rerun-if-env-changed=NVCC");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    for kernels in ["optim", "ops"] {
        compile(&nvcc, &cap, &out, kernels);
    }
}

/// `kernels/NAME.cu` to `OUT_DIR/NAME.ptx`.
fn compile(nvcc: &str, cap: &str, out: &std::path::Path, name: &str) {
    let ptx = out.join(format!("{name}.ptx"));
    let status = Command::new(nvcc)
        .args(["--ptx", "-O3", "-std=c++17"])
        .arg(format!("-arch=compute_{cap}"))
        .arg("-o")
        .arg(&ptx)
        .arg(format!("kernels/{name}.cu"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run {nvcc} (the cuda feature needs nvcc): {e}"));
    assert!(status.success(), "{nvcc} failed on kernels/{name}.cu");
}
