"""Every prediction records the API it ran on, and a sandbox result never counts for a real run
(issue 17, item 1): through the real CLI, against sandboxes on loopback.

The "real API" here is a sandbox told not to announce itself (`announce=False`): to batchrun it
is any Replicate-compatible server, which is what a real API is to it.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from runs import TOKEN, RunCli, records

from batchrun.api import client
from batchrun.engine import runner
from batchrun.manifest.reader import load_records
from batchrun.sandbox import Sandbox, app

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "quickstart.yaml"


@pytest.fixture
def quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The README's quick start spec, copied where its run folders may be written."""
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "quickstart.yaml"
    shutil.copy(QUICKSTART, spec)
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)
    return spec


def creates(sandbox: Sandbox) -> int:
    """How many predictions a sandbox made."""
    return len(sandbox.state.predictions)


def test_the_sandbox_and_the_client_name_the_same_marker_header() -> None:
    # The sandbox imports nothing of batchrun, so the name is written twice: they must agree.
    assert client.SANDBOX_HEADER == app.SANDBOX_HEADER


@pytest.mark.parametrize("shared", [False, True], ids=["own-folders", "one-folder"])
def test_the_quick_start_then_a_real_run_creates_all_six_on_the_real_api(
    quickstart: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
    shared: bool,
) -> None:
    real_folder = quickstart.parent / "runs" / "quickstart"
    out = ["--out", str(real_folder)] if shared else []
    code, _, err = run_cli("run", str(quickstart), "--sandbox", *out)
    assert code == 0, err
    sandbox_folder = real_folder if shared else quickstart.parent / "runs" / "quickstart-sandbox"
    made = records(sandbox_folder)
    assert len(made) == 6
    assert all(r.api is not None and r.api.sandbox for r in made.values())

    real = make_sandbox(announce=False)
    code, _, err = run_cli("run", str(quickstart), "--base-url", real.base_url)
    assert code == 0, err
    assert creates(real) == 6  # every one created on the real API: none taken from the sandbox
    after = records(real_folder)
    assert {(r.api.url, r.api.sandbox) for r in after.values() if r.api} == {(real.base_url, False)}
    assert len(after) == 6
    # Each file is the real API's answer, not the sandbox's picture left in place.
    for record in after.values():
        assert record.prediction_id in real.state.predictions

    code, out, _ = run_cli("status", str(quickstart), "--json")
    status = json.loads(out)
    assert code == 0
    assert (status["planned"], status["done"], status["not_started"]) == (6, 6, 0)
    assert status["sandbox"] is False
    assert status["apis"] == [{"url": real.base_url, "sandbox": False, "predictions": 6}]
    code, out, _ = run_cli("status", str(quickstart))
    assert f"api: {real.base_url}: 6 predictions" in out.splitlines()
    assert "sandbox" not in out


def test_a_sandbox_reached_by_base_url_is_known_for_one(
    tmp_path: Path,
    quickstart: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
) -> None:
    served = make_sandbox()  # announces itself, as `batchrun sandbox` does
    run_dir = tmp_path / "run"
    code, _, err = run_cli(
        "run", str(quickstart), "--base-url", served.base_url, "--out", str(run_dir)
    )
    assert code == 0, err
    headers, made = load_records(run_dir)
    assert {(r.api.url, r.api.sandbox) for r in made.values() if r.api} == {(served.base_url, True)}
    assert headers[0]["api"] == {"url": served.base_url, "sandbox": True}
    # A run folder a sandbox run wrote last is read as the sandbox's, and says so.
    code, out, _ = run_cli("status", str(run_dir))
    assert code == 0
    assert f"api: {served.base_url} (sandbox): 6 predictions" in out.splitlines()
    assert "these are the sandbox's made-up results, not a real model's output" in out
    code, out, _ = run_cli("plan", str(quickstart), "--out", str(run_dir))
    assert (
        "counted for a run on the sandbox, as the last run here was; "
        "a run on a real API creates again what the sandbox made"
    ) in out.splitlines()
    assert "total: 6 predictions: 0 new, 6 done, 0 in flight, 0 failed, 0 to download" in out
    # The same server reached again: nothing to do, nothing created twice.
    code, _, err = run_cli(
        "run", str(quickstart), "--base-url", served.base_url, "--out", str(run_dir)
    )
    assert code == 0, err
    assert creates(served) == 6


def test_two_real_apis_share_a_folder_and_each_result_keeps_its_origin(
    tmp_path: Path,
    quickstart: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
) -> None:
    proxy, replicate = make_sandbox(announce=False), make_sandbox(announce=False)
    run_dir = tmp_path / "run"
    first = ["--base-url", proxy.base_url, "--out", str(run_dir), "--limit", "2"]
    assert run_cli("run", str(quickstart), *first)[0] == 0
    second = ["--base-url", replicate.base_url + "/v1", "--out", str(run_dir)]
    assert run_cli("run", str(quickstart), *second)[0] == 0
    assert (creates(proxy), creates(replicate)) == (2, 4)  # a real API's results count for both
    origins = Counter(r.api.url for r in records(run_dir).values() if r.api)
    assert origins == {proxy.base_url: 2, replicate.base_url: 4}
    code, out, _ = run_cli("status", str(run_dir), "--json")
    assert code == 0
    assert json.loads(out)["apis"] == [
        {"url": replicate.base_url, "sandbox": False, "predictions": 4},
        {"url": proxy.base_url, "sandbox": False, "predictions": 2},
    ]
    code, out, _ = run_cli("status", str(run_dir), "--csv", "-")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert Counter(json.loads(row["api"])["url"] for row in rows) == origins


def refused_to_replace(run_cli: RunCli, argv: list[str], real_results: int) -> None:
    """A sandbox run into a folder of a real API's results: refused (exit 2, saying how many it
    would replace) before it writes anything to the folder's journal (`--out`, last in argv)."""
    journal = Path(argv[argv.index("--out") + 1]) / "manifest.jsonl"
    before = journal.read_bytes()
    code, _, err = run_cli(*argv)
    assert code == 2
    assert f"holds {real_results} results of a real API that this sandbox run would replace" in err
    assert journal.read_bytes() == before


def test_a_sandbox_run_never_replaces_a_real_apis_results(
    tmp_path: Path,
    quickstart: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
) -> None:
    real = make_sandbox(announce=False)
    run_dir = tmp_path / "run"
    assert (
        run_cli("run", str(quickstart), "--base-url", real.base_url, "--out", str(run_dir))[0] == 0
    )
    refused_to_replace(run_cli, ["run", str(quickstart), "--sandbox", "--out", str(run_dir)], 6)


def test_a_real_run_after_the_sandbox_shows_what_is_left_in_plan_and_status(
    quickstart: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
) -> None:
    # One folder: the sandbox made six, then a real run made two (--limit) before it ended.
    folder = quickstart.parent / "runs" / "quickstart"
    assert run_cli("run", str(quickstart), "--sandbox", "--out", str(folder))[0] == 0
    real = make_sandbox(announce=False)
    code, _, _ = run_cli("run", str(quickstart), "--base-url", real.base_url, "--limit", "2")
    assert code == 0
    code, out, _ = run_cli("plan", str(quickstart))
    assert "total: 6 predictions: 4 new, 2 done, 0 in flight, 0 failed, 0 to download" in out
    assert "4 recorded predictions made by the sandbox count as new here" in out
    code, out, _ = run_cli("status", str(quickstart))
    assert code == 1
    lines = out.splitlines()
    assert "2 of 6 done, 4 not started" in lines
    assert f"api: {real.base_url}: 2 predictions" in lines
    assert any(
        line.startswith("api: http://127.0.0.1:")
        and line.endswith("(sandbox): 4 predictions; not counted: new to a run on a real API")
        for line in lines
    ), lines
    # The report shows only the real API's results in its gallery.
    code, out, _ = run_cli("report", str(quickstart))
    page = Path(out.strip()).read_text()
    shown = {r.key: f'id="k-{r.key}"' in page for r in records(folder).values()}
    assert sorted(shown.values()) == [False] * 4 + [True] * 2
    assert all(shown[r.key] != r.sandbox for r in records(folder).values())


# `GET /v1/account`, the question whether an API is the sandbox, as the sandbox counts it: it
# has no such route, and its 404 carries its marker header as every answer does.
ASKED = "GET (no route)"


def sent(server: Sandbox) -> Counter[str]:
    """The requests a server has answered, by route."""
    return Counter(server.state.stats.requests)


def test_a_run_with_nothing_to_do_takes_the_journals_word_for_a_real_api_and_sends_nothing(
    tmp_path: Path,
    quickstart: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = make_sandbox(announce=False)
    run_dir = tmp_path / "run"
    argv = ["run", str(quickstart), "--base-url", real.base_url, "--out", str(run_dir)]
    assert run_cli(*argv, "--limit", "5")[0] == 0
    # One key left: the API is asked which it is, and its model checked, before the create.
    before = sent(real)
    code, _, err = run_cli(*argv)
    assert code == 0, err
    asked = sent(real) - before
    assert asked[ASKED] == 1
    assert asked["GET /v1/models/{owner}/{name}"] == 1
    assert creates(real) == 6
    # Nothing left: the journal's header already names this URL as a real API's; nothing is
    # sent, and the header is read once.
    before, journal = sent(real), (run_dir / "manifest.jsonl").read_bytes()
    read: list[object] = []
    says_already = runner.says_already
    monkeypatch.setattr(runner, "says_already", lambda *a: read.append(a) or says_already(*a))
    code, _, err = run_cli(*argv)
    assert code == 0, err
    assert len(read) == 1
    assert "  predictions: nothing to do; 6 already done" in err.splitlines()
    assert sent(real) == before
    assert (run_dir / "manifest.jsonl").read_bytes() == journal


def test_a_journal_that_names_the_sandbox_is_asked_about_again(
    tmp_path: Path,
    quickstart: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
) -> None:
    served = make_sandbox()
    run_dir = tmp_path / "run"
    argv = ["run", str(quickstart), "--base-url", served.base_url, "--out", str(run_dir)]
    assert run_cli(*argv)[0] == 0
    before = sent(served)
    assert run_cli(*argv)[0] == 0
    assert sent(served) - before == {ASKED: 1}
    # A real API at that URL now: the sandbox's results are not its own, and it makes all six.
    served.configure(announce=False)
    code, _, err = run_cli(*argv)
    assert code == 0, err
    assert creates(served) == 12
    assert not any(record.sandbox for record in records(run_dir).values())


def test_a_run_with_something_to_send_asks_although_the_journal_names_a_real_api(
    tmp_path: Path,
    quickstart: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
) -> None:
    real = make_sandbox(announce=False)
    run_dir = tmp_path / "run"
    argv = ["run", str(quickstart), "--base-url", real.base_url, "--out", str(run_dir)]
    assert run_cli(*argv, "--limit", "5")[0] == 0
    # The same URL is a sandbox now: asked, it says so, and the keys are placed again for it.
    real.configure(announce=True)
    refused_to_replace(run_cli, argv, 5)
    assert creates(real) == 5
