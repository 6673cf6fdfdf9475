"""Process-wide settings, fixed once leafe starts."""

from . import _leafe


def configure(*, max_instances: int = 256) -> None:
    """Set how many wasm instances this process may hold at once (1 to 100,000).

    Every live environment (a :class:`leafe.LeafeEnv` after ``reset``) and every
    program running in the sandbox holds one; the engine reserves their slots
    (address space, not memory) when leafe starts. Call this before making an
    environment or running a program; afterwards it raises ``RuntimeError``.

    >>> leafe.configure(max_instances=2048)   # e.g. for a vector of 1,000 environments
    """
    if isinstance(max_instances, bool) or not isinstance(max_instances, int):
        raise TypeError(f"max_instances must be an int, got {type(max_instances).__name__}")
    _leafe.configure(max_instances)
