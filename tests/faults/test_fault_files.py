"""Faults on output files: slow file hosts, links that expire mid-run, outputs the API removed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultrun import check_accounted, finish, ids_recorded, spec_for, start, wait_for
from runs import records, run_spec

from batchrun.sandbox import Sandbox


def test_slow_file_downloads_complete_whole(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    # 512 px PNGs are about 17 kB: each trickles in over most of a second.
    sandbox = make_sandbox(latency=0.05, download_bytes_per_second=25_000)
    spec = spec_for(tmp_path, keys=12, concurrency=12, side=512)
    summary = run_spec(spec, sandbox)

    assert summary.ok
    stats = sandbox.state.snapshot()
    assert summary.tally.bytes == stats["download_bytes"] > 12 * 10_000
    found = check_accounted(spec, sandbox)
    assert all(len(r.files) == 1 for r in found.values())


@pytest.fixture
def expire_after() -> Iterator[Callable[[Sandbox, int], None]]:
    """Expire every output link of a sandbox once it has served `count` files."""
    threads: list[threading.Thread] = []
    stop = threading.Event()

    def arm(sandbox: Sandbox, count: int) -> None:
        def watch() -> None:
            while not stop.is_set():
                if sandbox.state.snapshot()["downloads"] >= count:
                    sandbox.configure(file_ttl=0.0)
                    return
                stop.wait(0.002)

        thread = threading.Thread(target=watch, daemon=True)
        threads.append(thread)
        thread.start()

    yield arm
    stop.set()
    for thread in threads:
        thread.join()


def test_links_that_expire_mid_run_are_recorded_missing_and_fetched_when_they_work_again(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    expire_after: Callable[[Sandbox, int], None],
) -> None:
    # remove_data=False: the links die, the predictions keep their output (as Replicate's do
    # for an hour after the files are gone from a CDN edge, say).
    sandbox = make_sandbox(latency=0.05, remove_data=False)
    expire_after(sandbox, 6)
    spec = spec_for(tmp_path, keys=24, concurrency=3)
    summary = run_spec(spec, sandbox)

    found = check_accounted(spec, sandbox)
    whole = [r for r in found.values() if r.files]
    expired = [r for r in found.values() if not r.files]
    assert len(whole) >= 6
    assert len(expired) >= 12
    for record in expired:
        (url,) = record.missing
        assert record.output == [url]
        assert record.error == f"output URL expired or gone: 404 from {url}"
    assert not summary.ok
    assert summary.tally.missing_files == len(expired)

    # Run again while the links are dead: nothing is created, nothing that was kept is lost.
    again = run_spec(spec, sandbox)
    assert again.tally.finished == {"succeeded": len(expired)}
    assert again.tally.missing_files == len(expired)
    assert again.client.creates == 0
    check_accounted(spec, sandbox)

    # Once the links serve again, the next run fetches what is missing, and creates nothing.
    sandbox.configure(file_ttl=3600.0)
    last = run_spec(spec, sandbox)
    assert last.ok
    assert last.client.creates == 0
    assert last.tally.files == len(expired)
    found = check_accounted(spec, sandbox)
    assert all(len(r.files) == 1 and not r.missing for r in found.values())


def test_a_prediction_whose_output_the_api_removed_before_resume_is_not_a_success(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    # A run killed while polling and resumed after the API dropped the outputs (Replicate
    # removes an API prediction's data after an hour): the files can never be fetched.
    sandbox = make_sandbox(latency=0.6, honor_wait=False)
    spec = spec_for(tmp_path, keys=4, concurrency=4)
    child = start(spec, sandbox)
    wait_for(lambda: ids_recorded(tmp_path / "run") == 4, "every prediction id to be recorded")
    child.kill()
    finish(child)
    sandbox.configure(file_ttl=0.0)
    wait_for(
        lambda: sandbox.state.snapshot()["predictions"] == {"succeeded": 4},
        "the predictions to end",
    )

    summary = run_spec(spec, sandbox)
    found = check_accounted(spec, sandbox, statuses=("succeeded", "failed", "error"))
    # What the user must not get: exit 0 and four "succeeded" keys with nothing to show.
    assert not summary.ok
    assert [r for r in found.values() if r.status == "succeeded" and not r.files] == []
    assert all("removed" in (r.error or "") for r in records(tmp_path / "run").values())
