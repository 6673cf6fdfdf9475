#!/usr/bin/env bash
# LEAFE at micro scale, on 2 CPU cores with nothing downloaded (docs/RESULTS.md):
#   1. a tiny Qwen2-shaped model, SFT on imperfect Sokoban play -> the base policy;
#   2. serve it; collect on train levels with `sample`, `leafe` and `refine`, same budget;
#   3. distil: RFT from the sample run, L_cf + L_reh from the leafe run, both from the base
#      with the same number of optimizer steps;
#   4. evaluate base, RFT and LEAFE on held-out test levels: Pass@1..16, next to two
#      reference policies (uniformly random moves; the noisy oracle that taught the base);
# for each seed of SEEDS (default "0 1 2"), then report Pass@k with 95% bootstrap intervals
# over levels and seeds, and every difference, marked where its interval includes zero.
#
# Usage: scripts/experiments/micro-reproduction.sh [WORKDIR]     (default runs/micro)
# SCALE=smoke runs a few-minute version of the same pipeline (for checking it works);
# PROFILE=release uses optimised binaries (the same numbers, sooner).
set -euo pipefail
cd "$(dirname "$0")/../.."

root=${1:-runs/micro}
scale=${SCALE:-full}
port=${PORT:-8765}
seeds=${SEEDS:-0 1 2}

# Sokoban 6x6 with one box, at most 20 moves per episode.
env_opts=(--env sokoban --opt size=6x6 --opt boxes=1 --opt max-steps=20)
if [[ $scale == smoke ]]; then
  teacher_tasks=60; base_epochs=1; collect_tasks=12; budget=40; distil_steps=10
  eval_tasks=8; samples=4; ks=1,2,4
else
  teacher_tasks=300; base_epochs=2; collect_tasks=100; budget=40; distil_steps=60
  eval_tasks=40; samples=16; ks=1,2,4,8,16
fi

source scripts/lib/bins.sh
H=$bin/leafe-host
T=$bin/leafe-trainer
mkdir -p "$root"
log() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

for seed in $seeds; do
work=$root/seed-$seed
mkdir -p "$work"
log "seed $seed"

# The prompt of every model call and of every training record: short, so a
# tiny model's context holds the board and the last few moves.
cat > "$work/system.txt" <<'EOF'
Sokoban. {action_hint}
{answer_format}
EOF
prompt=(--system-prompt "$work/system.txt" --history-chars 600)
model_opts=(--temperature 1.0 --top-p 1.0 --max-tokens 8)

log "1. teacher play: the noisy oracle (30% random moves) with backtracking, train levels 0-$((teacher_tasks - 1))"
$H run "${env_opts[@]}" --split train --tasks "$teacher_tasks" --policy oracle --noise 0.3 \
  --budget 60 --seed "$seed" --out "$work/teacher" --force
# Every step of the successful (imperfect) trajectories, and the corrections
# with their experience in the prompt, so the base policy can follow lessons.
$H export "$work/teacher" --data leafe --reh-fraction 1 --keep-experience "${prompt[@]}" \
  --out "$work/teacher.jsonl"
# One pool of imitation data (no `kind`: not LEAFE's two-set loss), and the
# tokenizer's corpus.
python3 - "$work/teacher.jsonl" "$work/base.jsonl" > "$work/corpus.txt" <<'EOF'
import json, sys
with open(sys.argv[2], "w") as pooled:
    for line in open(sys.argv[1]):
        record = json.loads(line)
        record.pop("kind", None)
        pooled.write(json.dumps(record) + "\n")
for line in open(sys.argv[1]):
    for m in json.loads(line)["messages"]:
        print(m["content"])
EOF
$T init-tiny --corpus "$work/corpus.txt" --out "$work/init" --vocab-size 512 --hidden-size 64 \
  --layers 2 --seed "$seed"
$T sft --model "$work/init" --data "$work/base.jsonl" --out "$work/base" --epochs "$base_epochs" \
  --batch-size 8 --lr 0.003 --seed "$seed"

source scripts/lib/model-server.sh
policy() { echo --policy openai --base-url "http://127.0.0.1:$port/v1" --model "$1"; }

log "2. collection with the base policy, train levels 1000-$((999 + collect_tasks)), budget $budget steps per level"
serve "$work/base" base "$work/serve-base.log"
for method in sample leafe refine; do
  # shellcheck disable=SC2046
  $H run "${env_opts[@]}" --split train --from 1000 --tasks "$collect_tasks" $(policy base) \
    "${model_opts[@]}" "${prompt[@]}" --method "$method" --budget "$budget" --max-depth 10 \
    --seed "$seed" --out "$work/collect-$method" --force
done

log "3. distillation: RFT from the sample run, L_cf + L_reh from the leafe run, $distil_steps optimizer steps each"
# --allow-empty: a collection that found nothing writes an empty file (and
# says so); any other export failure stops the script.
$H export "$work/collect-sample" --data rft "${prompt[@]}" --out "$work/rft.jsonl" --allow-empty
$H export "$work/collect-leafe" --data leafe --cf-per-task 3 --reh-fraction 0.2 --beta 1 \
  --seed "$seed" "${prompt[@]}" --out "$work/leafe.jsonl" --allow-empty
stop_serving
for kind in rft leafe; do
  rm -rf "${work:?}/$kind"
  if [[ -s $work/$kind.jsonl ]]; then
    $T sft --model "$work/base" --data "$work/$kind.jsonl" --out "$work/$kind" \
      --epochs 1000 --max-steps "$distil_steps" --batch-size 8 --lr 0.001 --warmup-steps 0 \
      --seed "$seed"
  else
    # Nothing to distil from this collection: the variant is the base itself.
    echo "no $kind data for seed $seed: $kind = base"
    cp -r "$work/base" "$work/$kind"
  fi
done

log "4. evaluation on test levels 0-$((eval_tasks - 1)): $samples samples each, no reflection, no backtracking"
for model in base rft leafe; do
  serve "$work/$model" "$model" "$work/serve-$model.log"
  # shellcheck disable=SC2046
  $H eval "${env_opts[@]}" --split test --tasks "$eval_tasks" --samples "$samples" --k "$ks" \
    $(policy "$model") "${model_opts[@]}" "${prompt[@]}" --seed "$seed" --out "$work/eval-$model" --force
done
stop_serving

log "5. reference policies on the same test levels: random moves, and the noisy oracle"
for ref in random:1.0 oracle:0.3; do
  $H eval "${env_opts[@]}" --split test --tasks "$eval_tasks" --samples "$samples" --k "$ks" \
    --policy oracle --noise "${ref#*:}" --seed "$seed" --out "$work/eval-${ref%%:*}" --force
done

log "report for seed $seed"
$H report "$work/eval-random" "$work/eval-oracle" "$work/eval-base" "$work/eval-rft" \
  "$work/eval-leafe" "$work/collect-sample" "$work/collect-refine" "$work/collect-leafe" \
  --out "$work/report.md" --svg "$work/pass-at-k.svg"
done

log "report over seeds: $seeds"
variant() { # NAME EVAL-DIR-NAME
  local dirs=()
  for seed in $seeds; do dirs+=("$root/seed-$seed/$2"); done
  local IFS=,
  echo "--variant=$1=${dirs[*]}"
}
$H report "$(variant random eval-random)" "$(variant noisy-oracle eval-oracle)" \
  "$(variant base eval-base)" "$(variant RFT eval-rft)" "$(variant LEAFE eval-leafe)" \
  --out "$root/report.md"
runs=()
for seed in $seeds; do
  for method in sample refine leafe; do runs+=("$root/seed-$seed/collect-$method"); done
done
{ echo; $H report "${runs[@]}"; } >> "$root/report.md"
cat "$root/report.md"
echo
echo "wrote $root/report.md (and per seed: $root/seed-*/report.md, pass-at-k.svg)"
