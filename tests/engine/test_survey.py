"""The survey: before a run, each planned key placed by `key_state` and counted per job."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from runfolder import rec, write_run
from runs import count_walks, write_spec

from batchrun.engine.choices import RunChoices
from batchrun.engine.survey import survey
from batchrun.engine.work import Action
from batchrun.manifest.records import FileRecord, Record, Status
from batchrun.manifest.table import TableStates, load_index
from batchrun.planner.expand import in_shard, iter_plan
from batchrun.planner.lock import Lock, Pin
from batchrun.planner.plancache import PLAN_CACHE, PlanRecorder
from batchrun.spec.load import DEFAULT_FILES, Spec, load_spec

V1, V2 = "1" * 64, "2" * 64
PNG = b"png bytes"


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    path = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - id: img
            model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: [0, 1, 2, 3, 4, 5]}
          - id: chat
            model: meta/llama-chat
            input: {prompt: "q${i}"}
            matrix: {i: [0, 1]}
        """,
    )
    return load_spec(path)


def record(
    key: str, status: Status, *, job: str = "img", sha: str = "", version: str = V1
) -> Record:
    """A record of `key` whose file (if it succeeded) is `a.png`, said to be named by the
    `files` template the spec has: it stays where it is."""
    sha = sha or hashlib.sha256(PNG).hexdigest()
    files = (FileRecord(f"https://files.example/{key}.png", "a.png", sha, len(PNG)),)
    return rec(
        key,
        status,
        job,
        prediction_id=f"p{key[:8]}" if status != Status.SUBMITTING else None,
        files=files if status == Status.SUCCEEDED else (),
        version=version,
        files_template=DEFAULT_FILES,
    )


def table(run_dir: Path, *records: Record) -> TableStates:
    """The keys of a run folder holding `records`, as a run reads them (its table)."""
    write_run(run_dir, records)
    states = load_index(run_dir).states
    assert isinstance(states, TableStates)
    return states


def keys(spec: Spec, job: str) -> list[str]:
    return [planned.key for planned in iter_plan(spec) if planned.job == job]


def test_each_key_is_counted_once_by_what_it_needs(spec: Spec, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    img, chat = keys(spec, "img"), keys(spec, "chat")
    states = table(
        tmp_path,
        record(img[0], Status.SUCCEEDED),  # done
        record(img[1], Status.SUCCEEDED, sha="ff" * 32),  # changed on disk: download
        record(img[2], Status.FAILED),  # failed before, not retried
        record(img[3], Status.SUCCEEDED, version=V2),  # stale against the lock below
        record(img[4], Status.PROCESSING),  # poll
        record(chat[0], Status.SUCCEEDED, job="chat", version=V2),  # not pinned: never stale
    )
    lock = Lock(tmp_path / "spec.yaml.lock", {"acme/painter": Pin("acme/painter", V1, None)})
    found = survey(spec, states, tmp_path, RunChoices(), lock)
    assert (found.planned, found.done, found.failed_before, found.stale_kept) == (8, 2, 1, 1)
    assert found.work == {"img": 3, "chat": 1}  # img: download, poll, new; chat: new
    assert found.quota == {"img": 6, "chat": 2}
    assert found.broken == {img[1]}
    assert found.pinned == {"img": V1, "chat": None}

    actions = {
        key: found.action(planned, states.get(key), RunChoices(), tmp_path)
        for planned in iter_plan(spec)
        if (key := planned.key) in states or key == img[5]
    }
    assert actions == {
        img[0]: None,
        img[1]: Action.DOWNLOAD,
        img[2]: None,
        img[3]: None,
        img[4]: Action.POLL,
        img[5]: Action.CREATE,
        chat[0]: None,
    }
    # The producers ask again without reading files: what the survey found stands.
    (tmp_path / "a.png").unlink()
    assert found.action(next(iter_plan(spec)), states[img[0]], RunChoices(), tmp_path) is None

    again = survey(spec, states, tmp_path, RunChoices(retry_failed=True, rerun_stale=True), lock)
    assert (again.done, again.failed_before, again.stale_kept) == (0, 0, 0)  # a.png is gone now
    assert again.work == {"img": 6, "chat": 2}


def test_limit_and_shard_bound_the_keys_counted(spec: Spec, tmp_path: Path) -> None:
    empty = table(tmp_path)
    limited = survey(spec, empty, tmp_path, RunChoices(limit=7))
    assert (limited.planned, limited.quota) == (7, {"img": 6, "chat": 1})
    sharded = survey(spec, empty, tmp_path, RunChoices(shard=(1, 2)))
    in_first = [p.key for p in iter_plan(spec) if in_shard(p.key, (1, 2))]
    assert sharded.planned == len(in_first) == sharded.total_work


def test_without_downloads_no_file_is_read(spec: Spec, tmp_path: Path) -> None:
    img = keys(spec, "img")
    states = table(tmp_path, record(img[0], Status.SUCCEEDED))  # its file does not exist
    found = survey(spec, states, tmp_path, RunChoices(download=False))
    assert found.broken == set()
    assert found.done == 1


def test_the_plan_kept_in_the_run_folder_counts_as_its_walk(
    spec: Spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the plan's keys kept in the run folder (planner/plancache.py, as `status` writes
    them), the survey counts the same without walking the plan; a sample still walks it."""
    (tmp_path / "a.png").write_bytes(PNG)
    img, chat = keys(spec, "img"), keys(spec, "chat")
    states = table(
        tmp_path,
        record(img[0], Status.SUCCEEDED),
        record(img[1], Status.SUCCEEDED, sha="ff" * 32),
        record(img[2], Status.FAILED),
        record(chat[1], Status.PROCESSING, job="chat"),
    )
    scopes = [
        RunChoices(),
        RunChoices(limit=3),
        RunChoices(shard=(2, 2)),
        RunChoices(retry_failed=True),
        RunChoices(sample=4),
    ]
    walked = [survey(spec, states, tmp_path, scope) for scope in scopes]
    recorder = PlanRecorder(spec)
    for planned in iter_plan(spec):
        recorder.add(planned.key, planned.job)
    recorder.save(tmp_path)
    assert (tmp_path / PLAN_CACHE).exists()
    walks = count_walks(monkeypatch)
    for scope, before in zip(scopes, walked, strict=True):
        del walks[:]
        found = survey(spec, states, tmp_path, scope)
        assert found == before, scope
        assert bool(walks) == (scope.sample is not None), scope
