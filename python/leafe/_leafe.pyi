"""Type stubs of the native module `leafe._leafe` (built from python/src by maturin)."""

from typing import Optional

__version__: str

class EnvError(Exception):
    """An environment failed: it returned an error, trapped, ran past a limit, or cannot be loaded."""

class SandboxError(Exception):
    """The Python sandbox cannot be set up (a program's own failure is a verdict, not this)."""

SANDBOX_SHA256: str

def envs() -> list[str]: ...
def configure(max_instances: int) -> None: ...
def mbpp_lines(split: str) -> list[str]: ...

class EnvSession:
    """One environment component's live instance (what `leafe.LeafeEnv` drives)."""

    def __init__(self, spec: str) -> None: ...
    @property
    def sha256(self) -> str: ...
    def info_json(self) -> str: ...
    def reset(
        self, split: str, index: int, seed: int, options: list[tuple[str, str]], expert: bool
    ) -> tuple[str, Optional[list[str]], Optional[str]]: ...
    def step(
        self, action: str, expert: bool
    ) -> tuple[str, float, bool, bool, str, Optional[list[str]], Optional[str]]: ...
    def admissible_actions(self) -> Optional[list[str]]: ...
    def expert_action(self) -> Optional[str]: ...
    def snapshot(self) -> bytes: ...
    def restore(self, snapshot: bytes) -> tuple[str, int, int, str]: ...

class RunResult:
    """How one program run ended."""

    verdict: str
    exit_code: int
    stdout: str
    stderr: str
    fuel_used: Optional[int]
    wall_us: int
    sandbox_sha256: str
    @property
    def ok(self) -> bool: ...
    @property
    def wall_ms(self) -> float: ...
    def to_dict(self) -> dict[str, object]: ...

class TestOutcome:
    """One test's outcome."""

    test: int
    name: str
    passed: bool
    verdict: str
    detail: Optional[str]
    exit_code: int
    fuel_used: Optional[int]
    wall_us: int

class TestReport:
    """A program's report on its tests."""

    passed: int
    total: int
    tests: list[TestOutcome]
    @property
    def all_passed(self) -> bool: ...

def run_python(
    code: str, stdin: str, wall_ms: int, fuel: int, memory_mb: int, output_kb: int
) -> RunResult: ...
def run_tests_native(
    code: str,
    setup: str,
    asserts: list[str],
    pairs: Optional[list[tuple[str, str]]],
    compare: str,
    jobs: int,
    wall_ms: int,
    fuel: int,
    memory_mb: int,
    output_kb: int,
) -> TestReport: ...
def parse_assert_file(text: str) -> tuple[str, list[str]]: ...
