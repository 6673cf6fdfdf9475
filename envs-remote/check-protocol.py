#!/usr/bin/env python3
"""Check that an environment server speaks leafe's session protocol: every
answer of one short episode is validated against the JSON schema that the
protocol's Rust types generate (docs/session-protocol.schema.json).

Usage: python envs-remote/check-protocol.py URL [--env NAME] [--split SPLIT]
           [--task N] [--schema FILE]

It lists the environments (GET /envs), opens a session on task N of SPLIT
(POST /sessions), asks for the admissible and the expert action, takes one
step, closes the session, and asks for an unknown split to see a refusal
with a JSON error body. Exits 0 when every answer fits, 1 otherwise (each
misfit printed), 2 when the server cannot be reached.

Needs the PyPI package `jsonschema` (4.18 or newer).
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

from jsonschema import Draft202012Validator

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.join(HERE, "..", "docs", "session-protocol.schema.json")


def call(url, method, path, body=None):
    """(status, parsed JSON body or None) of one request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    if not raw.strip():
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class Checker:
    def __init__(self, schema):
        self.schema = schema
        self.failures = 0

    def fits(self, what, message, value):
        """Whether `value` is a valid `message`; says so either way."""
        root = dict(self.schema)
        root["$ref"] = f"#/messages/{message}"
        errors = sorted(Draft202012Validator(root).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            self.failures += 1
            for e in errors:
                where = "/".join(str(p) for p in e.path) or "(the answer)"
                print(f"FAIL {what}: {message}: {where}: {e.message}")
            return False
        print(f"ok   {what}: a valid {message}")
        return True

    def status(self, what, got, wanted):
        if got in wanted:
            return True
        self.failures += 1
        print(f"FAIL {what}: status {got}, expected {' or '.join(map(str, wanted))}")
        return False


def error_message(body):
    """The message of an error body: {"error": {"message"}} or {"message"}."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the server, e.g. http://127.0.0.1:8090")
    parser.add_argument("--env", help="the environment to open (default: the first listed)")
    parser.add_argument("--split", help="the split (default: the environment's first)")
    parser.add_argument("--task", type=int, default=0)
    parser.add_argument("--schema", default=DEFAULT_SCHEMA, help="the protocol's JSON schema")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    with open(args.schema) as f:
        check = Checker(json.load(f))
    try:
        status, listed = call(url, "GET", "/envs")
    except OSError as e:
        print(f"cannot reach {url}: {e}", file=sys.stderr)
        return 2
    if not (check.status("GET /envs", status, [200]) and check.fits("GET /envs", "EnvList", listed)):
        return 1
    envs = listed["envs"]
    env = next((e for e in envs if e["name"] == args.env), None) if args.env else (envs[0] if envs else None)
    if env is None:
        print(f"FAIL GET /envs: no environment {args.env or ''} listed")
        return 1
    split = args.split or env["splits"][0][0]
    request = {"env": env["name"], "split": split, "task": args.task, "seed": 0, "options": {}}
    check.fits("the request", "CreateRequest", request)
    status, created = call(url, "POST", "/sessions", request)
    if not (check.status("POST /sessions", status, [200, 201]) and check.fits("POST /sessions", "Created", created)):
        return 1
    sid = created["id"]
    status, admissible = call(url, "GET", f"/sessions/{sid}/admissible")
    if check.status("GET admissible", status, [200]):
        check.fits("GET admissible", "AdmissibleAnswer", admissible)
    status, expert = call(url, "GET", f"/sessions/{sid}/expert")
    if check.status("GET expert", status, [200]):
        check.fits("GET expert", "ExpertAnswer", expert)
    actions = (admissible or {}).get("actions") or created.get("admissible") or []
    action = (expert or {}).get("action") or (actions[0] if actions else "look")
    status, step = call(url, "POST", f"/sessions/{sid}/step", {"action": action})
    if check.status(f"POST step {action!r}", status, [200]):
        check.fits(f"POST step {action!r}", "StepAnswer", step)
    status, _ = call(url, "DELETE", f"/sessions/{sid}")
    check.status("DELETE the session", status, [200, 204])
    status, _ = call(url, "GET", f"/sessions/{sid}/expert")
    check.status("a closed session", status, [404])
    bad = dict(request, split="no-such-split")
    status, refused = call(url, "POST", "/sessions", bad)
    if check.status("POST /sessions with an unknown split", status, range(400, 500)):
        if error_message(refused) is None:
            check.failures += 1
            print(f"FAIL a refusal: the body has no message ({refused!r})")
        else:
            print("ok   a refusal: a JSON error body with a message")
    print(f"{check.failures} misfits" if check.failures else "the server speaks the session protocol")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
