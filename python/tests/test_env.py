"""leafe.make as a Gymnasium environment: Gymnasium's own checker, determinism, snapshots, errors."""

import base64
import json
import socket
import subprocess
import time
import urllib.request
import sys
import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import leafe

CODECONTESTS_FIXTURE = "envs-wasm/code/data/codecontests-fixture.jsonl"


def builtin_specs(repo):
    """Every built-in, codecontests with the repository's fixture problems as its data."""
    return [
        f"codecontests:{repo / CODECONTESTS_FIXTURE}" if name == "codecontests" else name
        for name in leafe.envs()
    ]


def test_envs_lists_the_builtins():
    assert leafe.envs() == ["sokoban", "guess", "household", "shop", "mbpp", "codecontests"]


def test_check_env_passes_for_every_builtin(repo):
    for spec in builtin_specs(repo):
        # Any warning of the checker is a failure here.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(leafe.make(spec))
            if ":" not in spec:
                check_env(gymnasium.make(f"leafe/{spec}-v0").unwrapped)


def test_reset_and_step_carry_the_environment_info():
    env = leafe.make("sokoban", split="test", task=0)
    obs, info = env.reset(seed=0)
    assert "#" in obs and info["task"] == 0 and info["split"] == "test"
    assert info["admissible_actions"] == ["up", "down", "left", "right"]
    expert = info["expert_action"]
    obs2, reward, terminated, truncated, info2 = env.step(expert)
    assert isinstance(reward, float) and not truncated
    assert obs2 != obs
    assert "expert_action" in info2 or terminated
    assert env.env_info["name"] == "sokoban"


def test_the_expert_solves_a_level_and_reset_options_pick_the_task():
    env = leafe.make("sokoban")
    obs_a, _ = env.reset(seed=0, options={"task": 3})
    assert env.task == 3
    total, done = 0.0, False
    for _ in range(200):
        _, reward, terminated, truncated, info = env.step(env.expert_action())
        total += reward
        if terminated or truncated:
            done = True
            break
    assert done and info.get("success") is True
    obs_b, _ = env.reset(seed=0, options={"task": 4})
    assert obs_b != obs_a


def play(spec, split, task, seed, steps):
    """Observations of an episode whose actions are drawn from the valid ones by `seed`."""
    import random

    rng = random.Random(seed)
    env = leafe.make(spec, split=split, task=task, seed=seed)
    obs, info = env.reset()
    trace = [obs]
    for _ in range(steps):
        actions = info.get("admissible_actions") or ["look"]
        obs, reward, terminated, truncated, info = env.step(rng.choice(actions))
        trace.append([obs, reward, terminated, truncated])
        if terminated or truncated:
            break
    return trace


PLAY = """
import json, sys
sys.path.insert(0, {tests!r})
from test_env import play
print(json.dumps(play({spec!r}, {split!r}, {task}, {seed}, 30)))
"""


@pytest.mark.parametrize("spec,split", [("sokoban", "test"), ("household", "valid_seen"), ("shop", "test")])
def test_the_same_seed_and_actions_give_the_same_observations_in_two_processes(spec, split):
    from pathlib import Path

    code = PLAY.format(tests=str(Path(__file__).parent), spec=spec, split=split, task=2, seed=7)
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert len(json.loads(runs[0])) > 1
    assert json.loads(runs[0]) == json.loads(json.dumps(play(spec, split, 2, 7, 30)))


ENVS = [("sokoban", "test"), ("household", "valid_seen"), ("shop", "test"), ("guess", "test")]


@settings(max_examples=40, deadline=None)
@given(
    which=st.integers(0, len(ENVS) - 1),
    task=st.integers(0, 30),
    seed=st.integers(0, 2**32),
    choices=st.lists(st.integers(0, 1000), min_size=1, max_size=25),
    at=st.integers(0, 24),
    junk=st.booleans(),
)
def test_restoring_a_snapshot_replays_the_rest_of_the_episode_exactly(which, task, seed, choices, at, junk):
    spec, split = ENVS[which]
    env = leafe.make(spec, split=split, task=task, seed=seed)
    obs, info = env.reset()

    def act(i, info):
        actions = info.get("admissible_actions") or ["look", "search[red shoes]", "50", "up"]
        # Now and then an action the environment does not know.
        return "frobnicate the moon" if junk and i % 5 == 4 else actions[choices[i] % len(actions)]

    at = min(at, len(choices) - 1)
    for i in range(at):
        obs, _, terminated, truncated, info = env.step(act(i, info))
        if terminated or truncated:
            return
    state = env.snapshot()
    snapshot_info = info
    after = []
    for i in range(at, len(choices)):
        out = env.step(act(i, info))
        info = out[4]
        after.append(out)
        if out[2] or out[3]:
            break
    env.restore(state)
    info = snapshot_info
    again = []
    for i in range(at, at + len(after)):
        out = env.step(act(i, info))
        info = out[4]
        again.append(out)
    assert again == after


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="no split 'nope'"):
        leafe.make("sokoban", split="nope")
    env = leafe.make("sokoban")
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"task": 10**6})
    with pytest.raises(ValueError):
        leafe.make("sokoban", task=-1)
    with pytest.raises(ValueError):
        env.step(3)
    with pytest.raises(ValueError):
        leafe.make("sokoban", size=object())


def test_environment_failures_are_env_errors(tmp_path):
    with pytest.raises(leafe.EnvError, match="nope"):
        leafe.make("nope")
    not_wasm = tmp_path / "env.wasm"
    not_wasm.write_bytes(b"\0asm but not really")
    with pytest.raises(leafe.EnvError):
        leafe.make(str(not_wasm))
    with pytest.raises(leafe.EnvError, match="in this process"):
        leafe.make("remote:http://127.0.0.1:9")
    env = leafe.make("sokoban")
    with pytest.raises(leafe.EnvError, match="reset"):
        env.step("up")


def test_a_corrupt_or_foreign_snapshot_raises_and_keeps_the_episode():
    env = leafe.make("sokoban", task=1)
    obs, _ = env.reset()
    state = env.snapshot()
    with pytest.raises(leafe.EnvError, match="not a leafe snapshot"):
        env.restore(b"garbage")
    flipped = bytearray(state)
    flipped[-3] ^= 0xFF
    with pytest.raises(leafe.EnvError, match="not a leafe snapshot"):
        env.restore(bytes(flipped))
    # A well-formed envelope around corrupt component state: the component refuses it.
    envelope = json.loads(state)
    inner = bytearray(base64.b64decode(envelope["state"]))
    inner[len(inner) // 2] ^= 0x55
    envelope["state"] = base64.b64encode(bytes(inner)).decode()
    with pytest.raises(leafe.EnvError, match="bad state"):
        env.restore(json.dumps(envelope).encode())
    envelope["state"] = "!!not base64!!"
    with pytest.raises(leafe.EnvError, match="bad state"):
        env.restore(json.dumps(envelope).encode())
    with pytest.raises(leafe.EnvError):
        env.restore(state[: len(state) - 7])
    other = leafe.make("guess")
    other.reset()
    with pytest.raises(leafe.EnvError, match="the snapshot is of"):
        env.restore(other.snapshot())
    # The episode goes on as if nothing happened.
    fresh = leafe.make("sokoban", task=1)
    fresh.reset()
    assert env.step("down") == fresh.step("down")
    env.restore(state)
    fresh.reset()
    assert env.step("down") == fresh.step("down")


def test_a_snapshot_restores_into_a_new_object():
    env = leafe.make("household", split="valid_seen", task=5, seed=3)
    _, info = env.reset()
    env.step(info["admissible_actions"][0])
    state = env.snapshot()
    other = leafe.make("household", split="valid_seen")
    other.restore(state)
    action = env.admissible_actions()[-1]
    assert other.step(action) == env.step(action)


def test_render_modes():
    env = leafe.make("sokoban", render_mode="ansi")
    obs, _ = env.reset()
    assert env.render() == obs
    with pytest.raises(ValueError):
        leafe.make("sokoban", render_mode="rgb_array")


def test_the_expert_can_be_left_out_of_info():
    env = leafe.make("sokoban", expert_in_info=False)
    _, info = env.reset()
    assert "expert_action" not in info and info["admissible_actions"]
    assert env.expert_action() in info["admissible_actions"]
    assert "expert_action" not in env.step("up")[4]
    assert env.spec.make().unwrapped.expert_in_info is False


CONFIGURED = """
import leafe
leafe.configure(max_instances=300)
envs = [leafe.make("guess") for _ in range(290)]
for e in envs:
    e.reset()
try:
    leafe.configure(max_instances=10)
except RuntimeError as e:
    print("refused:", e)
"""

DEFAULT = """
import leafe
envs = [leafe.make("guess") for _ in range(257)]
try:
    for e in envs:
        e.reset()
except leafe.EnvError as e:
    print("EnvError:", e)
"""


def test_configure_raises_the_instance_limit_before_leafe_starts():
    out = subprocess.run([sys.executable, "-c", CONFIGURED], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("refused: leafe is already running"), out
    out = subprocess.run([sys.executable, "-c", DEFAULT], capture_output=True, text=True, check=True)
    assert "EnvError: cannot instantiate" in out.stdout and "leafe.configure(max_instances=N)" in out.stdout
    with pytest.raises(ValueError):
        leafe.configure(max_instances=0)


def test_a_component_given_by_path_is_the_same_environment(component_path):
    from_file = leafe.make(component_path, task=4, seed=2)
    builtin = leafe.make("guess", task=4, seed=2)
    assert from_file.sha256 == builtin.sha256
    assert from_file.spec.id == "leafe/leafe_env_guess-v0"
    assert from_file.reset() == builtin.reset()
    assert from_file.step("50") == builtin.step("50")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(leafe.make(component_path))


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_snapshots_move_between_the_package_and_leafe_host_serve(leafe_host):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([leafe_host, "serve", "--bind", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        env = leafe.make("sokoban", task=5, seed=1)
        env.reset()
        after_left = env.step("left")[0]
        # The package's snapshot continues on the server...
        made = post(f"{url}/sessions", {"state": base64.b64encode(env.snapshot()).decode()})
        assert made["observation"] == after_left
        server_step = post(f"{url}/sessions/{made['id']}/step", {"action": "down"})
        ours = env.step("down")
        assert (server_step["observation"], server_step["reward"]) == (ours[0], ours[1])
        # ...and the server's snapshot continues in the package, task and seed included.
        state = post(f"{url}/sessions/{made['id']}/snapshot", {})["state"]
        other = leafe.make("sokoban")
        other.restore(base64.b64decode(state))
        assert (other.task, other.episode_seed) == (5, 1)
        assert other.step("up") == env.step("up")
    finally:
        server.terminate()
        server.wait(timeout=30)
