#!/usr/bin/env python3
"""ScienceWorld (the PyPI package `scienceworld`, its simulator in Java) as a
leafe remote environment: `leafe-host run --env remote:http://HOST:PORT`.

It speaks the part of leafe's session protocol that the environment
contract needs (README, "Remote environments"):

  GET    /envs                      the environment: splits, max steps, action hint, sha256
  POST   /sessions                  {split, task, seed, options} -> {id, observation, admissible}
  POST   /sessions/{id}/step        {action} -> {observation, reward, terminated, truncated, info}
  GET    /sessions/{id}/admissible  {actions}: ScienceWorld's valid actions now
  GET    /sessions/{id}/expert      {action}: the next gold action while the path follows the gold path
  DELETE /sessions/{id}
  GET    /health

Tasks: ScienceWorld's 30 task types in task-id order (1-1 boil ... 10-2),
each cut into train/dev/test variations as ScienceWorld does (g = n // 4:
train the first 2g, dev the next g, test the rest). Split `test` is every
task's test variations in that order; `boil:test` (any task name) only that
task's. The first observation is the task description and `look around`.
Reward is ScienceWorld's own: the change in score (so the rewards of an
episode add up to its score, 0 to 100); `info.score` is the score,
`info.success` is score 100, and a failed task (score below 0) ends the
episode with `info["dead-end"]`. An episode is truncated after
`max-steps` actions (option, default 100), counting every action.

Options (`--opt` of leafe-host): `max-steps=N`, `simplifications=easy` (or
ScienceWorld's comma-separated list, e.g. teleportAction,openDoors).

Each session holds one ScienceWorldEnv, that is one JVM; closed sessions'
JVMs are kept for the next ones (a session for the task already loaded
there only resets it).

Determinism: the simulator lists a room's objects in an order that comes
from Java's identity hash codes, which differ from run to run (the same
reset shows the same objects in another order). The JVMs here run with
`-XX:hashCode=2` (every identity hash the same), so the order is the order
objects were made in, and the same task, seed and actions give the same
observations in every process; it costs about a quarter of the speed.

Run: python envs-remote/scienceworld/server.py --bind 127.0.0.1:8090
(in a venv with `pip install scienceworld==1.2.3`, and Java 8 or newer).
"""

import argparse
import hashlib
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata

import scienceworld
from scienceworld import ScienceWorldEnv

SPLITS = ("train", "dev", "test")
DEFAULT_MAX_STEPS = 100
ACTION_HINT = (
    "A text simulation of elementary science experiments. Each observation is what you see; "
    "act with one command, e.g.: look around, look at OBJ, look in OBJ, go to ROOM, open OBJ, "
    "close OBJ, pick up OBJ, put down OBJ, move OBJ to OBJ, pour OBJ into OBJ, dunk OBJ into OBJ, "
    "mix OBJ, activate OBJ, deactivate OBJ, use OBJ on OBJ, connect OBJ to OBJ, disconnect OBJ, "
    "eat OBJ, flush OBJ, read OBJ, focus on OBJ, wait, wait1, inventory, task. 'focus on' marks "
    "the object the task is about: focusing on the wrong one fails the task. The score rises as "
    "the task's steps are done; 100 solves it."
)


class BadRequest(Exception):
    """A request the client got wrong: answered with `status` and the message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def identity():
    """sha256 over the simulator jar and this server: what makes the observations."""
    h = hashlib.sha256()
    jar = os.path.join(os.path.dirname(scienceworld.__file__), "scienceworld.jar")
    for path in (jar, os.path.abspath(__file__)):
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def variation_splits(n):
    """ScienceWorld's own cut of a task's n variations (Scala getSets)."""
    g = n // 4
    return {"train": range(0, 2 * g), "dev": range(2 * g, 3 * g), "test": range(3 * g, n)}


class Catalog:
    """Every split's (task name, variation) list, in task-id order."""

    def __init__(self, env):
        self.tasks = list(env.tasks.values())
        self.splits = {s: [] for s in SPLITS}
        for name in self.tasks:
            for split, variations in variation_splits(env.get_max_variations(name)).items():
                pairs = [(name, v) for v in variations]
                self.splits[split].extend(pairs)
                self.splits[f"{name}:{split}"] = pairs

    def task(self, split, index):
        pairs = self.splits.get(split)
        if pairs is None:
            raise BadRequest(422, f"bad task: no split '{split}' (train, dev, test, or TASK:SPLIT)")
        if not 0 <= index < len(pairs):
            raise BadRequest(422, f"bad task: split '{split}' has {len(pairs)} tasks, not {index + 1}")
        return pairs[index]


class Session:
    def __init__(self, env, key, max_steps):
        self.env = env
        self.key = key
        self.max_steps = max_steps
        self.gold = env.get_gold_action_sequence()
        self.actions = []
        self.valid = []
        self.over = False
        self.last_used = time.monotonic()
        self.lock = threading.Lock()


class World:
    """The live sessions and the idle simulators kept for reuse."""

    def __init__(self, max_sessions, idle_secs):
        self.lock = threading.Lock()
        self.sessions = {}
        self.idle = []  # (key, env): a JVM with that task loaded
        self.max_sessions = max_sessions
        self.idle_secs = idle_secs
        first = ScienceWorldEnv("", envStepLimit=10**9)
        self.catalog = Catalog(first)
        self.idle.append((None, first))
        self.info = {
            "name": "scienceworld",
            "version": metadata.version("scienceworld"),
            "sha256": identity(),
            "splits": [[s, len(p)] for s, p in self.catalog.splits.items()],
            "max_steps": DEFAULT_MAX_STEPS,
            "action_hint": ACTION_HINT,
        }

    def simulator(self, key):
        """An idle simulator, the one with `key` loaded if there is one."""
        with self.lock:
            if len(self.sessions) >= self.max_sessions:
                raise BadRequest(429, f"too many sessions: {len(self.sessions)} are open")
            for i, (k, env) in enumerate(self.idle):
                if k == key:
                    return self.idle.pop(i)
            if self.idle:
                return self.idle.pop()
        return None, ScienceWorldEnv("", envStepLimit=10**9)

    def open(self, req):
        split = req.get("split", "test")
        index = req.get("task", 0)
        if not isinstance(split, str) or not isinstance(index, int):
            raise BadRequest(422, "bad task: split is a string and task a number")
        options = req.get("options") or {}
        unknown = set(options) - {"max-steps", "simplifications"}
        if unknown:
            raise BadRequest(422, f"bad task: unknown option(s) {sorted(unknown)} (max-steps, simplifications)")
        try:
            max_steps = int(options.get("max-steps", DEFAULT_MAX_STEPS))
            assert max_steps > 0
        except (ValueError, AssertionError):
            raise BadRequest(422, "bad task: max-steps must be a positive whole number")
        simplifications = str(options.get("simplifications", ""))
        name, variation = self.catalog.task(split, index)
        key = (name, variation, simplifications)
        loaded, env = self.simulator(key)
        try:
            if loaded != key:
                env.load(name, variation, simplifications, generateGoldPath=True)
            look, info = env.reset()
        except Exception as e:
            with self.lock:
                self.idle.append((None, env))
            if isinstance(e, ValueError):
                raise BadRequest(422, f"bad task: {e}")
            raise
        session = Session(env, key, max_steps)
        session.valid = sorted(info["valid"])
        sid = secrets.token_hex(8)
        with self.lock:
            self.sessions[sid] = session
        observation = env.get_task_description() + "\n\n" + look
        return {"id": sid, "env": "scienceworld", "observation": observation, "admissible": session.valid}

    def get(self, sid):
        with self.lock:
            session = self.sessions.get(sid)
        if session is None:
            raise BadRequest(404, f"no session '{sid}' (closed, expired, or lost with a restart)")
        session.last_used = time.monotonic()
        return session

    def step(self, sid, action):
        session = self.get(sid)
        if not isinstance(action, str):
            raise BadRequest(422, 'step needs {"action": "..."}')
        with session.lock:
            if session.over:
                raise BadRequest(422, "bad state: the episode is over")
            observation, reward, completed, info = session.env.step(action)
            session.actions.append(action)
            session.valid = sorted(info["valid"])
            score = info["score"]
            success = score >= 100
            failed = score < 0
            truncated = not completed and len(session.actions) >= session.max_steps
            session.over = completed or truncated
            out_info = {"score": score, "success": success, "moves": info["moves"], "admissible": session.valid}
            if failed:
                out_info["dead-end"] = "ScienceWorld scored the task as failed: it can no longer be completed"
            return {
                "observation": observation,
                "reward": reward,
                "terminated": bool(completed),
                "truncated": truncated,
                "info": out_info,
            }

    def admissible(self, sid):
        session = self.get(sid)
        return {"actions": None if session.over else session.valid}

    def expert(self, sid):
        session = self.get(sid)
        n = len(session.actions)
        on_gold = session.actions == session.gold[:n] and n < len(session.gold)
        return {"action": session.gold[n] if on_gold and not session.over else None}

    def close(self, sid):
        with self.lock:
            session = self.sessions.pop(sid, None)
            if session is None:
                raise BadRequest(404, f"no session '{sid}'")
            self.idle.append((session.key, session.env))

    def reap(self):
        """Close sessions idle for longer than allowed, forever."""
        while True:
            time.sleep(max(1.0, self.idle_secs / 4))
            now = time.monotonic()
            with self.lock:
                stale = [s for s, x in self.sessions.items() if now - x.last_used > self.idle_secs]
            for sid in stale:
                try:
                    self.close(sid)
                except BadRequest:
                    pass


def handler(world):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, Nagle's
        # algorithm holds the body for the client's delayed ACK (40 ms a call).
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > 1 << 20:
                raise BadRequest(413, "request body over 1 MiB")
            raw = self.rfile.read(n) if n else b"{}"
            try:
                value = json.loads(raw or b"{}")
            except ValueError as e:
                raise BadRequest(400, f"the body is not JSON: {e}")
            if not isinstance(value, dict):
                raise BadRequest(400, "the body must be a JSON object")
            return value

        def route(self, method):
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if method == "GET" and parts == ["health"]:
                return 200, {"status": "ok"}
            if method == "GET" and parts == ["envs"]:
                return 200, {"envs": [world.info]}
            if method == "POST" and parts == ["sessions"]:
                req = self.body()
                if req.get("env", "scienceworld") != "scienceworld":
                    raise BadRequest(404, f"no environment '{req['env']}' here (this server has: ['scienceworld'])")
                return 201, world.open(req)
            if len(parts) == 3 and parts[0] == "sessions":
                sid, what = parts[1], parts[2]
                if method == "POST" and what == "step":
                    return 200, world.step(sid, self.body().get("action"))
                if method == "GET" and what == "admissible":
                    return 200, world.admissible(sid)
                if method == "GET" and what == "expert":
                    return 200, world.expert(sid)
            if method == "DELETE" and len(parts) == 2 and parts[0] == "sessions":
                world.close(parts[1])
                return 204, None
            raise BadRequest(404, "no such route")

        def handle_method(self, method):
            try:
                status, body = self.route(method)
            except BadRequest as e:
                status, body = e.status, {"message": e.message}
            except Exception as e:  # the simulator failed: the server goes on
                status, body = 500, {"message": f"{type(e).__name__}: {e}"}
            self.answer(status, body)

        def do_GET(self):
            self.handle_method("GET")

        def do_POST(self):
            self.handle_method("POST")

        def do_DELETE(self):
            self.handle_method("DELETE")

    return Handler


# Identity hashes are all 1, so hash-ordered collections iterate in insertion order.
DETERMINISTIC_JVM = "-XX:+UnlockExperimentalVMOptions -XX:hashCode=2"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="127.0.0.1:8090", help="HOST:PORT (port 0: any free port)")
    parser.add_argument("--max-sessions", type=int, default=16, help="live sessions (JVMs) at most")
    parser.add_argument("--session-idle-secs", type=int, default=600, help="close a session unused this long")
    args = parser.parse_args()
    host, _, port = args.bind.rpartition(":")
    # The simulators' JVMs, started by py4j, inherit this.
    os.environ["JAVA_TOOL_OPTIONS"] = (os.environ.get("JAVA_TOOL_OPTIONS", "") + " " + DETERMINISTIC_JVM).strip()
    print("starting the ScienceWorld simulator...", file=sys.stderr, flush=True)
    world = World(args.max_sessions, args.session_idle_secs)
    server = ThreadingHTTPServer((host, int(port)), handler(world))
    server.daemon_threads = True
    threading.Thread(target=world.reap, daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    print(f"serving on http://{bound_host}:{bound_port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
