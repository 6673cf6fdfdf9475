"""The sandbox from Python: the CLI's verdicts, MBPP, threads, bad arguments."""

import json
import subprocess
import threading
import time

import pytest

import leafe

WALL_MS = 2000
MEMORY_MB = 128

# Programs that try to hang, exhaust, escape or fool the host, each with what it must get.
ADVERSARIAL = {
    "busy loop": ("while True:\n    pass\n", "time-limit"),
    "sleep": ("import time\ntime.sleep(60)\nprint('woke')\n", None),
    "memory bomb": ("x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n", "memory-limit"),
    "output flood": ("while True:\n    print('y' * 1000)\n", "output-limit"),
    "deep recursion": ("import sys\nsys.setrecursionlimit(10**9)\ndef f(n):\n    return f(n + 1)\nf(0)\n", None),
    "read a host file": ("print(open('/etc/passwd').read())\n", "runtime-error"),
    "list the root": ("import os\nprint(os.listdir('/'))\n", None),
    "network": ("import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)\n", "runtime-error"),
    "subprocess": ("import subprocess\nsubprocess.run(['ls'])\n", "runtime-error"),
    "os._exit": ("import os\nprint('bye')\nos._exit(0)\n", "ok"),
    "sys.exit(3)": ("import sys\nsys.exit(3)\n", "ok"),
    "exception": ("raise ValueError('no')\n", "runtime-error"),
    "stdin echo": ("import sys\nprint(sys.stdin.read()[::-1])\n", "ok"),
    "environment": ("import os\nprint(sorted(os.environ))\n", "ok"),
    "ctypes": ("import ctypes\nprint(ctypes.CDLL(None))\n", "runtime-error"),
    "threads": ("import threading\nt = threading.Thread(target=print)\nt.start()\n", "runtime-error"),
    "huge int": ("print(len(str(7 ** 400000)))\n", None),
}


def cli_exec(leafe_host, program, stdin, tmp_path):
    src = tmp_path / "program.py"
    src.write_text(program)
    args = [leafe_host, "exec", str(src), "--json", "--wall-ms", str(WALL_MS), "--memory-mb", str(MEMORY_MB)]
    if stdin:
        (tmp_path / "stdin.txt").write_text(stdin)
        args += ["--stdin", str(tmp_path / "stdin.txt")]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_programs_get_the_same_verdict_as_leafe_host_exec(name, leafe_host, tmp_path):
    program, expected = ADVERSARIAL[name]
    stdin = "abc" if name == "stdin echo" else None
    ours = leafe.run_python(program, stdin, wall_ms=WALL_MS, memory_mb=MEMORY_MB)
    cli = cli_exec(leafe_host, program, stdin, tmp_path)
    assert ours.verdict == cli["verdict"], (ours, cli)
    if expected is not None:
        assert ours.verdict == expected, ours
    assert ours.exit_code == cli["exit_code"]
    if ours.verdict not in ("time-limit", "output-limit"):
        assert ours.stdout == cli["stdout"]
        # Fuel is deterministic: the same program uses the same, in any process.
        assert ours.fuel_used == cli.get("fuel_used")
    assert ours.to_dict().keys() == cli.keys() | {"fuel_used"}
    # The same interpreter build in the package as in the CLI.
    assert ours.sandbox_sha256 == cli["sandbox_sha256"]


def test_run_python_results():
    r = leafe.run_python("import sys\nprint(sys.stdin.read().upper())", "hi")
    assert r.ok and r.verdict == "ok" and r.exit_code == 0 and r.stdout == "HI\n" and r.stderr == ""
    assert r.fuel_used > 0 and r.wall_us > 0 and r.wall_ms == r.wall_us / 1000
    r = leafe.run_python("import sys\nsys.exit(4)")
    assert r.verdict == "ok" and r.exit_code == 4 and not r.ok
    r = leafe.run_python("x = 1 / 0")
    assert r.verdict == "runtime-error" and "ZeroDivisionError" in r.stderr
    r = leafe.run_python("while True: pass", fuel=10_000_000)
    assert r.verdict == "time-limit" and r.fuel_used == 10_000_000
    r = leafe.run_python("print('x' * 5000)", output_kb=1)
    assert r.verdict == "output-limit"


def test_bad_limits_are_value_errors():
    for kwargs in ({"wall_ms": 0}, {"fuel": -1}, {"memory_mb": 100_000}, {"output_kb": 0}):
        with pytest.raises(ValueError):
            leafe.run_python("pass", **kwargs)
    with pytest.raises(TypeError):
        leafe.run_python(b"print(1)")
    with pytest.raises(TypeError):
        leafe.run_python("pass", wall_ms=1.5)
    with pytest.raises(ValueError, match="no tests"):
        leafe.run_tests("pass", [])
    with pytest.raises(ValueError, match="pair"):
        leafe.run_tests("pass", [("a", "b", "c")])
    with pytest.raises(ValueError, match="compare"):
        leafe.run_tests("pass", ["assert True"], compare="loose")
    with pytest.raises(ValueError, match="no split"):
        leafe.mbpp("dev")


def test_mbpp_test_split_reference_solutions_pass_and_wrong_ones_fail():
    problems = leafe.mbpp("test")
    assert len(problems) == 500
    failed = [
        p["task_id"]
        for p in problems
        # MBPP 123 computes for ~10 s: correctness here, not speed, so the CLI's 60 s.
        if not leafe.run_tests(
            p["code"], p["test_list"], setup=p["test_setup_code"], fuel=200_000_000_000, wall_ms=60_000
        ).all_passed
    ]
    assert failed == []
    # Each problem given the next problem's solution (the wrong function): every one fails.
    passed_wrong = [
        p["task_id"]
        for p, other in zip(problems, problems[1:] + problems[:1])
        if leafe.run_tests(other["code"], p["test_list"], setup=p["test_setup_code"]).passed > 0
    ]
    assert passed_wrong == []


def test_programs_that_fool_a_naive_judge_fail():
    tests = ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]
    early_exit = "import os\ndef add(a, b):\n    os._exit(0)\n"
    rigged = (
        "class Yes:\n    def __eq__(self, other):\n        return True\n"
        "def add(a, b):\n    return Yes()\n"
    )
    for cheat in (early_exit, rigged):
        assert leafe.run_tests(cheat, tests).passed == 0
        # The plain assert semantics can be fooled: which is why it is not the default.
        assert leafe.run_tests(cheat, tests, compare="python").passed == 2
    assert leafe.run_tests("def add(a, b):\n    return a + b\n", tests).all_passed


def test_io_tests_and_assert_files():
    doubler = "print(int(input()) * 2)"
    report = leafe.run_tests(doubler, [("2\n", "4\n"), {"input": "5", "output": "10"}, ("1", "3")])
    assert (report.passed, report.total) == (2, 3)
    assert [t.verdict for t in report.tests] == ["pass", "pass", "wrong-answer"]
    assert "expected" in report.tests[2].detail
    text = "import math\nassert f(4) == 2.0\nassert f(9) == 3.0\n"
    assert leafe.run_tests("def f(x):\n    return math.sqrt(x)\n", text).all_passed


def test_threads_run_programs_in_parallel_without_holding_the_gil():
    # While a sandboxed program spins for half a second, Python keeps running.
    done = []
    t = threading.Thread(target=lambda: done.append(leafe.run_python("while True: pass", wall_ms=500)))
    t.start()
    counted = 0
    start = time.monotonic()
    while t.is_alive():
        counted += 1
    t.join()
    assert done[0].verdict == "time-limit" and time.monotonic() - start >= 0.4
    assert counted > 10_000
    # Many threads at once: every result is its own.
    results = {}

    def work(i):
        results[i] = leafe.run_python(f"print({i} * {i})")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: r.stdout for i, r in results.items()} == {i: f"{i * i}\n" for i in range(16)}


def test_the_sandbox_build_is_the_one_the_cli_judges_with(leafe_host, tmp_path):
    assert len(leafe.SANDBOX_SHA256) == 64 and int(leafe.SANDBOX_SHA256, 16) >= 0
    out = tmp_path / "eval"
    subprocess.run(
        [leafe_host, "eval", "--env", "mbpp", "--tasks", "1", "--policy", "reference", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sandbox_sha256"] == leafe.SANDBOX_SHA256
