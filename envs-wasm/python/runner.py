"""The harness inside leafe's Python sandbox component (world `code-runner`).

componentize-py runs this module once at build time and snapshots the
interpreter, so every sandboxed run starts from an already-initialised
CPython with the modules below imported: there is no file system at run
time, and a module that is not imported here is not available.

`run` behaves like `python3 program.py`: the program reads stdin and writes
stdout/stderr (WASI streams the host captures); it returns the exit status,
0 or `sys.exit(n)`'s n, and raises `Err(1)` after an uncaught exception has
printed its traceback to stderr.
"""

import builtins
import importlib
import linecache
import sys
import traceback

import wit_world
from componentize_py_types import Err

PROGRAM = "program.py"

# The standard library a generated program may use. Each is imported now so
# that it is part of the pre-initialised image; one that does not exist in
# this CPython build is skipped.
PRELOADED = """
    abc argparse array ast base64 binascii bisect calendar cmath codecs collections
    collections.abc colorsys contextlib copy csv dataclasses datetime decimal difflib
    enum errno fnmatch fractions functools gc graphlib hashlib heapq hmac html io
    itertools json keyword locale math numbers operator os pprint queue random re
    reprlib secrets shlex statistics string struct textwrap threading time timeit
    traceback types typing unicodedata uuid warnings weakref zlib
""".split()

for _name in PRELOADED:
    try:
        importlib.import_module(_name)
    except Exception:
        pass


def _exit_status(exc):
    """The status CPython's own main() turns a SystemExit into."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return max(-(2**31), min(code, 2**31 - 1))
    print(code, file=sys.stderr)
    return 1


class WitWorld(wit_world.WitWorld):
    def run(self, source: str) -> int:
        sys.argv = [PROGRAM]
        lines = source.splitlines(True)
        linecache.cache[PROGRAM] = (len(source), None, lines, PROGRAM)
        scope = {"__name__": "__main__", "__file__": PROGRAM, "__builtins__": builtins}
        status, raised = 0, False
        try:
            exec(compile(source, PROGRAM, "exec"), scope)
        except SystemExit as exc:
            status = _exit_status(exc)
        except BaseException as exc:
            # Leave this harness's own frame out of the traceback.
            tb = exc.__traceback__.tb_next if exc.__traceback__ else None
            try:
                traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
            except BaseException:
                pass
            status, raised = 1, True
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        if raised:
            raise Err(status)
        return status
