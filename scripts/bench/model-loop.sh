#!/usr/bin/env bash
# The real model in the loop (docs/BENCHMARKS.md): `leafe-host run --policy
# openai --reflector llm` on Sokoban against `leafe-trainer serve` with
# SmolLM2-135M-Instruct, once per server setting, in one run: f32 without a
# prefix cache (how the loop ran before), then each setting of SETTINGS.
# Prints per setting the wall time, the model traffic the run reports and
# the server's prompt-token counters (received, computed, reused).
#
# Usage: PROFILE=release scripts/bench/model-loop.sh [WORKDIR]   (default runs/model-loop)
#   TASKS=4 BUDGET=24 DEPTH=4 SEED=0
#   SETTINGS="none:0 q8_0:256"   (QUANTIZE:PREFIX_CACHE_MB, each after the baseline none:0)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-runs/model-loop}
source scripts/lib/bins.sh
H=$bin/leafe-host T=$bin/leafe-trainer
source scripts/lib/model-server.sh
model=models/smollm2-135m-instruct
[[ -d $model ]] || scripts/build/fetch-smollm2.sh
port=${PORT:-8931}
mkdir -p "$work"
for setting in none:0 ${SETTINGS:-q8_0:256}; do
  q=${setting%%:*} mb=${setting##*:}
  out=$work/$q-$mb
  serve_flags=(--quantize "$q" --prefix-cache-mb "$mb" --concurrency 2)
  serve "$model" smollm2 "$work/server-$q-$mb.log"
  started=$(date +%s.%N)
  "$H" run --env sokoban --policy openai --reflector llm --base-url "http://127.0.0.1:$port/v1" \
    --model smollm2 --tasks "${TASKS:-4}" --budget "${BUDGET:-24}" --max-depth "${DEPTH:-4}" \
    --seed "${SEED:-0}" --jobs 2 --out "$out" --force --json > "$out.json"
  seconds=$(echo "$(date +%s.%N) - $started" | bc)
  counters=$(curl -sf "http://127.0.0.1:$port/metrics" | grep '^leafe_trainer_prompt_tokens_total' | sed 's/leafe_trainer_prompt_tokens_total//' | tr '\n' ' ')
  python3 - "$out.json" "$setting" "$seconds" "$counters" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
llm = s.get("llm") or {}
print(f"{sys.argv[2]:>10}: {float(sys.argv[3]):7.1f} s, {s['solved']}/{s['tasks']} solved, "
      f"{llm.get('requests')} requests, {llm.get('prompt_tokens')} prompt + "
      f"{llm.get('completion_tokens')} completion tokens; server prompt tokens {sys.argv[4]}")
PY
  stop_serving
done
