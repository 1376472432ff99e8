"""The runner against the sandbox's create rate limit: polite when matched, patient when not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from runs import painter_spec, records, run_spec

from batchrun.sandbox import Sandbox
from batchrun.spec.rate import Rate


@pytest.mark.slow
def test_with_the_servers_own_limit_few_requests_are_refused(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(rate_limit="3000/min")
    spec = painter_spec(tmp_path, 300, concurrency=100)
    summary = run_spec(spec, sandbox, rate=Rate.parse("3000/min"))
    stats = sandbox.state.snapshot()
    assert summary.ok
    assert stats["creates"] == 300
    assert summary.client.rate_limited == stats["throttled"]
    assert stats["throttled"] <= 15, f"{stats['throttled']} of 300 creates were refused"
    # 300 creates at 50/s with a bucket of 50 cannot take less than (300 - 50) / 50 s.
    assert summary.wall_time >= 4.9


@pytest.mark.slow
def test_a_much_lower_server_limit_slows_the_run_instead_of_failing_it(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(rate_limit="300/min")  # 5 creates/s, a bucket of 5
    spec = painter_spec(tmp_path, 30, concurrency=30)
    summary = run_spec(spec, sandbox, rate=Rate.parse("3000/min"))
    stats = sandbox.state.snapshot()
    assert summary.ok
    assert {r.status for r in records(tmp_path / "run").values()} == {"succeeded"}
    assert stats["creates"] == 30
    assert stats["throttled"] > 0
    assert summary.wall_time >= (30 - 5) / 5 - 0.5
