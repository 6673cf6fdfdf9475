#!/usr/bin/env python3
"""Load `leafe-host serve`'s POST /run_code next to a baseline server that
runs each request's program with `python3` in a subprocess, on this
machine, in the same run (docs/BENCHMARKS.md).

CLIENTS concurrent clients send requests for SECONDS to each server in turn:
a mix of short programs, MBPP reference solutions with their asserts, and
ADVERSARIAL percent hostile programs (an endless loop with run_timeout 1, a
memory bomb (a list that grows without end), an output flood, deep recursion). Reports per server:
throughput, p50/p99 latency of the well-behaved requests, transport errors,
responses that are not a valid verdict, and (for leafe) the peak resident
memory. The baseline runs as many programs at once as leafe has run slots
(--concurrency), starts each with posix_spawn and caps its address space at
256 MiB, as the sandbox caps its memory. MBPP task 123 (seconds of compute)
is left out unless --with-123. Loopback only; bounded in count and time.
Standard library only.

With --sessions N: N concurrent Sokoban sessions stepping (the expert's
moves), snapshotting every 3 steps and restoring every 7 for SECONDS;
reports steps/s, errors and peak memory.

usage: scripts/bench/serve-load-sandbox.py [--binary target/release/leafe-host]
          [--clients 128] [--seconds 60] [--adversarial 5]
          [--baseline-python /usr/bin/python3] [--mbpp envs-wasm/code/data/mbpp.jsonl]
          [--concurrency N] [--with-123]
"""
import argparse
import http.client
import http.server
import json
import os
import random
import subprocess
import sys
import threading
import time

from loadkit import free_port, rss_kib, run_clients

SHORT = [
    "print(sum(range(1000)))",
    "print(input()[::-1])",
    "import math\nprint(math.factorial(30))",
    "xs = [i * i for i in range(2000)]\nprint(len(xs), xs[-1])",
    "print(sorted('the quick brown fox'.split()))",
]
HOSTILE = [
    "while True:\n    pass",
    "x = []\nwhile True:\n    x.append([0] * 10**6)",
    "while True:\n    print('x' * 10000)",
    "def f(n):\n    return f(n + 1)\nf(0)",
]






class Baseline(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


# The same cap as the sandbox's default (256 MiB), so a memory bomb fails
# there as it does in leafe instead of taking the machine.
MEMORY_CAP = 256 << 20


def run_capped(python, code, stdin, timeout):
    """`python -c code` as a user's server would start it: posix_spawn (no
    preexec_fn, which forces fork + exec; close_fds=False lets CPython use
    posix_spawn), the address-space cap set on the child right after it
    starts. (returncode, stdout, stderr), or None past the timeout."""
    import resource
    p = subprocess.Popen([python, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, close_fds=False)
    try:
        resource.prlimit(p.pid, resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    except (ProcessLookupError, PermissionError):
        pass  # it has already exited
    try:
        out, err = p.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None
    return p.returncode, out, err


def baseline_handler(python, slots):
    # As many programs at once as leafe has run slots; the rest wait.
    running = threading.BoundedSemaphore(slots)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            t = time.time()
            with running:
                done = run_capped(python, req["code"], (req.get("stdin") or "").encode(),
                                  req.get("run_timeout", 10))
            if done is None:
                run = {"status": "TimeLimitExceeded", "return_code": None, "stdout": "", "stderr": ""}
                status = "Failed"
            else:
                code, out, err = done
                run = {"status": "Finished", "return_code": code,
                       "stdout": out[:65536].decode(errors="replace"),
                       "stderr": err[:65536].decode(errors="replace")}
                status = "Success" if code == 0 else "Failed"
            run["execution_time"] = time.time() - t
            body = json.dumps({"status": status, "message": "", "run_result": run}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    return Handler


def requests_mix(mbpp_path, with_123):
    mbpp = []
    if mbpp_path and os.path.exists(mbpp_path):
        rows = [json.loads(l) for l in open(mbpp_path)]
        rows = [r for r in rows if 11 <= r["task_id"] <= 510 and (with_123 or r["task_id"] != 123)]
        mbpp = ["\n".join([r["code"], r.get("test_setup_code") or ""] + r["test_list"]) for r in rows]
    return mbpp


def load(port, clients, seconds, adversarial, mbpp, pid=None):
    stats = {"ok": 0, "hostile": 0, "transport_errors": 0, "invalid": 0, "busy": 0, "lat": [], "hostile_lat": []}
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def client(i):
        rng = random.Random(i)
        conn = None
        while time.time() < stop_at:
            hostile = rng.random() * 100 < adversarial
            if hostile:
                req = {"code": rng.choice(HOSTILE), "language": "python", "run_timeout": 1}
            elif mbpp and rng.random() < 0.5:
                req = {"code": rng.choice(mbpp), "language": "python", "run_timeout": 10}
            else:
                req = {"code": rng.choice(SHORT), "stdin": "abc\n", "language": "python", "run_timeout": 10}
            body = json.dumps(req)
            t = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("POST", "/run_code", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                dt = time.time() - t
                if r.status == 503:
                    with lock:
                        stats["busy"] += 1
                    time.sleep(1)
                    continue
                v = json.loads(data)
                valid = r.status == 200 and v.get("status") in ("Success", "Failed") and v.get("run_result")
                with lock:
                    if not valid:
                        stats["invalid"] += 1
                    elif hostile:
                        stats["hostile"] += 1
                        stats["hostile_lat"].append(dt)
                    else:
                        stats["ok"] += 1
                        stats["lat"].append(dt)
            except Exception:
                with lock:
                    stats["transport_errors"] += 1
                conn = None

    elapsed, peak = run_clients(client, clients, stop_at, pid)
    lat = sorted(stats["lat"]) or [0]
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 3)
    out = {
        "requests_per_s": round((stats["ok"] + stats["hostile"]) / elapsed, 1),
        "well_behaved": stats["ok"], "hostile": stats["hostile"], "busy_503": stats["busy"],
        "transport_errors": stats["transport_errors"], "invalid_responses": stats["invalid"],
        "p50_s": q(0.5), "p99_s": q(0.99),
        "hostile_max_s": round(max(stats["hostile_lat"] or [0]), 2),
    }
    if pid:
        out["rss_peak_mb"] = round(max(peak, rss_kib(pid, "VmHWM")) / 1024)
    return out


def load_sessions(port, clients, seconds, pid):
    """CLIENTS sessions stepping Sokoban with the expert's moves, a snapshot
    every 3 steps and a restore every 7, a new episode when one ends."""
    stats = {"steps": 0, "snapshots": 0, "restores": 0, "episodes": 0, "errors": 0}
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def call(conn, method, path, body=None):
        conn.request(method, path, json.dumps(body) if body is not None else None,
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status >= 400:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
        return json.loads(data) if data else None

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        task, sid, n, state = i, None, 0, None
        while time.time() < stop_at:
            try:
                if sid is None:
                    sid = call(conn, "POST", "/sessions", {"env": "sokoban", "task": task % 500})["id"]
                    n, state = 0, None
                move = call(conn, "GET", f"/sessions/{sid}/expert")["action"]
                r = call(conn, "POST", f"/sessions/{sid}/step", {"action": move or "up"})
                n += 1
                with lock:
                    stats["steps"] += 1
                if n % 3 == 0:
                    state = call(conn, "POST", f"/sessions/{sid}/snapshot")["state"]
                    with lock:
                        stats["snapshots"] += 1
                if n % 7 == 0 and state:
                    call(conn, "POST", f"/sessions/{sid}/restore", {"state": state})
                    with lock:
                        stats["restores"] += 1
                if r["terminated"] or r["truncated"] or n > 200:
                    call(conn, "DELETE", f"/sessions/{sid}")
                    sid, task = None, task + clients
                    with lock:
                        stats["episodes"] += 1
            except Exception as e:
                with lock:
                    stats["errors"] += 1
                    if stats["errors"] < 5:
                        print("error:", e, file=sys.stderr)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                sid = None

    elapsed, peak = run_clients(client, clients, stop_at, pid)
    stats["steps_per_s"] = round(stats["steps"] / elapsed, 1)
    stats["rss_peak_mb"] = round(peak / 1024)
    return stats


def start_leafe(binary, concurrency, extra=()):
    port = free_port()
    flags = ["--concurrency", str(concurrency)] if concurrency else []
    server = subprocess.Popen([binary, "serve", "--bind", f"127.0.0.1:{port}", "--queue", "4096", *flags, *extra],
                              stderr=subprocess.PIPE, text=True)
    while True:
        line = server.stderr.readline()
        if not line:
            sys.exit("leafe-host serve exited before listening")
        if line.startswith("serving on"):
            break
    threading.Thread(target=lambda: server.stderr.read(), daemon=True).start()
    return port, server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/leafe-host")
    ap.add_argument("--clients", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--adversarial", type=float, default=5)
    ap.add_argument("--baseline-python", default="/usr/bin/python3")
    ap.add_argument("--mbpp", default="envs-wasm/code/data/mbpp.jsonl")
    ap.add_argument("--concurrency", type=int,
                    help="leafe's --concurrency, and the baseline's programs at once [default: leafe's, 4 per core]")
    ap.add_argument("--with-123", action="store_true",
                    help="keep MBPP task 123 (seconds of compute, the sandbox's slowest case) in the mix")
    ap.add_argument("--sessions", type=int, default=0,
                    help="instead: this many concurrent environment sessions stepping and snapshotting")
    a = ap.parse_args()
    if a.sessions:
        port, server = start_leafe(a.binary, a.concurrency)
        stats = load_sessions(port, a.sessions, a.seconds, server.pid)
        stats["server_alive"] = server.poll() is None
        server.terminate()
        server.wait(timeout=60)
        print(json.dumps({"sessions": a.sessions, "seconds": a.seconds, **stats}, indent=1))
        return
    mbpp = requests_mix(a.mbpp, a.with_123)
    slots = a.concurrency or 4 * os.cpu_count()
    python = os.path.realpath(a.baseline_python)

    port, server = start_leafe(a.binary, a.concurrency)
    leafe = load(port, a.clients, a.seconds, a.adversarial, mbpp, server.pid)
    leafe["server_alive"] = server.poll() is None
    server.terminate()
    server.wait(timeout=60)

    bport = free_port()
    base = Baseline(("127.0.0.1", bport), baseline_handler(python, slots))
    threading.Thread(target=base.serve_forever, daemon=True).start()
    baseline = load(bport, a.clients, a.seconds, a.adversarial, mbpp)
    base.shutdown()

    print(json.dumps({
        "clients": a.clients, "seconds": a.seconds, "adversarial_percent": a.adversarial,
        "cores": os.cpu_count(), "baseline_python": python, "run_slots_both": slots,
        "mbpp_123": a.with_123,
        "leafe": leafe, "baseline": baseline,
        "throughput_ratio": round(leafe["requests_per_s"] / max(baseline["requests_per_s"], 1e-9), 2),
    }, indent=1))


if __name__ == "__main__":
    main()
