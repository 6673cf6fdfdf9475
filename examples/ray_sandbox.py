#!/usr/bin/env python3
"""Judge many programs on a Ray task pool with `leafe.run_tests`.

    python examples/ray_sandbox.py --split test            # MBPP's reference solutions: all pass
    python examples/ray_sandbox.py --split test --wrong    # each problem given another's solution: all fail

Each Ray task judges a batch of (program, tests) in the sandbox of its own
worker process (one interpreter a program, under fuel, time and memory
limits); the driver gathers the verdicts. Swap `programs()` for your model's
samples to score them. Without `--address` (or RAY_ADDRESS) a local Ray
instance is started; on a cluster every node needs `pip install ./python`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import ray

import leafe


@ray.remote
def judge(batch: list[dict]) -> list[dict]:
    out = []
    for item in batch:
        report = leafe.run_tests(item["program"], item["tests"], setup=item["setup"], jobs=1)
        out.append({"task_id": item["task_id"], "passed": report.passed, "total": report.total})
    return out


def programs(split: str, limit: int | None, wrong: bool) -> list[dict]:
    """MBPP's problems with their reference solutions (or, `wrong`, the next problem's)."""
    problems = leafe.mbpp(split)[:limit]
    solutions = [p["code"] for p in problems]
    if wrong:
        solutions = solutions[1:] + solutions[:1]
    return [
        {"task_id": p["task_id"], "program": s, "tests": p["test_list"], "setup": p["test_setup_code"]}
        for p, s in zip(problems, solutions)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="test", help="MBPP split (test, train, validation, prompt)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--wrong", action="store_true", help="give each problem the next problem's solution")
    parser.add_argument("--batch", type=int, default=20, help="programs per Ray task (default 20)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else local)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local instance (default: all)")
    parser.add_argument("--json", action="store_true", help="print every verdict as JSON")
    args = parser.parse_args()
    if args.batch < 1:
        parser.error("--batch must be at least 1")

    items = programs(args.split, args.limit, args.wrong)
    if args.address is None and not os.environ.get("RAY_ADDRESS"):
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, object_store_memory=200 << 20)
    else:
        ray.init(address=args.address)
    started = time.monotonic()
    batches = [items[i : i + args.batch] for i in range(0, len(items), args.batch)]
    results = [r for batch in ray.get([judge.remote(b) for b in batches]) for r in batch]
    took = time.monotonic() - started
    solved = sum(r["passed"] == r["total"] for r in results)
    if args.json:
        print(json.dumps(results))
    print(
        f"{solved}/{len(results)} programs pass all their tests · {took:.1f} s on "
        f"{int(ray.cluster_resources().get('CPU', 0))} CPUs ({len(results) / took:.0f} programs/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
