"""leafe from Python: environments as Gymnasium envs, snapshots, and the Python sandbox.

Environments are WASI components run by wasmtime inside this module (the
built-ins ship in the package); every step runs under fuel, time and memory
limits, and the same task, seed and actions give the same observations.

>>> import leafe
>>> env = leafe.make("sokoban", split="test", task=0)
>>> obs, info = env.reset(seed=0)
>>> state = env.snapshot()          # bytes
>>> obs, reward, terminated, truncated, info = env.step("up")
>>> env.restore(state)              # back to before the step

>>> leafe.run_python("print(2 + 2)").stdout
'4\\n'
>>> leafe.run_tests("def f(x): return x + 1", ["assert f(1) == 2"]).passed
1

``leafe.SANDBOX_SHA256`` names the interpreter build programs run in: two
builds differ in fuel counts and set order, so results should record it.
"""

from ._leafe import (
    SANDBOX_SHA256,
    EnvError,
    RunResult,
    SandboxError,
    TestOutcome,
    TestReport,
    __version__,
)
from .config import configure
from .data import mbpp
from .env import LeafeEnv, Utf8Text, envs, make
from .sandbox import run_python, run_tests

__all__ = [
    "EnvError",
    "LeafeEnv",
    "RunResult",
    "SANDBOX_SHA256",
    "SandboxError",
    "TestOutcome",
    "TestReport",
    "Utf8Text",
    "__version__",
    "configure",
    "envs",
    "make",
    "mbpp",
    "run_python",
    "run_tests",
]
