"""The Ray examples: ray_explore.py on a Ray cluster the test starts (`ray start --head`, the
way a multi-node cluster starts), ray_sandbox.py on the local instance it starts itself."""

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def run(args, **kw):
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout}\n{out.stderr}"
    return out


RUN_ARGS = ["--env", "sokoban", "--tasks", "8", "--seed", "3", "--noise", "0.5"]


@pytest.fixture
def ray_cluster(tmp_path_factory):
    """A one-node Ray cluster started with `ray start --head` and a token, as docs/RAY.md
    starts one: (its address, the environment a client needs)."""
    ray = str(Path(sys.executable).parent / "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Ray's socket paths must stay short.
    temp = tmp_path_factory.mktemp("r")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    run([ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         f"--temp-dir={temp}", "--disable-usage-stats"], env=env)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120, env=env)


def test_ray_explore_writes_the_run_of_jobs_1_even_when_a_worker_dies(repo, leafe_host, tmp_path, ray_cluster):
    marker = tmp_path / "crashed"
    ray_out = tmp_path / "ray"
    address, env = ray_cluster
    run(
        [sys.executable, str(repo / "examples/ray_explore.py"), "--out", str(ray_out),
         "--leafe-host", leafe_host, "--address", address, "--crash-once", str(marker), "--", *RUN_ARGS],
        env=env,
    )
    # A worker was killed mid-task, and Ray's retry made up for it.
    assert marker.exists()
    single = tmp_path / "single"
    run([leafe_host, "run", *RUN_ARGS, "--jobs", "1", "--out", str(single)])
    assert (ray_out / "tree.jsonl").read_bytes() == (single / "tree.jsonl").read_bytes()
    assert not (ray_out / "tasks").exists()
    summary = json.loads((ray_out / "summary.json").read_text())
    assert summary["tasks"] == 8
    # The CLI takes it like any run.
    run([leafe_host, "replay", str(ray_out)])
    run([leafe_host, "report", str(ray_out)])
    exported = tmp_path / "sft.jsonl"
    run([leafe_host, "export", str(ray_out), "--out", str(exported)])
    run([leafe_host, "export", str(single), "--out", str(tmp_path / "single.jsonl")])
    # The same examples; only their source's run directory differs.
    ours = exported.read_text().replace(str(ray_out), "RUN")
    theirs = (tmp_path / "single.jsonl").read_text().replace(str(single), "RUN")
    assert ours == theirs and ours.count("\n") > 0
    # Run again: everything is there already, nothing is redone.
    again = run(
        [sys.executable, str(repo / "examples/ray_explore.py"), "--out", str(ray_out),
         "--leafe-host", leafe_host, "--", *RUN_ARGS]
    )
    assert "8 of 8 tasks already done; 0 to explore" in again.stderr
    assert (ray_out / "tree.jsonl").read_bytes() == (single / "tree.jsonl").read_bytes()


def test_ray_explore_refuses_flags_it_sets_itself(repo, leafe_host, tmp_path):
    out = subprocess.run(
        [sys.executable, str(repo / "examples/ray_explore.py"), "--out", str(tmp_path / "x"),
         "--leafe-host", leafe_host, "--", "--env", "sokoban", "--jobs", "4"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2 and "--jobs" in out.stderr


def test_ray_sandbox_judges_mbpp_on_a_task_pool(repo):
    script = str(repo / "examples/ray_sandbox.py")
    right = run([sys.executable, script, "--limit", "40", "--batch", "7", "--num-cpus", "2", "--json"])
    verdicts = json.loads(right.stdout.splitlines()[0])
    assert [v["task_id"] for v in verdicts] == list(range(11, 51))
    assert all(v["passed"] == v["total"] > 0 for v in verdicts)
    assert "40/40 programs pass" in right.stdout
    wrong = run([sys.executable, script, "--limit", "40", "--num-cpus", "2", "--wrong"])
    assert "0/40 programs pass" in wrong.stdout
