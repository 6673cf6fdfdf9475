#!/usr/bin/env python3
"""Load `leafe-trainer serve` and report its peak memory (docs/BENCHMARKS.md).

Starts the server on a loopback port, measures its resident memory at rest,
then runs CLIENTS concurrent clients for SECONDS, each sending chat requests
with prompts of PROMPT_TOKENS-ish tokens and max_tokens NEW; samples the
server's resident set every 50 ms and reads its high-water mark (VmHWM).
Reports requests done, 503s, tokens/s, latency, and memory: at rest, peak,
and after the load (does it return to the baseline?).

usage: scripts/bench/serve-load.py --model models/smollm2-135m-instruct
          [--binary target/release/leafe-trainer] [--clients 8] [--seconds 60]
          [--prompt-words 300] [--new 32] [--concurrency 2] [--max-context 2048]
          [--quantize none|q8_0|q4k]
Standard library only.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from loadkit import free_port, rss_kib, run_clients






WORDS = ("box goal wall left right up down push player level move the a of to and is "
         "under over next beside corner floor target solved stuck").split()


def prompt(rng, words):
    return "Describe the level: " + " ".join(rng.choice(WORDS) for _ in range(words)) + ". Which move?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--binary", default="target/release/leafe-trainer")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--prompt-words", type=int, default=300)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--max-context", type=int, default=2048)
    ap.add_argument("--queue", type=int, default=64)
    ap.add_argument("--quantize", default="none", choices=["none", "q8_0", "q4k"])
    a = ap.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [a.binary, "serve", "--model", a.model, "--port", str(port), "--name", "m",
         "--concurrency", str(a.concurrency), "--queue", str(a.queue), "--max-context", str(a.max_context),
         "--quantize", a.quantize],
        stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            break
        except Exception:
            if server.poll() is not None:
                sys.exit("the server exited: " + server.stderr.read())
            time.sleep(0.1)
    # Measure from here on: loading the weights peaks at twice their size
    # (file buffer + tensors), which is start-up, not serving.
    with open(f"/proc/{server.pid}/clear_refs", "w") as f:
        f.write("5")
    rest = rss_kib(server.pid)
    stats = {"ok": 0, "busy": 0, "errors": 0, "tokens": 0, "prompt_tokens": 0, "latency": []}
    lock = threading.Lock()
    stop_at = time.time() + a.seconds

    def client(i):
        rng = random.Random(i)
        while time.time() < stop_at:
            body = json.dumps({"model": "m", "max_tokens": a.new, "temperature": 0.7, "seed": i,
                               "messages": [{"role": "user", "content": prompt(rng, a.prompt_words)}]}).encode()
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            t = time.time()
            try:
                with urllib.request.urlopen(req, timeout=600) as r:
                    reply = json.load(r)
                with lock:
                    stats["ok"] += 1
                    stats["tokens"] += reply["usage"]["completion_tokens"]
                    stats["prompt_tokens"] += reply["usage"]["prompt_tokens"]
                    stats["latency"].append(time.time() - t)
            except urllib.error.HTTPError as e:
                with lock:
                    if e.code == 503:
                        stats["busy"] += 1
                    else:
                        stats["errors"] += 1
                time.sleep(float(e.headers.get("Retry-After", "1")) if e.code == 503 else 0.1)
            except Exception:
                with lock:
                    stats["errors"] += 1

    elapsed, peak = run_clients(client, a.clients, stop_at, server.pid)
    time.sleep(1)
    after = rss_kib(server.pid)
    hwm = rss_kib(server.pid, "VmHWM")
    alive = server.poll() is None
    server.terminate()
    lat = sorted(stats["latency"]) or [0]
    report = {
        "clients": a.clients, "seconds": round(elapsed, 1), "concurrency": a.concurrency,
        "max_context": a.max_context, "quantize": a.quantize, "requests_ok": stats["ok"], "busy_503": stats["busy"],
        "errors": stats["errors"], "server_alive": alive,
        "mean_prompt_tokens": round(stats["prompt_tokens"] / max(1, stats["ok"])),
        "completion_tokens_per_s": round(stats["tokens"] / elapsed, 1),
        "latency_p50_s": round(lat[len(lat) // 2], 2), "latency_max_s": round(lat[-1], 2),
        "rss_rest_mb": round(rest / 1024), "rss_peak_mb": round(max(peak, hwm) / 1024),
        "rss_after_mb": round(after / 1024),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
