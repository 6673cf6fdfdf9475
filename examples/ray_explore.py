#!/usr/bin/env python3
"""Spread a `leafe-host run` over a Ray cluster: one Ray task per leafe task.

    python examples/ray_explore.py --out runs/sokoban-ray -- --env sokoban --tasks 100 --noise 0.4

Everything after `--` is `leafe-host run`'s own arguments (environment, split,
tasks, policy, method, budget, ...). The driver prepares the run directory
(`run --only-tasks ''`: settings checked, header written), each Ray task
explores one task with `run --only-tasks I` in a directory of its own and
returns its journal file, the driver writes each file into the run's
journal as it arrives, and a final `run --resume` assembles `tree.jsonl` and
`summary.json`. The result is the same bytes as `leafe-host run --jobs 1`,
and `replay`, `export` and `report` take it like any run.

A worker that dies mid-task is retried by Ray (`--max-retries`); a task's
result is keyed by its index and written once, so nothing is lost or
duplicated. If the driver stops, run the same command again: tasks already
in the journal are kept.

Without `--address` (or RAY_ADDRESS) a local Ray instance is started; on a
cluster, `leafe-host` must exist at `--leafe-host` on every node.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray

# Flags the driver sets itself.
RESERVED = {"--out", "--resume", "--force", "--only-tasks", "--json", "--jobs"}


def run_command(leafe_host: str, run_args: list[str], out: Path, *extra: str) -> list[str]:
    """`leafe-host run` with the run's arguments, into `out`, one task at a time."""
    return [leafe_host, "run", *run_args, "--out", str(out), "--jobs", "1", *extra]


def leafe_run(leafe_host: str, run_args: list[str], out: Path, *extra: str) -> str:
    cmd = run_command(leafe_host, run_args, out, *extra)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return done.stdout


@ray.remote
def explore_task(leafe_host: str, run_args: list[str], task: int, crash_marker: str | None):
    """Explore `task` alone; its journal file's name and bytes."""
    with tempfile.TemporaryDirectory(prefix=f"leafe-task-{task}-") as tmp:
        out = Path(tmp) / "run"
        if crash_marker and not os.path.exists(crash_marker):
            # Testing retries: the first attempt dies with the task under way.
            Path(crash_marker).write_text(f"task {task} crashed once\n")
            child = subprocess.Popen(
                run_command(leafe_host, run_args, out, "--only-tasks", str(task)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.05)
            child.kill()
            os.kill(os.getpid(), signal.SIGKILL)
        leafe_run(leafe_host, run_args, out, "--only-tasks", str(task))
        files = sorted((out / "tasks").glob("*.jsonl"))
        if len(files) != 1:
            raise RuntimeError(f"task {task}: expected one journal file, found {len(files)}")
        return task, files[0].name, files[0].read_bytes()


def write_durable(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all (a temporary file renamed into place)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        usage="%(prog)s --out DIR [options] -- RUN_ARGS...",
    )
    parser.add_argument("--out", required=True, type=Path, help="the run directory (resumed if it exists)")
    parser.add_argument(
        "--leafe-host",
        default=os.environ.get("LEAFE_HOST") or shutil.which("leafe-host"),
        help="the leafe-host binary, at this path on every node (default: $LEAFE_HOST, else PATH)",
    )
    parser.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local instance)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local instance (default: all)")
    parser.add_argument("--max-retries", type=int, default=3, help="retries of a task whose worker dies (default 3)")
    parser.add_argument("--crash-once", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="leafe-host run's arguments, after --")
    args = parser.parse_args()
    run_args = args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args
    if not args.leafe_host or not os.access(args.leafe_host, os.X_OK):
        parser.error("leafe-host not found: pass --leafe-host PATH or set LEAFE_HOST")
    taken = sorted({a.split("=", 1)[0] for a in run_args} & RESERVED)
    if taken:
        parser.error(f"the driver sets {', '.join(taken)} itself: leave them out of the run's arguments")

    # Settings checked and the header written (or an earlier run's progress read).
    resume = ["--resume"] if (args.out / "tree.jsonl").exists() else []
    part = json.loads(leafe_run(args.leafe_host, run_args, args.out, "--only-tasks", "", *resume))
    todo = [t for t in part["tasks"] if t not in set(part["done"])]
    total = len(part["tasks"])
    print(f"{len(part['done'])} of {total} tasks already done; {len(todo)} to explore", file=sys.stderr)

    if todo:
        if args.address is None and not os.environ.get("RAY_ADDRESS"):
            ray.init(num_cpus=args.num_cpus, include_dashboard=False, object_store_memory=200 << 20)
        else:
            ray.init(address=args.address)
        crash = str(args.crash_once) if args.crash_once else None
        task_fn = explore_task.options(max_retries=args.max_retries)
        pending = [task_fn.remote(args.leafe_host, run_args, t, crash) for t in todo]
        journal = args.out / "tasks"
        journal.mkdir(parents=True, exist_ok=True)
        done = total - len(todo)
        started = time.monotonic()
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            task, name, data = ray.get(ready[0])
            write_durable(journal / name, data)
            done += 1
            print(f"\r{done}/{total} tasks ({time.monotonic() - started:.1f} s)", end="", file=sys.stderr)
        print(file=sys.stderr)

    summary = json.loads(leafe_run(args.leafe_host, run_args, args.out, "--resume", "--json"))
    print(
        f"{summary['solved']}/{summary['tasks']} solved · {summary['backtracks']} backtracks · "
        f"{summary['corrections']} corrections · wrote {args.out}/tree.jsonl"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
