#!/usr/bin/env bash
# ScienceWorld through leafe's remote bridge against the Python package
# driven directly, on the same work, in one run: TASKS tasks of SPLIT (from
# FROM), each loaded, reset and played along ScienceWorld's gold action
# sequence. The direct loop runs twice, with the JVM as ScienceWorld
# starts it and with the flag the server adds for determinism
# (-XX:hashCode=2); the bridge is `leafe-host run --policy oracle --noise 0
# --opt max-steps=1000` (every gold path fits; it stops at score 100)
# against envs-remote/scienceworld/server.py, one task at a time like the loop.
#
#   PROFILE=release TASKS=5 scripts/bench/scienceworld-bench.sh
#
# Needs Java 8+ on PATH. PYTHON (default /usr/bin/python3, Debian's) makes
# the virtualenv VENV (default target/venv-scienceworld) with scienceworld.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/bins.sh
SPLIT=${SPLIT:-test}
FROM=${FROM:-0}
TASKS=${TASKS:-5}
PYTHON=${PYTHON:-/usr/bin/python3}
VENV=${VENV:-target/venv-scienceworld}
if ! "$VENV/bin/python" -c "import scienceworld" 2>/dev/null; then
  "$PYTHON" -m venv --clear "$VENV"
  "$VENV/bin/pip" install -q scienceworld==1.2.3
fi
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

echo "python: $("$VENV/bin/python" -c 'import sys; print(sys.executable, sys.version.split()[0])')" \
  "· java: $(java -version 2>&1 | head -1) · $SPLIT tasks $FROM..$((FROM + TASKS - 1))"

direct() {
  JAVA_TOOL_OPTIONS="$1" "$VENV/bin/python" - "$SPLIT" "$FROM" "$TASKS" 2>/dev/null <<'EOF'
import importlib.util, json, sys, time
spec = importlib.util.spec_from_file_location("server", "envs-remote/scienceworld/server.py")
server = importlib.util.module_from_spec(spec); spec.loader.exec_module(server)
from scienceworld import ScienceWorldEnv
split, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
env = ScienceWorldEnv("", envStepLimit=10**9)
catalog = server.Catalog(env)
steps, began = 0, time.perf_counter()
for index in range(start, start + count):
    name, variation = catalog.task(split, index)
    env.load(name, variation, "", generateGoldPath=True)
    env.reset()
    for action in env.get_gold_action_sequence():
        env.step(action)
        steps += 1
print(json.dumps({"steps": steps, "seconds": time.perf_counter() - began}))
env.close()
EOF
}

"$VENV/bin/python" envs-remote/scienceworld/server.py --bind 127.0.0.1:0 2>"$work/server.log" &
server=$!
until url=$(sed -n 's/^serving on //p' "$work/server.log") && [ -n "$url" ]; do
  kill -0 $server 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.2
done
"$bin/leafe-host" run --env "remote:$url" --split "$SPLIT" --from "$FROM" --tasks "$TASKS" \
  --policy oracle --noise 0 --opt max-steps=1000 --jobs 1 --out "$work/run" >/dev/null
bridge=$("$VENV/bin/python" -c "import json; s = json.load(open('$work/run/summary.json')); \
print(json.dumps({'steps': s['steps'], 'seconds': s['wall_ms'] / 1000, 'solved': s['solved']}))")
plain=$(direct "")
fixed=$(direct "-XX:+UnlockExperimentalVMOptions -XX:hashCode=2")

"$VENV/bin/python" - "$plain" "$fixed" "$bridge" <<'EOF'
import json, sys
plain, fixed, bridge = (json.loads(a) for a in sys.argv[1:])
rate = lambda r: r["steps"] / r["seconds"]
print(f"{'':44} {'steps':>6} {'seconds':>8} {'steps/s':>8} {'ratio':>6}")
for name, r in [("python package, ScienceWorld's JVM", plain),
                ("python package, JVM with -XX:hashCode=2", fixed),
                ("leafe-host run through the bridge", bridge)]:
    print(f"{name:44} {r['steps']:>6} {r['seconds']:>8.2f} {rate(r):>8.1f} {rate(r) / rate(plain):>5.2f}x")
print(f"bridge vs the package on the same JVM flags: {rate(bridge) / rate(fixed):.2f}x; "
      f"solved {bridge['solved']} of the tasks")
EOF
