#!/usr/bin/env bash
# One GPU visit's checks and measurements for the trainer (docs/BENCHMARKS.md, "On a GPU"), in
# one go: a lent GPU machine has the driver, nvcc and PyTorch's CUDA libraries but no Rust, so
# the CUDA build of leafe-trainer comes with the visit (scripts/build/build-cuda-trainer.sh).
#
#   1. check-device: the trainer's ops, three training steps (f32, bf16, recomputed layers; AdamW
#      by the CUDA kernel) and batched decoding on the GPU against the CPU. If it fails, again
#      with the trainer's own CUDA kernels off (LEAFE_CUDA_KERNELS=0): if that passes, the
#      measurements go on without them; if not, the visit stops.
#   2. The Qwen2-0.5B-shaped training step, batch 8 x 512, f32 and bf16 (and f32 with
#      --grad-checkpoint), and batch 1 x 128, next to scripts/bench/torch-bench.py (PyTorch f32 and
#      bf16 autocast) on the same GPU; peak device memory of every run from nvidia-smi, sampled
#      every 100 ms (the same measure for both sides); `--ops` splits the step's time by op.
#   3. Batched decoding of 1, 8 and 32 sequences (SmolLM2-135M's shape) next to transformers'
#      batched `generate`.
#
# usage (on the GPU machine, from the repository root):
#   scripts/bench/gpu-visit.sh BINARY SMOLLM2_CONFIG_DIR OUT_DIR
# Each run's output goes to OUT_DIR/NAME.txt (NAME.json where the tool writes JSON); a summary
# to stdout.
set -u
BIN=${1:?the CUDA build of leafe-trainer}
SMOL=${2:?a directory with SmolLM2-135M-Instruct config.json}
OUT=${3:?an output directory}
mkdir -p "$OUT"
SP=$(python3 -c 'import site; print(site.getsitepackages()[0])')
LD_LIBRARY_PATH=$(find "$SP/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1

# run NAME COMMAND...: its output in OUT/NAME.txt, its peak device memory in OUT/NAME.smi.
run() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/$name.smi" 2>/dev/null &
  local sampler=$!
  timeout 300 "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  kill "$sampler" 2>/dev/null
  local peak
  peak=$(sort -n "$OUT/$name.smi" | tail -1)
  echo "== $name: rc $rc, peak device memory ${peak:-?} MiB"
  tail -4 "$OUT/$name.txt"
  return $rc
}

if ! run check-device "$BIN" --device cuda check-device --json "$OUT/check-device.json"; then
  export LEAFE_CUDA_KERNELS=0
  run check-device-no-kernels "$BIN" --device cuda check-device \
    --json "$OUT/check-device-no-kernels.json" || {
    echo "check-device failed: the measurements below would not mean anything"; exit 1; }
  echo "the trainer's CUDA kernels disagree with the CPU: measuring without them"
fi
for precision in f32 bf16; do
  run "leafe-05b-$precision" "$BIN" --device cuda bench --size 0.5b --batch 8 --seq 512 --steps 3 \
    --gen-tokens 8 --dtype "$precision" --ops --json "$OUT/leafe-05b-$precision.json"
  run "torch-05b-$precision" python3 scripts/bench/torch-bench.py --size 0.5b --batch 8 --seq 512 \
    --steps 3 --device cuda --precision "$precision"
done
run leafe-05b-f32-recompute "$BIN" --device cuda bench --size 0.5b --batch 8 --seq 512 --steps 3 \
  --gen-tokens 8 --grad-checkpoint --json "$OUT/leafe-05b-f32-recompute.json"
run leafe-05b-1x128 "$BIN" --device cuda bench --size 0.5b --batch 1 --seq 128 --steps 5 \
  --gen-tokens 8 --json "$OUT/leafe-05b-1x128.json"
run torch-05b-1x128 python3 scripts/bench/torch-bench.py --size 0.5b --batch 1 --seq 128 --steps 5 \
  --device cuda --precision f32
run leafe-smol-decoding "$BIN" --device cuda bench --model "$SMOL" --batch 1 --seq 128 --steps 3 \
  --gen-tokens 32 --gen-batches 1,8,32 --json "$OUT/leafe-smol-decoding.json"
for batch in 1 8 32; do
  run "torch-smol-generate-$batch" python3 scripts/bench/torch-bench.py --config "$SMOL" --generate 32 \
    --batch "$batch" --device cuda
done
