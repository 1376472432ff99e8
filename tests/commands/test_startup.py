"""Commands that send nothing never load the HTTP stack: it is most of their start-up time.

The time itself is measured by bench/startup.py (issue 22); this checks what it depends on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from runs import TOKEN, RunCli

from batchrun.frontend.options import ARGS_OF
from batchrun.sandbox import Sandbox

SPEC = """\
batchrun: 1
jobs:
  - model: acme/painter
    input: {prompt: "a ${x}"}
    matrix: {x: [fox, cat]}
"""
HTTP_STACK = ("httpx", "httpcore", "h11", "rich", "anyio")
PROBE = f"""\
import sys
from batchrun.cli import main
code = main(sys.argv[1:])
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & {set(HTTP_STACK)!r})
print("loaded:", ",".join(loaded), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(
    "command",
    [["validate"], ["validate", "--json"], ["plan"], ["plan", "--json"]],
    ids=" ".join,
)
def test_offline_commands_do_not_import_the_http_stack(tmp_path: Path, command: list[str]) -> None:
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *command, str(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "loaded: "


# What an offline `validate` has no use for, each a part of its start-up time once (issue 22):
# the manifest layer, the run options, the other commands' flags and records (and the sandbox's
# help), importlib.resources
# (the schema is read through pkgutil), `secrets` (safefs names temporaries itself), and
# `dataclasses` with the `inspect` it imports (the spec layer's records are NamedTuples: see
# batchrun/spec/__init__.py).
NOT_FOR_VALIDATE = (
    "batchrun.manifest",
    "batchrun.engine.choices",
    "batchrun.commands.completion",
    "batchrun.sandbox",
    *(f"batchrun.frontend.options.{name}" for name in ARGS_OF if name != "validate"),
    "importlib.resources",
    "secrets",
    "dataclasses",
    "inspect",
)
MODULES_PROBE = """\
import sys
from batchrun.cli import main
code = main(sys.argv[1:])
print("modules:", ",".join(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def test_validate_imports_only_what_it_needs(tmp_path: Path) -> None:
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", MODULES_PROBE, "validate", str(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules = done.stderr.splitlines()[-1].removeprefix("modules: ").split(",")
    loaded = [m for m in modules if any(m == n or m.startswith(n + ".") for n in NOT_FOR_VALIDATE)]
    assert loaded == []


def test_validate_of_a_valid_spec_does_not_import_jsonschema(tmp_path: Path) -> None:
    # spec/conforms.py decides a valid spec alone; jsonschema words the errors of the others.
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(SPEC.replace("batchrun: 1", "batchrun: 1\nwait: 0"), encoding="utf-8")
    probe = PROBE.replace(repr(set(HTTP_STACK)), repr({"jsonschema"}))
    answers = [
        subprocess.run(
            [sys.executable, "-c", probe, "validate", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        for path in (spec, broken)
    ]
    assert [done.returncode for done in answers] == [0, 2]
    assert [done.stderr.splitlines()[-1] for done in answers] == ["loaded: ", "loaded: jsonschema"]


def test_a_run_with_nothing_to_do_does_not_import_the_http_stack(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], run_cli: RunCli
) -> None:
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    real = make_sandbox(announce=False)  # any API that is not the sandbox
    argv = ["run", str(spec), "--base-url", real.base_url]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REPLICATE_API_TOKEN", TOKEN)
        assert run_cli(*argv)[0] == 0
    probe = PROBE.replace(repr(set(HTTP_STACK)), repr({*HTTP_STACK, "tqdm"}))
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv, "--progress", "bar"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "REPLICATE_API_TOKEN": TOKEN},
    )
    assert done.returncode == 0, done.stderr
    assert "  predictions: nothing to do; 2 already done" in done.stderr.splitlines()
    # anyio runs the run's steps; httpx, its transports and its CLI's rich are not loaded, nor
    # tqdm for a bar with nothing to count.
    assert done.stderr.splitlines()[-1] == "loaded: anyio"
