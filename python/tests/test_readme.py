"""The README's Python example, run as written."""

import contextlib
import io


def test_the_readme_python_example_runs_as_written(repo):
    readme = (repo / "README.md").read_text()
    section = readme[readme.index("## Python: `import leafe`") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("```", start)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "ok 0 cba 479670", lines
    assert lines[1] == "3 3", lines
