"""Faults on the wire: 5xx on reads, connection resets, 429 storms, and all of them at once.

Runs go through the library against the sandbox over real loopback sockets. The sandbox's fault
dice are seeded, so each scenario meets at least the faults `hits` predicts for its seed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from faultrun import check_accounted, hits, spec_for
from runs import run_spec

from batchrun.sandbox import Sandbox
from batchrun.spec.rate import Rate

FAILED_TEXT = "sandbox: simulated failure (failure_rate)"


def test_5_percent_of_reads_answered_503_cost_retries_not_predictions(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    # Without Prefer: wait every key is polled at least once: 40 GETs or more roll the dice.
    sandbox = make_sandbox(latency=0.2, honor_wait=False, error_rate=0.05, seed=1)
    spec = spec_for(tmp_path, keys=40, concurrency=20)
    summary = run_spec(spec, sandbox)

    stats = sandbox.state.snapshot()
    assert stats["server_errors"] >= hits(1, "error", 0.05, 40) == 5
    assert summary.client.server_errors == stats["server_errors"]
    assert summary.client.retries >= stats["server_errors"]
    assert summary.ok
    check_accounted(spec, sandbox)


def test_2_percent_of_connections_reset_on_creates_and_reads(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    # A reset create is an answer lost: the runner looks for it in the list before creating
    # again, so nothing is created twice. 40 creates and 40 polls at least roll the dice.
    sandbox = make_sandbox(latency=0.2, honor_wait=False, reset_rate=0.02, seed=13)
    spec = spec_for(tmp_path, keys=40, concurrency=20)
    summary = run_spec(spec, sandbox, recreate_delay=0.05)

    stats = sandbox.state.snapshot()
    assert stats["resets"] >= hits(13, "reset", 0.02, 80) == 5
    assert summary.client.network_errors >= stats["resets"]
    assert summary.ok
    found = check_accounted(spec, sandbox)
    assert not any(r.possible_duplicate for r in found.values())


def test_a_429_storm_on_creates_and_reads_slows_the_run_and_loses_nothing(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    # The server allows 20 creates/s in bursts of 1 while the runner asks for 100/s, and a
    # fifth of the polls are answered 429 (an HTML page, no Retry-After, like a proxy's).
    sandbox = make_sandbox(
        latency=0.1,
        honor_wait=False,
        rate_limit="20/s",
        rate_limit_burst=1,
        error_rate=0.2,
        error_status=429,
        seed=3,
    )
    spec = spec_for(tmp_path, keys=20, concurrency=20)
    summary = run_spec(spec, sandbox, rate=Rate.parse("100/s"))

    stats = sandbox.state.snapshot()
    assert stats["throttled"] > hits(3, "error", 0.2, 20)  # creates were refused too
    assert summary.client.rate_limited == stats["throttled"]
    assert summary.ok
    check_accounted(spec, sandbox)


def test_every_fault_at_once_ends_with_each_key_once(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(
        latency=0.15,
        jitter=0.1,
        error_rate=0.05,
        reset_rate=0.02,
        lose_create_response_rate=0.1,
        failure_rate=0.1,
        seed=7,
    )
    spec = spec_for(tmp_path, keys=40, concurrency=10)
    summary = run_spec(spec, sandbox, recreate_delay=0.05)

    stats = sandbox.state.snapshot()
    assert stats["lost_creates"] >= hits(7, "lose_create", 0.1, 16) == 4
    found = check_accounted(spec, sandbox, statuses=("succeeded", "failed"))
    failed = [r for r in found.values() if r.status == "failed"]
    assert len(failed) == stats["predictions"].get("failed", 0) > 0
    assert {r.error for r in failed} == {FAILED_TEXT}
    assert all(r.files == () for r in failed)
    assert summary.tally.finished == {"succeeded": 40 - len(failed), "failed": len(failed)}
    assert not summary.ok

    # The next run knows what failed and sends nothing.
    again = run_spec(spec, sandbox)
    assert again.survey.failed_before == len(failed)
    assert again.tally.finished == {}
    check_accounted(spec, sandbox, statuses=("succeeded", "failed"))
