"""The README's Python example, run as written."""

import contextlib
import io

import leafe


def test_the_readme_python_example_runs_as_written(repo):
    readme = (repo / "README.md").read_text()
    section = readme[readme.index("## Python: `import leafe`") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("```", start)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    # Fuel is the same in every run of one build of the sandbox (another build of the
    # interpreter component can differ by a little: its start-up state is not reproducible).
    fuel = leafe.run_python("print(input()[::-1])", stdin="abc", wall_ms=2000).fuel_used
    assert lines[0] == f"ok 0 cba {fuel}", lines
    assert lines[1] == "3 3", lines
