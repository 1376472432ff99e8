"""The one rule that places a key: `manifest.state.key_state`, and `plan` and `run` agreeing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anyio
import pytest
from runs import TOKEN, records, run_spec, write_spec

from batchrun.api.client import Client
from batchrun.cli import main
from batchrun.engine.choices import RunChoices
from batchrun.engine.pins import resolve_pins
from batchrun.engine.survey import classify
from batchrun.engine.work import Action
from batchrun.manifest.compare import compare
from batchrun.manifest.reader import KeyState
from batchrun.manifest.records import FileRecord, Record, Status
from batchrun.manifest.state import State, key_state
from batchrun.planner.lock import write_lock
from batchrun.planner.naming import FileNamer
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

V1, V2 = "1" * 64, "2" * 64
PNG = b"\x89PNG fake bytes"


# The `files` template now (names the file of https://x/a.png `a.png`), and an older one.
NOW, BEFORE = FileNamer("${index}/a${ext}"), "old/a${ext}"


def state(
    status: str,
    *,
    files: str = "ok",
    missing: bool = False,
    version: str = V1,
    template: str | None = NOW.template,
) -> KeyState:
    checks = {
        "ok": ("0/a.png", len(PNG), hashlib.sha256(PNG).hexdigest()),
        "elsewhere": ("old/a.png", len(PNG), hashlib.sha256(PNG).hexdigest()),  # to move
        "gone": ("gone.png", 3, "00" * 32),
        "short": ("0/a.png", len(PNG) + 1, hashlib.sha256(PNG).hexdigest()),
        "changed": ("0/a.png", len(PNG), "ff" * 32),  # right size, other bytes
    }
    return KeyState(
        status=Status(status),
        job="j",
        prediction_id="p1",
        completed=None,
        files=(checks[files],),
        missing=missing,
        source=0,
        offset=0,
        length=0,
        version=version,
        files_template=template if files != "elsewhere" else BEFORE,
    )


def _full(recorded: KeyState) -> Record:
    """The full record an index entry stands for."""
    path, size, sha = recorded.files[0]
    return Record(
        key="k",
        job="j",
        target={"model": "acme/painter"},
        input={},
        vars={},
        repeat=0,
        status=recorded.status,
        version=recorded.version,
        output=["https://x/a.png"],
        files=(FileRecord("https://x/a.png", path, sha, size),),
        missing=("https://x/b.png",) if recorded.missing else (),
        files_template=recorded.files_template,
    )


def _files(folder: Path) -> None:
    for path in ("0/a.png", "old/a.png"):
        (folder / path).parent.mkdir(exist_ok=True)
        (folder / path).write_bytes(PNG)


TABLE = [
    # (record, pinned, state)
    (None, None, State.NEW),
    (None, V2, State.NEW),
    (state("submitting"), None, State.IN_FLIGHT),
    (state("starting"), None, State.IN_FLIGHT),
    (state("processing"), V2, State.IN_FLIGHT),  # not stale: it has not ended yet
    (state("failed"), None, State.FAILED),
    (state("canceled"), None, State.FAILED),
    (state("aborted"), None, State.FAILED),
    (state("error"), V2, State.FAILED),  # a failure is a failure, whatever ran it
    (state("succeeded"), None, State.DONE),
    (state("succeeded"), V1, State.DONE),
    (state("succeeded"), V2, State.STALE),
    (state("succeeded", files="gone"), V2, State.STALE),  # stale first: its files are moot
    (state("succeeded", version=None), V2, State.DONE),  # no version recorded: cannot tell
    (state("succeeded", missing=True), None, State.DOWNLOAD),
    (state("succeeded", files="gone"), None, State.DOWNLOAD),
    (state("succeeded", files="short"), None, State.DOWNLOAD),
    (state("succeeded", files="changed"), V1, State.DOWNLOAD),
    (state("succeeded", files="elsewhere"), None, State.MOVE),  # the template changed since
    (state("succeeded", files="elsewhere"), V2, State.STALE),  # stale first: re-run, not moved
    (state("succeeded", files="elsewhere", missing=True), None, State.DOWNLOAD),
    (state("succeeded", template=None), None, State.DONE),  # an older record, read: in place
    (state("succeeded", template=BEFORE), None, State.DONE),  # both templates name it so
]


@pytest.mark.parametrize(("recorded", "pinned", "expected"), TABLE)
def test_key_state_table(
    tmp_path: Path, recorded: KeyState | None, pinned: str | None, expected: State
) -> None:
    _files(tmp_path)
    read = None if recorded is None else lambda: _full(recorded)
    assert key_state(recorded, tmp_path, pinned, namer=NOW, read=read) is expected


@pytest.mark.parametrize(("recorded", "pinned", "expected"), TABLE)
def test_a_full_record_is_placed_as_its_index_entry_is(
    tmp_path: Path, recorded: KeyState | None, pinned: str | None, expected: State
) -> None:
    # `status` and `report` read full records, `plan` and `run` the index: one answer.
    _files(tmp_path)
    if recorded is None:
        return
    assert key_state(_full(recorded), tmp_path, pinned, namer=NOW) is expected


def test_only_a_record_of_another_template_is_read_back(tmp_path: Path) -> None:
    # A resume of a large manifest whose template did not change reads no full record.
    _files(tmp_path)

    def read() -> Record:
        raise AssertionError("read back")

    assert key_state(state("succeeded"), tmp_path, namer=NOW, read=read) is State.DONE
    assert key_state(state("succeeded", files="elsewhere"), tmp_path, namer=NOW) is State.DONE


def test_intact_given_is_not_read_again(tmp_path: Path) -> None:
    # The runner's producers pass what the survey found: no file is read (none exists here).
    assert key_state(state("succeeded"), tmp_path, intact=True) is State.DONE
    assert key_state(state("succeeded"), tmp_path, intact=False) is State.DOWNLOAD
    assert key_state(state("succeeded", missing=True), tmp_path, intact=True) is State.DOWNLOAD


ACTIONS = [
    # (state, status, scope, action)
    (State.NEW, None, RunChoices(), Action.CREATE),
    (State.IN_FLIGHT, "submitting", RunChoices(), Action.RECONCILE),
    (State.IN_FLIGHT, "processing", RunChoices(), Action.POLL),
    (State.FAILED, "failed", RunChoices(), None),
    (State.FAILED, "failed", RunChoices(retry_failed=True), Action.CREATE),
    (State.STALE, "succeeded", RunChoices(), None),
    (State.STALE, "succeeded", RunChoices(retry_failed=True), None),
    (State.STALE, "succeeded", RunChoices(rerun_stale=True), Action.CREATE),
    (State.DOWNLOAD, "succeeded", RunChoices(), Action.DOWNLOAD),
    (State.DOWNLOAD, "succeeded", RunChoices(download=False), None),
    (State.DONE, "succeeded", RunChoices(rerun_stale=True, retry_failed=True), None),
    (State.MOVE, "succeeded", RunChoices(), Action.MOVE),
    (State.MOVE, "succeeded", RunChoices(download=False), Action.MOVE),  # a rename is no download
]


@pytest.mark.parametrize(("where", "status", "scope", "action"), ACTIONS)
def test_what_run_does_with_each_state(
    where: State, status: str | None, scope: RunChoices, action: Action | None
) -> None:
    recorded = state(status) if status is not None else None
    assert classify(where, recorded, scope) is action


def test_a_changed_file_is_to_download_for_plan_and_run_alike(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        output: run
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: [0, 1]}
        """,
    )
    assert run_spec(spec, sandbox).ok
    image = next((tmp_path / "run").rglob("*.png"))
    good = image.read_bytes()
    image.write_bytes(bytes(len(good)))  # same size, other bytes: only the sha256 tells
    plan = compare(load_spec(spec))
    assert dict(plan.jobs[0].counts) == {State.DONE: 1, State.DOWNLOAD: 1}
    assert main(["status", str(tmp_path / "run")]) == 1
    assert "succeeded: its files were deleted or changed since it succeeded" in (
        capsys.readouterr().out
    )

    summary = run_spec(spec, sandbox)
    assert summary.ok
    assert summary.survey.done == 1
    assert summary.tally.finished == {"succeeded": 1}  # the one plan said, downloaded again
    assert image.read_bytes() == good
    assert dict(compare(load_spec(spec)).jobs[0].counts) == {State.DONE: 2}
    assert main(["status", str(tmp_path / "run")]) == 0


def _lock(spec_path: Path, sandbox: Sandbox) -> None:
    spec = load_spec(spec_path)

    async def resolve() -> None:
        async with Client(sandbox.base_url, TOKEN) as client:
            write_lock(spec, await resolve_pins(spec, client))

    anyio.run(resolve)


def test_stale_keys_are_counted_by_plan_and_rerun_only_when_asked(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        output: run
        jobs:
          - id: painter
            model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: [0, 1]}
          - id: chat
            model: meta/llama-chat
            input: {prompt: "hello"}
        """,
    )
    _lock(spec, sandbox)
    assert run_spec(spec, sandbox).ok
    old = {r.version for r in records(tmp_path / "run").values() if r.job == "painter"}
    newer = sandbox.bump_version("acme", "painter")
    _lock(spec, sandbox)  # the lock moves on: what painter made is now stale

    assert main(["plan", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "  0 new, 0 done, 0 in flight, 0 failed, 0 to download, 2 stale\n" in out
    assert out.endswith(
        "total: 3 predictions: 0 new, 1 done, 0 in flight, 0 failed, 0 to download, 2 stale\n"
        "run would: nothing: every planned prediction is done; 2 stale (run by a version other "
        "than the lock's) stay as they are unless --rerun-stale\n"
    )

    assert main(["status", str(spec)]) == 0  # stale keys are kept by choice: nothing is left
    assert (
        "stale: 2 succeeded with a version other than the one SPEC.lock now pins "
        "(run --rerun-stale predicts them again)\n"
    ) in capsys.readouterr().out
    assert main(["status", str(spec), "--json"]) == 0
    states = json.loads(capsys.readouterr().out)["states"]
    assert (states["stale"], states["done"]) == (2, 1)

    kept = run_spec(spec, sandbox)
    assert kept.ok
    assert (kept.survey.stale_kept, kept.survey.done, kept.tally.done) == (2, 1, 0)
    assert {r.version for r in records(tmp_path / "run").values() if r.job == "painter"} == old

    rerun = run_spec(spec, sandbox, rerun_stale=True)
    assert rerun.ok
    assert rerun.tally.finished == {"succeeded": 2}
    painter = [r for r in records(tmp_path / "run").values() if r.job == "painter"]
    assert [r.version for r in painter] == [newer, newer]
    assert {job.id: dict(job.counts) for job in compare(load_spec(spec)).jobs} == {
        "painter": {State.DONE: 2},
        "chat": {State.DONE: 1},
    }
