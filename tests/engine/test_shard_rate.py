"""Shards share the account: with --shard I/N each takes 1/N of the rate, unless --shard-rate whole.

bench/shard_rate.py runs the same race both ways and counts the 429s each way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from runs import TOKEN, assert_files_intact, finish, painter_spec, records, run_spec, start

from batchrun.cli import main
from batchrun.sandbox import Sandbox
from batchrun.spec.rate import Rate

SHARDS = 4
# The server's limit, and the spec's rate: matched, as a user who read the account's limit sets it.
LIMIT = "3000/min"


def spec_of(folder: Path, keys: int, rate: str = LIMIT) -> Path:
    return painter_spec(folder, keys, concurrency=64, rate=rate)


@pytest.mark.parametrize(
    ("text", "ways", "shared"),
    [("600/min", 4, "150/min"), ("10/s", 3, "3.333/s"), ("1.5/h", 1, "1.5/h")],
)
def test_a_rate_shared_keeps_its_unit(text: str, ways: int, shared: str) -> None:
    rate = Rate.parse(text)
    assert str(rate.shared_by(ways)) == shared
    assert rate.shared_by(ways).per_second == pytest.approx(rate.per_second / ways)


def test_a_shard_takes_its_share_of_the_rate_and_says_so(
    tmp_path: Path,
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = spec_of(tmp_path, 8, rate="600/min")
    # rate=None: the spec's rate, which is what the test is about (run_spec's own default is a
    # rate no test reaches).
    summary = run_spec(spec, sandbox, shard=(2, 4), rate=None)
    assert (str(summary.rate), str(summary.account_rate), summary.rate_shared_by) == (
        "150/min",
        "600/min",
        4,
    )
    whole = run_spec(spec, sandbox, shard=(3, 4), shard_rate="whole", rate=None)
    assert (str(whole.rate), whole.rate_shared_by) == ("600/min", 1)
    unsharded = run_spec(spec, sandbox, out=tmp_path / "other", rate=None)
    assert (str(unsharded.rate), unsharded.rate_shared_by) == ("600/min", 1)

    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    argv = ["run", str(spec), "--base-url", sandbox.base_url, "--out", str(tmp_path / "cli")]
    assert main([*argv, "--shard", "1/4", "--rate", "20/s"]) == 0
    assert (
        "  rate: 5/s of creates for shard 1/4, its share of the account's 20/s "
        "(--shard-rate whole gives each shard all of it)\n"
    ) in capsys.readouterr().err
    assert main([*argv, "--shard", "4/4", "--shard-rate", "whole"]) == 0
    assert (
        "  rate: 600/min of creates for shard 4/4, not shared (--shard-rate whole)\n"
    ) in capsys.readouterr().err


@pytest.mark.slow
def test_shards_running_at_once_on_one_account_stay_under_its_limit(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(rate_limit=LIMIT)  # 50 creates/s, a burst of 50, for every shard
    spec = spec_of(tmp_path, 240)
    children = [start(spec, sandbox, "--shard", f"{i}/{SHARDS}") for i in range(1, SHARDS + 1)]
    results = [finish(child) for child in children]
    assert [code for code, _ in results] == [0] * SHARDS, results
    stats = sandbox.state.snapshot()
    assert stats["creates"] == 240
    print(f"{SHARDS} shards at once, rate shared: {stats['throttled']} of 240 creates got 429")
    assert stats["throttled"] <= 5
    found = records(tmp_path / "run")
    assert len(found) == 240
    assert {r.status for r in found.values()} == {"succeeded"}
    assert assert_files_intact(tmp_path / "run") == 240
