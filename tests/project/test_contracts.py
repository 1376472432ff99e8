"""What the layers promise beyond import-linter's contracts: who prints, and the public API."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import batchrun
from batchrun import errors

PACKAGE = Path(batchrun.__file__).resolve().parent
# The command line, its commands and their frontend (progress, the diff's views, where output goes)
# write to a terminal; the library returns data or raises.
MAY_PRINT = ("cli.py", "commands/", "frontend/")


def _prints(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("print", "input", "breakpoint"):
                found.append(f"{node.lineno}: {node.func.id}()")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
            and node.attr in ("stdout", "stderr", "__stdout__", "__stderr__")
        ):
            found.append(f"{node.lineno}: sys.{node.attr}")
    return found


def test_only_the_command_line_prints() -> None:
    offenders = [
        f"{relative}:{where}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not (relative := path.relative_to(PACKAGE).as_posix()).startswith(MAY_PRINT)
        for where in _prints(path)
    ]
    assert offenders == []


def test_the_check_sees_a_print(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("import sys\n\ndef f():\n    print('x')\n    sys.stderr.write('y')\n")
    assert _prints(planted) == ["4: print()", "5: sys.stderr"]


def test_the_public_api_is_declared() -> None:
    assert sorted(batchrun.__all__) == batchrun.__all__
    for name in batchrun.__all__:
        assert hasattr(batchrun, name), name
    raised = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.BatchrunError)
    }
    assert raised <= set(batchrun.__all__)
    assert {"plan", "run", "arun", "results"} <= set(batchrun.__all__)
