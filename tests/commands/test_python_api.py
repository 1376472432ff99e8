"""The Python API: batchrun.plan, run, arun, results and verify, from plain code and inside a
loop."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest
from runs import TOKEN, assert_files_intact, write_spec

import batchrun
from batchrun.errors import UsageError
from batchrun.sandbox import Sandbox

SPEC = """
batchrun: 1
jobs:
  - id: img
    model: acme/painter
    input: {prompt: "a ${animal}", seed: "${seed}"}
    matrix:
      animal: [fox, owl]
      seed: [1, 2]
"""


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    return write_spec(tmp_path, SPEC)


def test_plan_and_run_are_functions() -> None:
    assert inspect.isfunction(batchrun.plan)
    assert inspect.isfunction(batchrun.run)
    assert inspect.iscoroutinefunction(batchrun.arun)


def test_plan_run_results_in_plain_code_print_nothing(
    spec: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    planned = batchrun.plan(spec)
    assert [p["vars"] for p in planned] == [
        {"animal": "fox", "seed": 1},
        {"animal": "fox", "seed": 2},
        {"animal": "owl", "seed": 1},
        {"animal": "owl", "seed": 2},
    ]
    assert all("state" not in p for p in planned)  # no manifest yet

    summary = batchrun.run(spec, base_url=sandbox.base_url, token=TOKEN, limit=3)
    assert summary.ok
    assert summary.tally.finished == {"succeeded": 3}
    assert capsys.readouterr() == ("", "")

    assert [p["state"] for p in batchrun.plan(spec)] == ["done", "done", "done", "new"]
    rows = list(batchrun.results(spec))
    assert len(rows) == 3
    assert {row["status"] for row in rows} == {"succeeded"}
    assert {row["job"] for row in rows} == {"img"}
    for row in rows:
        assert [Path(p).is_file() for p in row["paths"]] == [True]
        assert row["vars"]["animal"] in ("fox", "owl")
    assert assert_files_intact(spec.parent / "runs" / "spec") == 3


def test_verify_proves_a_run_as_the_command_does_and_prints_nothing(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = batchrun.verify(spec)  # nothing ran yet: every planned key is not started
    assert not found.ok
    assert [p.kind for p in found.problems] == ["not_started"] * 4
    batchrun.run(spec, sandbox=True)  # into runs/spec-sandbox, as `run --sandbox`
    run_dir = spec.parent / "runs" / "spec-sandbox"
    # Made by the sandbox: a problem unless allowed, as `verify --allow-sandbox` allows it.
    assert {p.kind for p in batchrun.verify(run_dir).problems} == {"sandbox"}
    found = batchrun.verify(run_dir, allow_sandbox=True)
    assert found.ok
    assert (found.kind, found.planned, found.succeeded, found.files) == ("run", 4, 4, 4)
    assert found.to_json()["ok"] is True
    assert batchrun.verify(str(run_dir), allow_sandbox=True, quick=True).ok
    first = next(run_dir.glob("**/*.png"))
    first.write_bytes(first.read_bytes()[:-1])
    broken = batchrun.verify(run_dir, allow_sandbox=True)
    assert [(p.subject, p.kind) for p in broken.problems] == [
        (first.relative_to(run_dir).as_posix(), "file")
    ]
    assert capsys.readouterr() == ("", "")
    with pytest.raises(UsageError, match="no such run folder, spec file or dataset"):
        batchrun.verify(spec.parent / "nowhere")


def test_run_takes_the_command_lines_options(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    summary = batchrun.run(spec, sandbox=True, out=out, download=False, shard="1/1")
    assert summary.run_dir == out
    assert summary.tally.files == 0
    assert summary.tally.missing_files == 4  # recorded, not fetched (--no-download)
    assert [row["paths"] for row in batchrun.results(out)] == [[]] * 4


def test_run_without_a_token_says_how_to_give_one(spec: Path, sandbox: Sandbox) -> None:
    with pytest.raises(UsageError) as raised:
        batchrun.run(spec, base_url=sandbox.base_url)
    assert str(raised.value) == (
        "no API token: set REPLICATE_API_TOKEN in the environment "
        "(or try the built-in emulator with --sandbox)"
    )


def test_run_from_inside_a_running_event_loop(spec: Path, sandbox: Sandbox) -> None:
    async def notebook_cell() -> bool:
        # A Jupyter cell runs inside the kernel's running asyncio loop, like this coroutine;
        # a second event loop cannot start on this thread.
        summary = batchrun.run(spec, base_url=sandbox.base_url, token=TOKEN)
        return summary.ok

    assert asyncio.run(notebook_cell())
    assert len(list(batchrun.results(spec))) == 4


@pytest.mark.anyio
async def test_arun_runs_in_the_callers_loop(spec: Path, sandbox: Sandbox) -> None:
    summary = await batchrun.arun(spec, base_url=sandbox.base_url, token=TOKEN)
    assert summary.ok
    assert summary.tally.finished == {"succeeded": 4}


def test_progress_true_shows_progress_on_stderr(
    spec: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    batchrun.run(spec, base_url=sandbox.base_url, token=TOKEN, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == "batchrun: 0/4 done (0 ok, 0 failed), 0 in flight"


def test_run_takes_sample_as_the_command_line_does(spec: Path, tmp_path: Path) -> None:
    summary = batchrun.run(spec, sandbox=True, out=tmp_path / "sampled", sample=2)
    assert summary.tally.finished == {"succeeded": 2}


def test_a_misspelled_keyword_is_a_type_error_before_anything_runs(spec: Path) -> None:
    with pytest.raises(TypeError, match="concurency"):
        batchrun.run(spec, concurency=4, sandbox=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="concurency"):
        asyncio.run(batchrun.arun(spec, concurency=4, sandbox=True))  # type: ignore[call-arg]
    assert not (spec.parent / "runs").exists()
