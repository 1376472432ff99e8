"""SIGTERM and kill -9 at random moments, with faults on the wire, then resume.

`batchrun run` runs in a child process. SIGTERM means "leave now, resumably": exit 130 at once,
with every prediction id in the manifest. kill -9 gives no warning at all. Either way the next
run picks everything up without creating anything twice (tests/e2e/test_crash.py covers kill -9 and
Ctrl-C on a healthy sandbox; these add SIGTERM, and kills combined with faults).
"""

from __future__ import annotations

import random
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from faultrun import (
    PNG_END,
    check_accounted,
    downloading,
    finish,
    spec_for,
    start,
    wait_for,
)
from runs import records

from batchrun.sandbox import Sandbox

LEAVE_WITHIN = 10.0  # seconds a child may take to go after SIGTERM


def requests_seen(sandbox: Sandbox) -> int:
    return sum(sandbox.state.snapshot()["requests"].values())


def under_way(child: subprocess.Popen[str], sandbox: Sandbox, before: int) -> Callable[[], bool]:
    """True once `child` has ended or the sandbox has seen more than `before` requests."""
    return lambda: child.poll() is not None or requests_seen(sandbox) > before


def interrupt_at_random(
    spec: Path, sandbox: Sandbox, rng: random.Random, how: signal.Signals, rounds: int = 3
) -> list[int]:
    """Start the run `rounds` times and send `how` at a random moment once it is under way."""
    codes = []
    for _ in range(rounds):
        # A create the last child left held still counts when it ends: wait for it, or that
        # count would pass for this child's first request while it is still starting up.
        wait_for(lambda: sandbox.state.snapshot()["held"] == 0, "held creates to end")
        before = requests_seen(sandbox)
        child = start(spec, sandbox, quiet=False)
        # Under way: this run talks to the API (its signal handler is installed by then).
        wait_for(under_way(child, sandbox, before), "the run to send a request")
        try:
            child.wait(timeout=rng.uniform(0.05, 0.8))
        except subprocess.TimeoutExpired:
            child.send_signal(how)
        code, err = finish(child, timeout=LEAVE_WITHIN)
        assert "Traceback" not in err
        assert "internal error" not in err
        if code == -signal.SIGTERM:
            # Only once the command is over (its summary printed, its manifest closed) may
            # SIGTERM meet Python's default handler on the way out of the interpreter.
            assert "\n  manifest: " in err, err
        codes.append(code)
    return codes


@pytest.mark.parametrize("seed", [1, 2])
def test_sigterm_at_random_moments_with_5xx_and_resets(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], seed: int
) -> None:
    sandbox = make_sandbox(
        latency=0.3,
        jitter=0.2,
        honor_wait=bool(seed % 2),
        error_rate=0.05,
        reset_rate=0.02,
        seed=seed,
    )
    spec = spec_for(tmp_path, keys=16, concurrency=4)
    codes = interrupt_at_random(spec, sandbox, random.Random(seed), signal.SIGTERM)
    assert set(codes) <= {0, 130, -signal.SIGTERM}
    assert 130 in codes

    code, err = finish(start(spec, sandbox))
    assert code == 0, err
    check_accounted(spec, sandbox)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_moments_with_5xx_resets_and_lost_creates(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], seed: int
) -> None:
    sandbox = make_sandbox(
        latency=0.3,
        jitter=0.2,
        honor_wait=bool(seed % 2),
        error_rate=0.05,
        reset_rate=0.02,
        lose_create_response_rate=0.1,
        seed=seed,
    )
    spec = spec_for(tmp_path, keys=16, concurrency=4)
    codes = interrupt_at_random(spec, sandbox, random.Random(seed), signal.SIGKILL)
    assert -signal.SIGKILL in codes

    code, err = finish(start(spec, sandbox))
    assert code == 0, err
    found = check_accounted(spec, sandbox)
    assert not any(r.possible_duplicate for r in found.values())


def test_sigterm_while_files_trickle_in_leaves_nothing_half_written(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(latency=0.05, download_bytes_per_second=10_000)
    spec = spec_for(tmp_path, keys=8, concurrency=8, side=512)
    run_dir = tmp_path / "run"
    child = start(spec, sandbox)
    wait_for(lambda: downloading(run_dir), "a download to be under way")
    child.send_signal(signal.SIGTERM)
    code, err = finish(child, timeout=LEAVE_WITHIN)

    assert code == 130, err
    assert list(run_dir.rglob("*.part")) == []
    assert all(p.read_bytes().endswith(PNG_END) for p in run_dir.rglob("*.png"))
    # Every id the manifest holds is a prediction the sandbox made (creates cut short by the
    # signal stay `submitting`: the next run finds them in the list).
    known = {r.prediction_id for r in records(run_dir).values() if r.prediction_id}
    assert known
    assert known <= set(sandbox.state.predictions)

    sandbox.configure(download_bytes_per_second=None)
    code, err = finish(start(spec, sandbox))
    assert code == 0, err
    check_accounted(spec, sandbox)


def test_sigterm_during_a_429_storm_leaves_at_once(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    # One create a minute: after the first, every create waits out a 60 s Retry-After.
    sandbox = make_sandbox(latency=0.05, rate_limit="1/min", rate_limit_burst=1)
    spec = spec_for(tmp_path, keys=6, concurrency=6)
    child = start(spec, sandbox)
    wait_for(lambda: sandbox.state.snapshot()["throttled"] >= 1, "a create to be refused")
    child.send_signal(signal.SIGTERM)
    code, err = finish(child, timeout=LEAVE_WITHIN)
    assert code == 130, err

    sandbox.configure(rate_limit=None)
    code, err = finish(start(spec, sandbox))
    assert code == 0, err
    check_accounted(spec, sandbox)
