#!/usr/bin/env bash
# Exported LEAFE data trains in TRL as it is: collect on Sokoban with the
# noisy oracle, `export --weights split` (TRL's prompt-completion records),
# make a tiny model with leafe-trainer (its chat template carries
# `{% generation %}` markers), then train a few TRL SFT steps with
# `assistant_only_loss=True` (scripts/experiments/trl-sft.py checks the masks first).
# Not run by CI: it needs torch. Its venv (models/cache/trl-venv, git-ignored)
# pins torch, transformers and trl from PyPI.
#
# Usage: scripts/experiments/trl-sft.sh [WORKDIR]     (default runs/trl)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-runs/trl}
V=${TRL_VENV:-models/cache/trl-venv}
[ -x "$V/bin/python" ] || "${PYTHON:-python3}" -m venv "$V"
"$V/bin/pip" install --quiet torch==2.11.0 transformers==5.17.0 trl==1.16.0 datasets==5.2.0

cargo build -q -p leafe-host -p leafe-trainer
bin=${CARGO_TARGET_DIR:-target}/debug
mkdir -p "$work"
printf 'Sokoban. {action_hint}\n{answer_format}\n' > "$work/system.txt"
prompt=(--system-prompt "$work/system.txt" --history-chars 600)
"$bin/leafe-host" run --env sokoban --opt size=6x6 --opt boxes=1 --tasks 20 --noise 0.6 \
  --budget 60 --out "$work/run" --force > /dev/null
"$bin/leafe-host" export "$work/run" --weights split "${prompt[@]}" --out "$work/data.jsonl"
# The tokenizer's corpus: the same prompts, one message a line.
"$bin/leafe-host" export "$work/run" --reh-fraction 1 "${prompt[@]}" --out "$work/all.jsonl" > /dev/null
"$V/bin/python" - "$work/all.jsonl" > "$work/corpus.txt" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    for m in json.loads(line)["messages"]:
        print(m["content"])
PY
rm -rf "$work/model"
"$bin/leafe-trainer" init-tiny --corpus "$work/corpus.txt" --out "$work/model" --vocab-size 512
"$V/bin/python" scripts/experiments/trl-sft.py "$work/model" "$work/data.jsonl" --steps 6 --out "$work/trl-out"
