"""The Python sandbox: untrusted programs run in a fresh CPython compiled to WebAssembly.

A program cannot reach files, the network or the host; it runs under a fuel
budget (deterministic), a wall-clock limit, a memory cap and an output cap.
Calls release the GIL, so threads run programs in parallel.
"""

from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence, Tuple, Union

from . import _leafe
from ._leafe import RunResult, TestReport

#: The defaults of ``leafe-host exec``: 10 s, 10 G fuel (a few seconds of pure
#: Python), 256 MiB, 64 KiB of stdout and of stderr kept.
DEFAULT_WALL_MS = 10_000
DEFAULT_FUEL = 10_000_000_000
DEFAULT_MEMORY_MB = 256
DEFAULT_OUTPUT_KB = 64

Tests = Union[str, Sequence[str], Sequence[Tuple[str, str]], Sequence[dict]]


def _int(name: str, value: object) -> int:
    """`value`, checked to be an int (the native module checks its range)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


def run_python(
    code: str,
    stdin: Optional[str] = None,
    *,
    wall_ms: int = DEFAULT_WALL_MS,
    fuel: int = DEFAULT_FUEL,
    memory_mb: int = DEFAULT_MEMORY_MB,
    output_kb: int = DEFAULT_OUTPUT_KB,
) -> RunResult:
    """Run ``code`` as ``python3 program.py`` in a fresh sandboxed interpreter.

    Args:
        code: the program's source.
        stdin: what the program reads from standard input (nothing if None).
        wall_ms: wall-clock limit in milliseconds.
        fuel: wasm fuel (about one unit an instruction); the same program always
            uses the same amount, so this limit is deterministic.
        memory_mb: the interpreter's linear memory, at most 256 MiB.
        output_kb: KiB kept of stdout, and separately of stderr; more is an
            ``output-limit`` verdict.

    Returns:
        A :class:`RunResult`: ``verdict`` (``ok``, ``runtime-error``, ``time-limit``,
        ``memory-limit``, ``output-limit``, ``sandbox-error``), ``exit_code``,
        ``stdout``, ``stderr``, ``fuel_used``, ``wall_us``, ``sandbox_sha256`` (the
        interpreter build that ran it; and ``ok``, ``wall_ms``).
        A program's failure is a verdict, never an exception.

    Raises:
        ValueError: a limit out of range.
        SandboxError: the sandbox itself cannot be set up.
    """
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    if stdin is not None and not isinstance(stdin, str):
        raise TypeError(f"stdin must be a str or None, got {type(stdin).__name__}")
    return _leafe.run_python(
        code,
        stdin or "",
        _int("wall_ms", wall_ms),
        _int("fuel", fuel),
        _int("memory_mb", memory_mb),
        _int("output_kb", output_kb),
    )


def _pairs(tests: Iterable[object]) -> list[tuple[str, str]]:
    pairs = []
    for i, t in enumerate(tests):
        if isinstance(t, dict) and set(t) >= {"input", "output"}:
            pair = (t["input"], t["output"])
        elif isinstance(t, (tuple, list)) and len(t) == 2:
            pair = (t[0], t[1])
        else:
            raise ValueError(
                f"test {i}: expected an (input, output) pair or a dict with 'input' and 'output'"
            )
        if not all(isinstance(s, str) for s in pair):
            raise ValueError(f"test {i}: input and output must be strings")
        pairs.append(pair)
    return pairs


def run_tests(
    code: str,
    tests: Tests,
    *,
    setup: str = "",
    compare: str = "plain",
    jobs: Optional[int] = None,
    wall_ms: int = DEFAULT_WALL_MS,
    fuel: int = DEFAULT_FUEL,
    memory_mb: int = DEFAULT_MEMORY_MB,
    output_kb: int = DEFAULT_OUTPUT_KB,
) -> TestReport:
    """Run ``code`` against ``tests`` in the sandbox and judge each test.

    Args:
        code: the program (e.g. a solution defining a function).
        tests: assert lines (a list of ``"assert f(1) == 2"``, or the text of a
            file whose ``assert`` lines are the tests and other lines set-up), or
            stdin/stdout pairs (a list of ``(input, output)`` tuples or of
            ``{"input": ..., "output": ...}`` dicts).
        setup: code run after ``code`` and before each assert (MBPP's
            ``test_setup_code``).
        compare: how asserts are judged. ``plain`` (default): the value of
            ``x`` in ``assert x == y`` is reported as plain built-in values and
            compared outside the program, so a program that exits early or
            returns an object with a rigged ``__eq__`` fails. ``python``: the
            assert line as it is, passing on exit status 0 (can be gamed).
        jobs: tests run in parallel (default: the machine's cores).
        wall_ms, fuel, memory_mb, output_kb: each test run's limits, as in
            :func:`run_python`.

    Returns:
        A :class:`TestReport`: ``passed``, ``total``, ``all_passed`` and ``tests``
        (a :class:`TestOutcome` each: ``test``, ``name``, ``passed``, ``verdict``,
        ``detail``, ``exit_code``, ``fuel_used``, ``wall_us``).

    Raises:
        ValueError: no tests, malformed tests or limits out of range.
        SandboxError: the sandbox itself cannot be set up.
    """
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    if jobs is None:
        jobs = os.cpu_count() or 1
    if isinstance(tests, str):
        file_setup, asserts = _leafe.parse_assert_file(tests)
        setup = f"{setup}\n{file_setup}" if setup and file_setup else setup or file_setup
        pairs = None
    else:
        tests = list(tests)
        if tests and all(isinstance(t, str) for t in tests):
            asserts, pairs = tests, None
        else:
            asserts, pairs = [], _pairs(tests)
    if not asserts and not pairs:
        raise ValueError("no tests: give assert lines or (input, output) pairs")
    return _leafe.run_tests_native(
        code,
        setup,
        list(asserts),
        pairs,
        compare,
        _int("jobs", jobs),
        _int("wall_ms", wall_ms),
        _int("fuel", fuel),
        _int("memory_mb", memory_mb),
        _int("output_kb", output_kb),
    )
