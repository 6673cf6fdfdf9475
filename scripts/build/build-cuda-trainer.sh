#!/usr/bin/env bash
# Build `leafe-trainer --features cuda` on a machine with no GPU and no CUDA install, with nvcc,
# headers and libraries from PyPI wheels pinned to CUDA 13.0 (the GPU machines' driver is 580,
# CUDA 13.0: PTX from a newer nvcc may be refused there). Measured: 14 min on 2 cores from cold,
# ~20 s after a trainer-only change. Output: $WORK/target/release/leafe-trainer (~57 MiB).
#
# usage: WORK=/some/scratch SRC=/path/to/project scripts/build/build-cuda-trainer.sh
set -euo pipefail
WORK=${WORK:?set WORK to a scratch directory}; SRC=${SRC:?set SRC to the project checkout}
mkdir -p "$WORK"
[ -x "$WORK/venv/bin/python" ] || python3 -m venv "$WORK/venv"
# Pin crt and nvvm too: nvidia-cuda-nvcc==13.0.88 alone pulls 13.5 versions of them.
"$WORK/venv/bin/pip" install -q nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 \
  nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
CU=$("$WORK/venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
# The wheels ship only libX.so.N: give the linker the unversioned names.
for l in cudart cublas cublasLt nvrtc; do ln -sf "lib$l.so.13" "$CU/lib/lib$l.so"; done
ln -sf libcurand.so.10 "$CU/lib/libcurand.so"
# libcuda comes with the driver, not with a wheel. cudarc links it, so link against a stub with
# soname libcuda.so.1 exporting every driver-API name cudarc binds; the real one loads at run time.
(cd "$SRC" && cargo fetch -q)
R=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | sort -V | tail -1)
mkdir -p "$CU/lib/stubs"
grep -oE "pub unsafe fn cu[A-Za-z0-9_]+" "$R/src/driver/sys/mod.rs" | awk '{print $NF}' | sort -u \
  | sed 's/.*/void &(void) {}/' > "$WORK/cuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CU/lib/stubs/libcuda.so" "$WORK/cuda_stub.c"
# cudarc reads the CUDA version from `nvcc --version`; the kernels' arch comes from CUDA_COMPUTE_CAP
# (90 = H100/H200), so no GPU is needed to build.
export CUDA_ROOT=$CU CUDA_PATH=$CU CUDA_HOME=$CU PATH=$CU/bin:$PATH CUDA_COMPUTE_CAP=90
cd "$SRC" && CARGO_TARGET_DIR="$WORK/target" cargo build --release -p leafe-trainer --features cuda
echo "built: $WORK/target/release/leafe-trainer"
