"""Crash and interrupt tests: `batchrun run` in a child process, killed or interrupted mid-run.

Each test then runs the spec again and checks that every key ended `succeeded` exactly once, with
no prediction created twice and no torn file in place.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from runs import (
    PNG_END,
    TEST_LATENCY,
    assert_files_intact,
    downloading,
    finish,
    ids_recorded,
    manifest_lines,
    painter_spec,
    records,
    start,
    wait_for,
)

from batchrun.sandbox import Sandbox

KEYS = 12


def spec_for(folder: Path, concurrency: int = KEYS) -> Path:
    """KEYS predictions of 512 px images: files large enough to be killed in the middle of."""
    return painter_spec(folder, KEYS, concurrency=concurrency, side=512)


def finish_and_check(spec: Path, sandbox: Sandbox) -> None:
    """Run the spec again to the end; every key succeeded once, nothing created twice.

    The predictions made so far keep the latency they were created with; those this run
    creates take the tests' usual latency (the crash is over, nothing is timed now)."""
    sandbox.configure(latency=TEST_LATENCY, jitter=0.0)
    code, err = finish(start(spec, sandbox))
    assert code == 0, err
    found = records(spec.parent / "run")
    assert len(found) == KEYS
    assert {r.status for r in found.values()} == {"succeeded"}
    stats = sandbox.state.snapshot()
    assert stats["creates"] == KEYS, "a prediction was created twice"
    assert len({r.prediction_id for r in found.values()}) == KEYS
    assert assert_files_intact(spec.parent / "run") == KEYS


def test_killed_before_the_creates_return(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(latency=1.5)  # creates are held open by Prefer: wait
    spec = spec_for(tmp_path)
    child = start(spec, sandbox)
    wait_for(lambda: sandbox.state.snapshot()["held"] == KEYS, "every create to be in flight")
    child.kill()
    child.wait()
    lines = list(manifest_lines(tmp_path / "run"))
    assert {line["status"] for line in lines} == {"submitting"}
    finish_and_check(spec, sandbox)


def test_killed_right_after_the_creates_return(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    # Without Prefer: wait, each create is answered at once with `starting`; the kill comes as
    # the last answer leaves the sandbox. A prediction batchrun has heard of has its id on disk
    # before it is polled; one whose answer was still on its way stays `submitting`, which the
    # next run finds in the API's list. Either way nothing is created twice.
    sandbox = make_sandbox(latency=1.5, honor_wait=False)
    spec = spec_for(tmp_path)
    child = start(spec, sandbox)
    creates = "POST /v1/models/{owner}/{name}/predictions"
    wait_for(
        lambda: sandbox.state.snapshot()["requests"].get(creates, 0) == KEYS,
        "every create to be answered",
    )
    child.kill()
    child.wait()
    found = records(tmp_path / "run")
    made = set(sandbox.state.predictions)
    assert {r.prediction_id for r in found.values() if r.prediction_id} <= made
    assert {r.status for r in found.values() if not r.prediction_id} <= {"submitting"}
    finish_and_check(spec, sandbox)


@pytest.mark.slow
def test_killed_while_polling(tmp_path: Path, make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(latency=1.5, honor_wait=False)
    spec = spec_for(tmp_path)
    child = start(spec, sandbox)
    wait_for(lambda: ids_recorded(tmp_path / "run") == KEYS, "every id to be recorded")
    child.kill()
    child.wait()
    assert sandbox.state.snapshot()["creates"] == KEYS
    finish_and_check(spec, sandbox)


@pytest.mark.slow
def test_killed_while_downloading(tmp_path: Path, make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(latency=0.05, download_bytes_per_second=20_000)
    spec = spec_for(tmp_path)
    child = start(spec, sandbox)
    run_dir = tmp_path / "run"
    wait_for(lambda: downloading(run_dir), "a download to be under way")
    child.kill()
    child.wait()
    in_place = list(run_dir.rglob("*.png"))
    assert all(p.read_bytes().endswith(PNG_END) for p in in_place), "a torn file is in place"
    for record in records(run_dir).values():
        for file in record.files:
            assert (run_dir / file.path).stat().st_size == file.bytes
    sandbox.configure(download_bytes_per_second=None)
    finish_and_check(spec, sandbox)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_at_random_moments_again_and_again(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], seed: int
) -> None:
    import random

    rng = random.Random(seed)
    sandbox = make_sandbox(latency=0.4, jitter=0.3, honor_wait=bool(seed % 2))
    spec = spec_for(tmp_path, concurrency=4)
    for _ in range(3):
        child = start(spec, sandbox)
        try:
            child.wait(timeout=rng.uniform(0.3, 1.5))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    finish_and_check(spec, sandbox)


@pytest.mark.slow
def test_one_ctrl_c_lets_what_is_in_flight_finish(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(latency=1.0)
    spec = spec_for(tmp_path, concurrency=3)
    child = start(spec, sandbox)
    wait_for(lambda: sandbox.state.snapshot()["held"] == 3, "three creates in flight")
    child.send_signal(signal.SIGINT)
    code, err = finish(child, timeout=30)
    assert code == 130, err
    found = records(tmp_path / "run")
    assert 3 <= len(found) < KEYS
    assert {r.status for r in found.values()} == {"succeeded"}  # in flight ones finished
    finish_and_check(spec, sandbox)


@pytest.mark.parametrize(
    ("sigint", "code"), [(signal.SIG_IGN, 0), (signal.SIG_DFL, 130)], ids=["ignored", "default"]
)
def test_a_run_started_with_sigint_ignored_goes_on_through_ctrl_c(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], sigint: signal.Handlers, code: int
) -> None:
    # A shell without job control starts `batchrun run ... &` with SIGINT ignored: a Ctrl-C at
    # the terminal is for the foreground job, and the run in the background goes on. Started as
    # a foreground job is, the same run stops.
    sandbox = make_sandbox(latency=0.3)
    spec = spec_for(tmp_path, concurrency=3)
    child = start(spec, sandbox, sigint=sigint)
    wait_for(lambda: sandbox.state.snapshot()["held"] == 3, "three creates in flight")
    child.send_signal(signal.SIGINT)
    finished, err = finish(child, timeout=30)
    assert finished == code, err
    found = records(tmp_path / "run")
    assert {r.status for r in found.values()} == {"succeeded"}
    assert (len(found) == KEYS) == (sigint == signal.SIG_IGN)
    finish_and_check(spec, sandbox)


def test_a_second_ctrl_c_leaves_at_once(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(latency=20.0)
    spec = spec_for(tmp_path, concurrency=3)
    child = start(spec, sandbox, quiet=False)
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(iter(child.stderr.readline, "")))  # type: ignore[union-attr]
    reader.start()
    wait_for(lambda: sandbox.state.snapshot()["held"] == 3, "three creates in flight")
    began = time.monotonic()
    child.send_signal(signal.SIGINT)
    wait_for(lambda: any("stopping: " in line for line in said), "the first Ctrl-C to be seen")
    child.send_signal(signal.SIGINT)
    child.wait(timeout=10)
    reader.join()
    assert child.returncode == 130
    assert time.monotonic() - began < 10  # it did not wait out the 20 s predictions
    found = records(tmp_path / "run")
    assert len(found) == 3
    assert {r.status for r in found.values()} == {"submitting"}
    assert "  3 still in flight; the next run picks them up by id\n" in said
