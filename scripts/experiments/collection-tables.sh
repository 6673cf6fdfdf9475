#!/usr/bin/env bash
# Collection at equal budget with the noisy oracle, for docs/RESULTS.md:
# for each environment, `sample`, `refine` and `leafe` (rule reflector) on
# the same tasks with the same budget, then `report`'s table.
#
# Usage: scripts/experiments/collection-tables.sh [WORKDIR]     (default runs/collection)
# Settings (environment): ENVS="household:valid_unseen shop:test" TASKS=100 NOISE=0.6 BUDGET=60 SEED=0
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-runs/collection}
cargo build -q --release -p leafe-host
H=${CARGO_TARGET_DIR:-target}/release/leafe-host
mkdir -p "$work"
for spec in ${ENVS:-household:valid_unseen shop:test}; do
  env=${spec%%:*} split=${spec#*:}
  dirs=()
  for method in sample refine leafe; do
    out=$work/$env-$method
    "$H" run --env "$env" --split "$split" --tasks "${TASKS:-100}" --noise "${NOISE:-0.6}" \
      --budget "${BUDGET:-60}" --method "$method" --seed "${SEED:-0}" --out "$out" --force > /dev/null
    dirs+=("$out")
  done
  echo "### $env ($split, ${TASKS:-100} tasks, oracle with noise ${NOISE:-0.6}, budget ${BUDGET:-60} steps)"
  echo
  "$H" report "${dirs[@]}"
  echo
done | tee "$work/report.md"
