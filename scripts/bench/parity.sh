#!/usr/bin/env bash
# Re-record trainer/tests/data/smollm2-parity.json from transformers, in a
# venv of its own (models/cache/parity-venv, git-ignored) with pinned torch,
# transformers, gguf and accelerate from PyPI. The PyPI torch wheel for Linux
# brings CUDA libraries (several GB) but runs on the CPU, as here.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/build/fetch-smollm2.sh --gguf-only
V=models/cache/parity-venv
[ -x "$V/bin/python" ] || "${PYTHON:-python3}" -m venv "$V"
"$V/bin/pip" install --quiet torch==2.11.0 transformers==5.17.0 gguf==0.19.0 accelerate==1.12.0
"$V/bin/python" scripts/bench/parity.py models/cache/SmolLM2-135M-Instruct.Q4_1.gguf trainer/tests/data/smollm2-parity.json
