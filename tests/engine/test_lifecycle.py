"""The lifecycle of one prediction as a state machine: which records it writes, in which order,
for each path through create, poll and download. HTTP is faked with httpx.MockTransport."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from runs import write_spec

from batchrun.api.client import Client
from batchrun.engine.claims import PathClaims
from batchrun.engine.collector import FINAL, PROGRESS, open_journal
from batchrun.engine.lifecycle import DATA_REMOVED, Lifecycle
from batchrun.engine.polling import Poller, PollSchedule
from batchrun.engine.reconcile import Reconciler
from batchrun.engine.timing import ROUND_TRIP
from batchrun.engine.work import Action, Settings, Work
from batchrun.manifest.records import FileRecord, Record, Status
from batchrun.planner.expand import PlannedPrediction, iter_plan
from batchrun.planner.naming import JobNamers, NamingError
from batchrun.spec.load import load_spec

pytestmark = pytest.mark.anyio
BASE = "https://api.test"
PNG = b"\x89PNG\r\n\x1a\n one small picture"
DATA_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()
Handler = Callable[[httpx.Request], httpx.Response]


def prediction(status: str, **fields: Any) -> dict[str, Any]:
    done = status in ("succeeded", "failed", "canceled", "aborted")
    return {
        "id": "p1",
        "status": status,
        "version": "v" * 64,
        "input": {},
        "output": None,
        "error": None,
        "logs": "",
        "metrics": {"predict_time": 0.5} if done else {},
        "created_at": "2026-12-01T10:00:00.000Z",
        "started_at": "2026-12-01T10:00:00.100Z" if status != "starting" else None,
        "completed_at": "2026-12-01T10:00:00.600Z" if done else None,
        "urls": {},
        **fields,
    }


def api(created: dict[str, Any] | httpx.Response, *polls: dict[str, Any]) -> Handler:
    """A fake API: the create answers `created`, each poll the next of `polls`."""
    answers = list(polls)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            if isinstance(created, httpx.Response):
                return created
            return httpx.Response(201, json=created)
        if request.url.path == "/v1/predictions/p1" and answers:
            return httpx.Response(200, json=answers.pop(0))
        return httpx.Response(404, json={"detail": "not found", "status": 404})

    return handle


def planned_one(tmp_path: Path) -> PlannedPrediction:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "a fox"}
        """,
    )
    return next(iter(iter_plan(load_spec(spec))))


async def process(
    tmp_path: Path,
    handler: Handler,
    action: Action = Action.CREATE,
    previous: Record | None = None,
    *,
    writing_takes: float = 0.0,
    events: list[str] | None = None,
    schedule: PollSchedule | None = None,
) -> list[tuple[str, int, Record]]:
    """Run one key's lifecycle; every record it wrote: (status, kind, record).

    `writing_takes` is how long the fake collector takes over each line (a slow disk, a busy
    event loop); `events` gets "wrote STATUS" as each line is done, beside what the handler logs.
    """
    planned = planned_one(tmp_path)
    written: list[tuple[str, int, Record]] = []
    journal, receive = open_journal()

    async def collect() -> None:
        async with receive:
            async for record, kind, flushed in receive:
                if writing_takes:
                    await anyio.sleep(writing_takes)
                if events is not None:
                    events.append(f"wrote {record.status} {record.prediction_id}")
                written.append((str(record.status), kind, record))
                if flushed is not None:
                    flushed.set()

    async with Client(BASE, "r8_test", transport=httpx.MockTransport(handler)) as client:
        lifecycle = Lifecycle(
            client,
            journal,
            JobNamers.of_spec(load_spec(tmp_path / "spec.yaml")),
            Settings(run_dir=tmp_path / "run", wait=None, download=True, max_file_bytes=None),
            Reconciler(client, list),
        )
        lifecycle.schedule = schedule or PollSchedule(first=0.001, floor=0.001, cap=0.001)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(collect)
            await lifecycle.process(Work(planned, action, previous))
            journal.close()
    return written


async def test_a_create_that_succeeds_at_once_is_recorded_then_its_files(tmp_path: Path) -> None:
    written = await process(tmp_path, api(prediction("succeeded", output=[DATA_URI])))
    assert [(status, kind) for status, kind, _ in written] == [
        ("submitting", PROGRESS),  # flushed before the create is sent
        ("succeeded", PROGRESS),  # files listed as missing until they are in place
        ("succeeded", FINAL),
    ]
    submitting, noted, final = (record for _, _, record in written)
    assert submitting.attempts == 1
    assert submitting.prediction_id is None
    assert noted.missing == (DATA_URI,)
    assert final.missing == ()
    assert len(final.files) == 1
    assert (tmp_path / "run" / final.files[0].path).read_bytes() == PNG
    assert final.metrics == {"predict_time": 0.5}


async def test_each_new_status_while_polling_is_recorded_once(tmp_path: Path) -> None:
    handler = api(
        prediction("starting"),
        prediction("starting"),
        prediction("processing"),
        prediction("processing"),
        prediction("failed", error="out of memory"),
    )
    written = await process(tmp_path, handler)
    assert [(status, kind) for status, kind, _ in written] == [
        ("submitting", PROGRESS),
        ("starting", PROGRESS),
        ("processing", PROGRESS),
        ("failed", FINAL),
    ]
    assert written[-1][2].error == "out of memory"
    assert written[-1][2].prediction_id == "p1"


async def test_the_id_is_in_the_journal_before_anything_else_happens_to_it(
    tmp_path: Path,
) -> None:
    # A collector that takes its time shows what the lifecycle does before the id's line is
    # written: a kill -9 in that gap would leave a prediction that was polled (or downloaded)
    # but that the manifest knows only as `submitting`.
    events: list[str] = []
    answers = api(prediction("starting"), prediction("succeeded", output="text"))

    def logged(request: httpx.Request) -> httpx.Response:
        events.append(f"{request.method} {request.url.path}")
        return answers(request)

    await process(tmp_path, logged, writing_takes=0.05, events=events)
    assert events[:4] == [
        "wrote submitting None",
        "POST /v1/models/acme/painter/predictions",
        "wrote starting p1",
        "GET /v1/predictions/p1",
    ]


class AgesSeen(PollSchedule):
    """A schedule that notes how old each prediction was said to be when its polling began."""

    def __init__(self) -> None:
        super().__init__(first=0.001, floor=0.001, cap=0.001)
        self.ages: list[float] = []

    @contextlib.contextmanager
    def poller(self, job: str, elapsed: float) -> Iterator[Poller]:
        self.ages.append(elapsed)
        with super().poller(job, elapsed) as poller:
            yield poller


@pytest.mark.parametrize("held", [0.0, ROUND_TRIP + 0.3], ids=["at once", "held"])
async def test_polling_counts_a_predictions_age_from_its_create(
    tmp_path: Path, held: float
) -> None:
    # The looks are planned on run times counted from each prediction's creation: the time
    # its id takes to be written down is part of its age, and so is a create the API held
    # (`Prefer: wait`), less a round trip; an answer within a round trip is taken as at once.
    answers = api(prediction("starting"), prediction("succeeded", output="text"))

    def holding(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            time.sleep(held)  # the fake API's own thread of time: the event loop's clock moves
        return answers(request)

    schedule = AgesSeen()
    await process(tmp_path, holding, writing_takes=0.1, schedule=schedule)
    (age,) = schedule.ages
    expected = max(0.0, held - ROUND_TRIP) + 0.1
    assert expected <= age < expected + 0.25


async def test_a_refused_create_is_an_error_record_not_an_exception(tmp_path: Path) -> None:
    refused = httpx.Response(
        422,
        json={"title": "Input validation failed", "status": 422, "detail": "prompt: required"},
    )
    written = await process(tmp_path, api(refused))
    assert [(status, kind) for status, kind, _ in written] == [
        ("submitting", PROGRESS),
        ("error", FINAL),
    ]
    assert written[-1][2].completed_at is not None
    assert written[-1][2].error


async def test_an_unknown_status_reads_as_still_running(tmp_path: Path) -> None:
    handler = api(prediction("queued-somewhere-new"), prediction("succeeded", output="text"))
    written = await process(tmp_path, handler)
    assert [status for status, _, _ in written] == ["submitting", "processing", "succeeded"]
    assert written[-1][2].output == "text"


async def test_a_success_whose_data_was_removed_is_a_failure(tmp_path: Path) -> None:
    written = await process(tmp_path, api(prediction("succeeded", data_removed=True)))
    assert [(status, kind) for status, kind, _ in written][-1] == ("failed", FINAL)
    assert written[-1][2].error == DATA_REMOVED


async def test_poll_picks_up_a_prediction_by_its_id_without_creating(tmp_path: Path) -> None:
    previous = Record.planned(planned_one(tmp_path), Status.PROCESSING).replace(
        prediction_id="p1", attempts=1
    )

    def no_create(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET", "a key with an id is never created again"
        return api(prediction("succeeded", output="done"), prediction("succeeded", output="done"))(
            request
        )

    written = await process(tmp_path, no_create, Action.POLL, previous)
    assert [(status, kind) for status, kind, _ in written] == [("succeeded", FINAL)]
    assert written[-1][2].attempts == 1


async def test_download_fetches_only_what_is_not_in_place(tmp_path: Path) -> None:
    planned = planned_one(tmp_path)
    previous = Record.planned(planned, Status.SUCCEEDED).replace(
        prediction_id="p1", output=[DATA_URI], missing=(DATA_URI,)
    )

    def nothing_sent(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"nothing is sent to download a data URI: {request.url}")

    written = await process(tmp_path, nothing_sent, Action.DOWNLOAD, previous)
    assert [(status, kind) for status, kind, _ in written] == [("succeeded", FINAL)]
    (file,) = written[-1][2].files
    assert isinstance(file, FileRecord)
    assert (tmp_path / "run" / file.path).read_bytes() == PNG
    assert written[-1][2].missing == ()


def test_records_round_trip_through_json(tmp_path: Path) -> None:
    # What the lifecycle writes is what the manifest reads back.
    record = Record.planned(planned_one(tmp_path)).replace(status=Status.ERROR, error="boom")
    assert Record.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_claims_of_a_template_naming_the_key_are_the_keys_own_until_it_is_done() -> None:
    claims = PathClaims()
    claims.claim("k1-0.png", "k1", 0, keyed=True)
    with pytest.raises(NamingError, match="outputs 0 and 1 of k1"):
        claims.claim("k1-0.png", "k1", 1, keyed=True)
    claims.release("k1")
    claims.claim("k1-0.png", "k1", 1, keyed=True)  # forgotten once the key was done
    # Without ${key}, a path stays taken for the whole run, whoever finished.
    claims.claim("same.png", "k1", 0)
    claims.release("k1")
    with pytest.raises(NamingError, match="keys k1 and k2"):
        claims.claim("same.png", "k2", 0)
