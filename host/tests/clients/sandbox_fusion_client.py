"""Drive `leafe-host serve`'s /run_code with the official `sandbox-fusion`
client (pinned in host/tests/all/serve_clients.rs).

usage: python sandbox_fusion_client.py ENDPOINT MBPP_TEST_SPLIT.jsonl"""
import json
import sys
from concurrent.futures import ThreadPoolExecutor

from sandbox_fusion import RunCodeRequest, RunStatus, run_code, set_endpoint
from sandbox_fusion.models import CommandRunStatus

endpoint, mbpp_path = sys.argv[1], sys.argv[2]
set_endpoint(endpoint)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        sys.exit(f"FAILED: {what}")
    checks += 1


def run(code, language="python", **kw):
    return run_code(RunCodeRequest(code=code, language=language, **kw), max_attempts=1)


r = run("print('hello world')")
check(r.status == RunStatus.Success and r.run_result.stdout == "hello world\n", f"hello: {r}")
check(r.run_result.status == CommandRunStatus.Finished and r.run_result.return_code == 0, "finished")

r = run("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))", stdin="1 2 3\n")
check(r.run_result.stdout == "6\n", f"stdin: {r}")

r = run("raise ValueError('boom')")
check(r.status == RunStatus.Failed and r.run_result.return_code == 1, f"runtime error: {r}")
check("ValueError: boom" in r.run_result.stderr, "the traceback")

r = run("while True:\n    pass", run_timeout=1)
check(r.status == RunStatus.Failed and r.run_result.status == CommandRunStatus.TimeLimitExceeded, f"timeout: {r}")

r = run("print('unclosed'")
check(r.status == RunStatus.Failed and "SyntaxError" in r.run_result.stderr, f"syntax error: {r}")

r = run("int main() { return 0; }", language="cpp")
check(r.status == RunStatus.Failed and "python" in r.message, f"another language: {r}")

rows = [json.loads(line) for line in open(mbpp_path)]
check(len(rows) == 500, f"{len(rows)} MBPP test rows")


def program(code, row):
    return "\n".join([code, row.get("test_setup_code") or ""] + row["test_list"]) + "\n"


def passes(code, row):
    # Generous: task 123 computes for seconds, longer on a loaded machine.
    r = run(program(code, row), run_timeout=60)
    return r.status == RunStatus.Success


with ThreadPoolExecutor(8) as pool:
    own = list(pool.map(lambda r: passes(r["code"], r), rows))
    swapped = list(pool.map(lambda i: passes(rows[i]["code"], rows[i + 1]), range(50)))
failing = [rows[i]["task_id"] for i, ok in enumerate(own) if not ok]
check(not failing, f"MBPP reference solutions failing: {failing}")
wrongly = [rows[i]["task_id"] for i, ok in enumerate(swapped) if ok]
check(not wrongly, f"mismatched solutions passing: {wrongly}")
print(f"MBPP through /run_code: {sum(own)}/500 reference solutions pass, "
      f"{50 - sum(swapped)}/50 mismatched fail")
print(f"{checks} passed, 0 failed")
