#!/usr/bin/env bash
# GRPO, the paper's main baseline, from leafe's own pieces: an on-policy loop
# of group sampling (`run --method group` against `leafe-trainer serve`),
# group-relative advantages (`export --data grpo`: outcome reward 1 for a
# success, else 0; (r - mean) / std per task) and one policy-gradient update
# (`sft --allow-negative-weights`: the advantage-weighted log-likelihood of
# the sampled answers), then the server reloads the new weights
# (`/v1/reload`) without a restart. KL=coef adds coef * KL(policy || starting model)
# on the sampled tokens to each update (off by default).
#
# Usage: scripts/experiments/grpo.sh MODEL_DIR WORKDIR [leafe-host run flags: --env, --opt, --task(s), ...]
# Settings (environment): ITERS=5 GROUP=8 STEPS=<episode steps, for the budget>
#   LR=1e-3 BATCH=64 TEMPERATURE=1.0 MAX_TOKENS=64 PORT=8766 KL=<coef, unset: none>
#   UPDATE_STEPS=<optimizer steps per iteration; unset: one epoch over the group data>
#   DEVICE=cpu|cuda (the trainer's; cuda needs a build with --features cuda)
#   SYSTEM_PROMPT=<file> HISTORY_CHARS=<n> (the prompt, as `run` takes them)
# Writes WORKDIR/iter-N/{run,grpo.jsonl,model} and one JSON line per iteration
# to WORKDIR/grpo_log.jsonl (iteration, mean reward, success rate, records);
# the last model is WORKDIR/final (a link to the newest checkpoint).
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,20p' "$0"; exit 2; }
model=$(cd "$1" && pwd); work=$2; shift 2
[[ -n ${SYSTEM_PROMPT:-} ]] && SYSTEM_PROMPT=$(realpath "$SYSTEM_PROMPT")
iters=${ITERS:-5} group=${GROUP:-8} steps=${STEPS:-10} lr=${LR:-1e-3} batch=${BATCH:-64}
port=${PORT:-8766}
cd "$(dirname "$0")/../.."
source scripts/lib/bins.sh
H=$bin/leafe-host T=$bin/leafe-trainer
mkdir -p "$work"; work=$(cd "$work" && pwd)
: > "$work/grpo_log.jsonl"

device=(--device "${DEVICE:-cpu}")
prompt=()
[[ -n ${SYSTEM_PROMPT:-} ]] && prompt+=(--system-prompt "$SYSTEM_PROMPT")
[[ -n ${HISTORY_CHARS:-} ]] && prompt+=(--history-chars "$HISTORY_CHARS")
"$T" serve --model "$model" --port "$port" --name policy --allow-reload --concurrency 4 \
  "${device[@]}" 2> "$work/serve.log" &
server=$!
trap 'kill $server 2> /dev/null || true' EXIT
url=http://127.0.0.1:$port/v1
post() { python3 -c 'import sys, urllib.request as u
r = u.Request(sys.argv[1], data=sys.argv[2].encode(), headers={"Content-Type": "application/json"})
print(u.urlopen(r, timeout=600).read().decode())' "$@"; }
for _ in $(seq 100); do
  python3 -c "import urllib.request as u; u.urlopen('$url/models', timeout=1)" 2> /dev/null && break
  kill -0 $server 2> /dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.2
done

current=$model
for i in $(seq 1 "$iters"); do
  it=$work/iter-$i
  "$H" run "$@" --method group --max-depth $((group - 1)) --budget $((group * steps)) \
    --policy openai --base-url "$url" --model policy --temperature "${TEMPERATURE:-1.0}" \
    --max-tokens "${MAX_TOKENS:-64}" "${prompt[@]}" --out "$it/run" --force > "$it.run.txt"
  said=$("$H" export "$it/run" --data grpo --out "$it/grpo.jsonl")
  stats=$(grep '^groups:' <<< "$said")
  records=$(wc -l < "$it/grpo.jsonl")
  rate=$(sed -n 's/.*success rate \([0-9.]*\).*/\1/p' <<< "$stats")
  reward=$(sed -n 's/.*mean reward \([0-9.]*\).*/\1/p' <<< "$stats")
  printf '{"iteration": %d, "mean_reward": %s, "success_rate": %s, "records": %d, "model": "%s"}\n' \
    "$i" "$reward" "$rate" "$records" "$current" | tee -a "$work/grpo_log.jsonl"
  extra=()
  [[ -n ${KL:-} ]] && extra=(--kl-to "$model" --kl-coef "$KL")
  [[ -n ${UPDATE_STEPS:-} ]] && extra+=(--max-steps "$UPDATE_STEPS")
  if [[ $records -gt 0 ]]; then
    "$T" sft --model "$current" --data "$it/grpo.jsonl" --out "$it/model" --epochs 1 \
      --batch-size "$batch" --lr "$lr" --warmup-steps 0 --allow-negative-weights "${extra[@]}" "${device[@]}" \
      > "$it.sft.txt"
    current=$it/model
    post "$url/reload" "{\"model\": \"$current\"}" > /dev/null
  fi
done
ln -sfn "$current" "$work/final"
