#!/usr/bin/env python3
"""Throughput of the leafe Python package, each figure paired with a baseline in the same run.

    python python/benches/throughput.py [--python /usr/bin/python3] [--seconds 3] [--json]

1. Sandboxed programs: `leafe.run_python` calls per second from 1 and 2
   threads, against `subprocess.run([python3, "-c", program])` from 1 and 2
   threads (a fresh native interpreter a program: the usual way to isolate
   generated code). The baseline interpreter is a real binary, resolved and
   named in the output (a version-manager shim adds ~70 ms a process).
2. Environment steps: Sokoban steps per second from Python (`env.step`
   through the wasm component, the info's valid actions included), with the
   expert's move in the info (a solver call a step) and without it, against a gym-sokoban-style pure-Python step (a numpy room, the same
   moving and pushing rules) on the same level with the same random moves.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

import leafe

PROGRAM = "print(sum(i * i for i in range(1000)))"


def rate(fn, seconds: float, threads: int) -> float:
    """Calls of `fn` per second from `threads` threads, over about `seconds`."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        while time.monotonic() < stop:
            fn()
            counts[i] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.monotonic() - started)


# --- a gym-sokoban-style step in pure Python ---------------------------------
WALL, FLOOR, TARGET, BOX_ON_TARGET, BOX, PLAYER = 0, 1, 2, 3, 4, 5
MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


class PySokoban:
    """gym-sokoban's state and step: a numpy room of fixed cells and a room of
    movable things, reward -0.1 a step, +1 a box onto a target, +10 when solved."""

    def __init__(self, board: str, max_steps: int):
        self.max_steps = max_steps
        self.steps = 0
        rows = [r for r in board.splitlines() if r.startswith("#")]
        self.fixed = np.full((len(rows), len(rows[0])), FLOOR, dtype=np.uint8)
        self.state = np.full_like(self.fixed, FLOOR)
        for y, row in enumerate(rows):
            for x, c in enumerate(row):
                if c == "#":
                    self.fixed[y, x] = self.state[y, x] = WALL
                elif c in "O*+":
                    self.fixed[y, x] = TARGET
                    self.state[y, x] = {"O": TARGET, "*": BOX_ON_TARGET, "+": PLAYER}[c]
                elif c in "X$":
                    self.state[y, x] = BOX
                elif c in "P@":
                    self.state[y, x] = PLAYER
        self.player = np.argwhere(self.state == PLAYER)[0]
        self.start = (self.fixed.copy(), self.state.copy(), self.player.copy())

    def reset(self) -> None:
        self.steps = 0
        self.fixed, self.state, self.player = (a.copy() for a in self.start)

    def step(self, action: str):
        dy, dx = MOVES[action]
        y, x = self.player
        ny, nx = y + dy, x + dx
        reward = -0.1
        target = self.state[ny, nx]
        if target in (BOX, BOX_ON_TARGET):
            by, bx = ny + dy, nx + dx
            if self.state[by, bx] in (FLOOR, TARGET):
                self.state[by, bx] = BOX_ON_TARGET if self.fixed[by, bx] == TARGET else BOX
                reward += int(self.fixed[by, bx] == TARGET) - int(target == BOX_ON_TARGET)
                target = FLOOR
        if target in (FLOOR, TARGET):
            self.state[y, x] = self.fixed[y, x] if self.fixed[y, x] == TARGET else FLOOR
            self.state[ny, nx] = PLAYER
            self.player = np.array([ny, nx])
        solved = not (self.state == BOX).any()
        self.steps += 1
        truncated = self.steps >= self.max_steps and not solved
        return self.state.copy(), reward + (10.0 if solved else 0.0), solved, truncated, {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=None, help="the baseline interpreter (default: /usr/bin/python3, else this one)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds a measurement (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    python = args.python or ("/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
    python = os.path.realpath(shutil.which(python) or python)
    version = subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip()
    cores = os.cpu_count()
    figures: dict[str, object] = {"baseline": f"{python} ({version})", "cores": cores}

    assert leafe.run_python(PROGRAM).stdout == "332833500\n"  # warm: the sandbox compiled or cached
    native = lambda: subprocess.run([python, "-c", PROGRAM], capture_output=True, check=True)
    sandboxed = lambda: leafe.run_python(PROGRAM)
    for threads in (1, 2):
        ours = rate(sandboxed, args.seconds, threads)
        theirs = rate(native, args.seconds, threads)
        figures[f"run_python/s, {threads} thread(s)"] = round(ours, 1)
        figures[f"subprocess python3/s, {threads} thread(s)"] = round(theirs, 1)
        figures[f"sandbox vs subprocess, {threads} thread(s)"] = round(ours / theirs, 2)

    env = leafe.make("sokoban", task=0)
    board, _ = env.reset(seed=0)
    moves = [random.Random(0).choice(list(MOVES)) for _ in range(100_000)]

    def steps_per_s(step, reset) -> float:
        i = 0
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            for _ in range(100):
                _, _, terminated, truncated, _ = step(moves[i % len(moves)])
                i += 1
                if terminated or truncated:
                    reset()
        return i / (time.monotonic() - started)

    ours = steps_per_s(env.step, env.reset)
    lean = leafe.make("sokoban", task=0, expert_in_info=False)
    lean.reset(seed=0)
    ours_lean = steps_per_s(lean.step, lean.reset)
    py = PySokoban(board, env.env_info["max_steps"])
    theirs = steps_per_s(py.step, py.reset)
    figures["pure-Python sokoban step/s"] = round(theirs)
    figures["leafe env.step/s, expert in info"] = round(ours)
    figures["leafe env.step/s, expert_in_info=False"] = round(ours_lean)
    figures["env.step vs pure Python, expert in info"] = round(ours / theirs, 2)
    figures["env.step vs pure Python, expert_in_info=False"] = round(ours_lean / theirs, 2)

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        width = max(map(len, figures))
        for k, v in figures.items():
            print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
