"""Drive `leafe-host serve` with the official `openenv-core` client (pinned in
host/tests/all/serve_clients.rs): Sokoban to success with the expert's moves
fetched from leafe's session API, a guess episode, and the session API's
snapshot/restore from Python, across two server processes.

usage: python openenv_client.py BASE_URL OTHER_BASE_URL"""
import sys

import requests
from openenv.core.generic_client import GenericEnvClient

base, other = sys.argv[1], sys.argv[2]
checks = 0


def check(cond, what):
    global checks
    if not cond:
        sys.exit(f"FAILED: {what}")
    checks += 1


def expert(episode):
    r = requests.get(f"{base}/sessions/{episode}/expert", timeout=30)
    r.raise_for_status()
    return r.json()["action"]


with GenericEnvClient(base_url=base).sync() as env:
    for name, task in [("sokoban", 2), ("guess", 0)]:
        first = env.reset(env=name, task=task, seed=1)
        check(isinstance(first.observation["text"], str) and not first.done, f"{name}: reset")
        episode = env.state()["episode_id"]
        check(episode == first.observation["episode_id"], f"{name}: state names the episode")
        result, steps = first, 0
        while not result.done and steps < 200:
            result = env.step({"action": expert(episode)})
            steps += 1
        check(result.done and result.reward and result.reward > 0, f"{name}: solved, reward {result.reward}")
        check(env.state()["step_count"] == steps, f"{name}: step_count")
        print(f"{name} task {task}: solved in {steps} steps through the openenv client")
    try:
        env.step({"move": "up"})
        check(False, "a malformed action is an error")
    except RuntimeError as e:
        check("action" in str(e), f"the error says what is wrong: {e}")

# OpenEnv's HTTP face: /reset keeps the episode, /step names it.
first = requests.post(f"{base}/reset", json={"env": "guess", "task": 1}, timeout=30).json()
episode = first["observation"]["episode_id"]
check(first["done"] is False and first["reward"] is None, "HTTP reset")
result, steps = first, 0
while not result["done"] and steps < 50:
    result = requests.post(f"{base}/step", json={"action": {"action": expert(episode)}, "episode_id": episode},
                           timeout=30).json()
    steps += 1
check(result["done"] and result["reward"] > 0, f"HTTP episode solved: {result}")
bad = requests.post(f"{base}/step", json={"action": {"action": "1"}}, timeout=30)
check(bad.status_code == 422 and "episode_id" in bad.text, "HTTP step without an episode")

# The session API from Python: snapshot at step k, play on, restore, and the
# same observation comes back, here and in another server process.
s = requests.post(f"{base}/sessions", json={"env": "sokoban", "task": 5}, timeout=30).json()
sid = s["id"]
for _ in range(3):
    requests.post(f"{base}/sessions/{sid}/step", json={"action": expert(sid)}, timeout=30).raise_for_status()
at_k = requests.get(f"{base}/sessions/{sid}", timeout=30).json()["observation"]
state = requests.post(f"{base}/sessions/{sid}/snapshot", timeout=30).json()["state"]
move = expert(sid)
after = requests.post(f"{base}/sessions/{sid}/step", json={"action": move}, timeout=30).json()
back = requests.post(f"{base}/sessions/{sid}/restore", json={"state": state}, timeout=30).json()
check(back["observation"] == at_k, "restore gives the observation of step k")
moved = requests.post(f"{other}/sessions", json={"state": state}, timeout=30)
check(moved.status_code == 201 and moved.json()["observation"] == at_k, "restore in another process")
again = requests.post(f"{other}/sessions/{moved.json()['id']}/step", json={"action": move}, timeout=30).json()
check(again == after, "the same move gives the same result there")
gone = requests.post(f"{base}/sessions/nope/step", json={"action": "up"}, timeout=30)
check(gone.status_code == 404, "an unknown session is 404")
print(f"{checks} passed, 0 failed")
