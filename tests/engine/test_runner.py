"""End to end: the runner against the sandbox over real loopback sockets."""

from __future__ import annotations

import functools
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runs import (
    TEST_LATENCY,
    TOKEN,
    UNTHROTTLED,
    assert_files_intact,
    records,
    run_argv,
    run_spec,
    write_spec,
)

from batchrun.cli import main
from batchrun.engine import runner as runner_module
from batchrun.errors import SpecError
from batchrun.sandbox import Sandbox, SandboxConfig

REPO = Path(__file__).resolve().parents[2]


def status_spec(folder: Path) -> Path:
    return write_spec(
        folder,
        """
        batchrun: 1
        jobs:
          - id: img
            model: acme/painter
            input:
              prompt: "a ${status} prediction"
              sandbox_status: ${status}
              sandbox_error: "CUDA out of memory"
            matrix:
              status: [succeeded, failed, canceled, aborted]
        """,
    )


def test_failed_canceled_and_aborted_are_records_and_the_run_fails(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    summary = run_spec(status_spec(tmp_path), sandbox)

    found = {r.vars["status"]: r for r in records(tmp_path / "run").values()}
    assert {name: r.status for name, r in found.items()} == {
        "succeeded": "succeeded",
        "failed": "failed",
        "canceled": "canceled",
        "aborted": "aborted",
    }
    assert found["failed"].error == "CUDA out of memory"
    assert all(r.prediction_id for r in found.values())
    assert len(found["succeeded"].files) == 1
    assert not summary.ok
    assert summary.tally.finished == {"succeeded": 1, "failed": 1, "canceled": 1, "aborted": 1}


def test_the_cli_exits_1_when_a_prediction_failed(
    tmp_path: Path, sandbox: Sandbox, token_in_env: str
) -> None:
    spec = status_spec(tmp_path)
    code = main(run_argv(spec, sandbox, "--quiet"))
    assert code == 1


def test_a_422_is_recorded_as_an_error_that_names_the_field(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "too many", num_outputs: "${n}"}
            matrix: {n: [1, 10]}
        """,
    )
    # The pre-flight would refuse num_outputs: 10 from the model's schema before any create
    # (tests/engine/test_preflight.py); without it, as against an API that publishes no schema, the
    # API's own 422 is what the record keeps.
    summary = run_spec(spec, sandbox, preflight=False)

    by_n = {r.vars["n"]: r for r in records(tmp_path / "run").values()}
    assert by_n[1].status == "succeeded"
    assert by_n[10].status == "error"
    assert by_n[10].prediction_id is None
    assert by_n[10].error is not None
    assert "input.num_outputs" in by_n[10].error
    assert by_n[10].error.startswith(
        f"POST {sandbox.base_url}/v1/models/acme/painter/predictions: 422"
    )
    assert summary.tally.finished == {"succeeded": 1, "error": 1}


def test_every_output_shape_is_handled(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "shapes", sandbox_output: "${shape}"}
            matrix: {shape: [text, tokens, dict, number, images, none]}
          - id: chat
            model: meta/llama-chat
            input: {prompt: "tell me a story"}
        """,
    )
    summary = run_spec(spec, sandbox)
    assert summary.ok

    found = {r.vars.get("shape", r.job): r for r in records(tmp_path / "run").values()}
    assert isinstance(found["text"].output, str)
    assert found["text"].files == ()
    # A token list is kept as the API sent it; what people read is its text.
    assert isinstance(found["tokens"].output, list)
    assert found["tokens"].shown_output == "".join(found["tokens"].output)
    assert isinstance(found["chat"].output, list)
    assert all(isinstance(token, str) for token in found["chat"].output)
    assert isinstance(found["chat"].shown_output, str)
    assert found["chat"].shown_output.strip() != ""
    assert isinstance(found["dict"].output, dict)
    assert len(found["dict"].files) == 1
    assert isinstance(found["number"].output, int | float)
    assert isinstance(found["images"].output, list)
    assert len(found["images"].files) == len(found["images"].output) >= 1
    assert found["none"].output is None
    assert found["none"].status == "succeeded"
    assert assert_files_intact(tmp_path / "run") == 2 + len(found["images"].output) - 1


def test_a_second_run_creates_nothing_and_a_deleted_file_is_fetched_again(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "fox ${seed}", seed: "${seed}"}
            matrix: {seed: {range: [0, 5]}}
        """,
    )
    first = run_spec(spec, sandbox)
    assert first.ok
    creates = sandbox.state.snapshot()["creates"]
    assert creates == 5

    second = run_spec(spec, sandbox)
    assert second.ok
    assert second.survey.done == 5
    assert second.tally.finished == {}

    victim = next(iter(records(tmp_path / "run").values())).files[0]
    (tmp_path / "run" / victim.path).unlink()
    third = run_spec(spec, sandbox)
    assert third.ok
    assert third.tally.finished == {"succeeded": 1}
    assert sandbox.state.snapshot()["creates"] == creates
    assert assert_files_intact(tmp_path / "run") == 5


def test_a_run_with_nothing_to_do_leaves_the_journal_as_it_was_unless_its_header_moved(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "fox ${seed}"}
            matrix: {seed: {range: [0, 3]}}
        """,
    )
    assert run_spec(spec, sandbox).ok
    journal = tmp_path / "run" / "manifest.jsonl"
    kept = records(tmp_path / "run")
    before = journal.read_bytes(), journal.stat().st_ino
    again = run_spec(spec, sandbox)
    assert again.ok
    assert again.survey.done == 3
    assert (journal.read_bytes(), journal.stat().st_ino) == before  # not even compacted anew
    # The spec's text changed (not its plan): the header names its new sha256, so it is written.
    spec.write_text(spec.read_text() + "# a comment\n")
    assert run_spec(spec, sandbox).ok
    assert journal.read_bytes().splitlines()[0] != before[0].splitlines()[0]
    assert records(tmp_path / "run") == kept


class Messages:
    """A progress display that keeps the runner's messages."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def start(self, tally: Any) -> None:
        pass

    def update(self, tally: Any) -> None:
        pass

    def message(self, text: str) -> None:
        self.said.append(text)

    def close(self) -> None:
        pass


def test_a_large_manifest_is_announced_before_it_is_read(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - {model: acme/painter, input: {prompt: "fox ${seed}"}, matrix: {seed: [1, 2]}}
        """,
    )
    first = Messages()
    run_spec(spec, sandbox, progress=first)
    assert first.said == []  # a new run has nothing to read

    size = (tmp_path / "run" / "manifest.jsonl").stat().st_size
    monkeypatch.setattr(runner_module, "LOAD_NOTE_BYTES", size)
    second = Messages()
    run_spec(spec, sandbox, progress=second)
    assert second.said == [
        f"batchrun: reading {size / 1024:.1f} KiB of manifest in {tmp_path / 'run'}..."
    ]


def test_polling_when_the_server_ignores_prefer_wait(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(honor_wait=False, latency=0.3)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: {range: [0, 12]}}
        """,
    )
    summary = run_spec(spec, sandbox)
    assert summary.ok
    assert summary.client.creates == 12
    assert summary.client.gets >= 12  # every prediction needed at least one poll
    # Learned timing keeps polling cheap: far fewer than a poll every 0.1 s would send.
    assert summary.client.gets <= 12 * 4


def test_lost_create_answers_are_found_in_the_list_not_created_twice(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(lose_create_response_rate=0.5, seed=7)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        concurrency: 1  # one request at a time: the seeded faults fall the same way every run
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: {range: [0, 16]}}
        """,
    )
    summary = run_spec(spec, sandbox)
    stats = sandbox.state.snapshot()
    assert stats["lost_creates"] > 0
    assert summary.ok
    assert stats["creates"] == 16
    found = records(tmp_path / "run")
    assert len({r.prediction_id for r in found.values()}) == 16
    assert not any(r.possible_duplicate for r in found.values())


def test_without_a_list_endpoint_a_recreated_key_is_flagged(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(lose_create_response_rate=0.5, list_endpoint=False, seed=7)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        concurrency: 1  # one request at a time: the seeded faults fall the same way every run
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: {range: [0, 16]}}
        """,
    )
    summary = run_spec(spec, sandbox, recreate_delay=0.01)
    stats = sandbox.state.snapshot()
    assert summary.ok
    found = records(tmp_path / "run").values()
    flagged = [r for r in found if r.possible_duplicate]
    assert flagged == [r for r in found if r.attempts > 1]
    assert sum(r.attempts - 1 for r in found) == stats["creates"] - 16 > 0
    assert summary.tally.possible_duplicates == len(flagged)


def test_the_token_never_reaches_the_file_host(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(second_origin=True)
    assert sandbox.files_base_url != sandbox.base_url
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}", num_outputs: 2}
            matrix: {i: [0, 1, 2]}
        """,
    )
    assert run_spec(spec, sandbox).ok
    stats = sandbox.state.snapshot()
    assert stats["delivery_requests"] == 6
    assert stats["delivery_authorized"] == 0
    manifest = (tmp_path / "run" / "manifest.jsonl").read_text()
    assert TOKEN not in manifest


def test_limit_runs_the_first_planned_and_retry_failed_runs_failures_again(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}", sandbox_status: "${outcome}"}
            matrix: {i: [0, 1, 2], outcome: [succeeded, failed]}
        """,
    )
    limited = run_spec(spec, sandbox, limit=2)
    assert limited.survey.planned == 2
    assert sorted(r.vars["outcome"] for r in records(tmp_path / "run").values()) == [
        "failed",
        "succeeded",
    ]

    rest = run_spec(spec, sandbox)
    assert rest.survey.done == 1
    assert rest.survey.failed_before == 1
    assert rest.tally.finished == {"succeeded": 2, "failed": 2}
    creates = sandbox.state.snapshot()["creates"]

    again = run_spec(spec, sandbox, retry_failed=True)
    assert again.tally.finished == {"failed": 3}
    assert sandbox.state.snapshot()["creates"] == creates + 3
    attempts = sorted(r.attempts for r in records(tmp_path / "run").values())
    assert attempts == [1, 1, 1, 2, 2, 2]


def test_no_download_records_the_urls_and_a_later_run_fetches_them(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: [0, 1, 2]}
        """,
    )
    summary = run_spec(spec, sandbox, download=False)
    assert summary.ok
    found = records(tmp_path / "run")
    assert all(len(r.missing) == 1 and r.files == () for r in found.values())
    assert list((tmp_path / "run").rglob("*.png")) == []

    later = run_spec(spec, sandbox)
    assert later.ok
    assert later.tally.finished == {"succeeded": 3}
    assert assert_files_intact(tmp_path / "run") == 3


@pytest.mark.slow
def test_example_specs_run_on_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns("runs"))
    monkeypatch.chdir(tmp_path)
    # `--sandbox` starts the built-in sandbox as ever, at the tests' latency instead of its 1 s a
    # prediction, and the creates go unthrottled: what is checked is that the examples run and
    # leave their files whole, not how long that takes (about 15 s of waiting otherwise).
    quick = SandboxConfig().updated(latency=TEST_LATENCY)
    monkeypatch.setattr("batchrun.sandbox.Sandbox", functools.partial(Sandbox, quick))
    for name in ("quickstart", "sweep", "dataset"):
        out = tmp_path / "out" / name
        argv = ["run", f"specs/{name}.yaml", "--sandbox", "--out", str(out)]
        code = main([*argv, "--rate", UNTHROTTLED.text])
        assert code == 0, capsys.readouterr().err
        found = records(out)
        assert found
        assert {r.status for r in found.values()} == {"succeeded"}
        assert assert_files_intact(out) == sum(len(r.files) for r in found.values()) > 0
    err = capsys.readouterr().err
    assert "batchrun: running against the built-in sandbox at http://127.0.0.1:" in err
    assert "  manifest: out/dataset/manifest.jsonl" in err


def test_a_bad_token_stops_the_run_with_exit_3_and_keeps_the_manifest(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = make_sandbox(tokens=["r8_the_right_one"])
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_a_wrong_token_xyz")
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: [0, 1, 2]}
        """,
    )
    code = main(run_argv(spec, sandbox, "--quiet"))
    err = capsys.readouterr().err
    assert code == 3
    # The pre-flight's first question meets the 401: nothing was created, nothing recorded
    # as half-sent (tests/engine/test_preflight.py has the proxy without a models endpoint).
    assert err.startswith(f"batchrun: GET {sandbox.base_url}/v1/models/acme/painter: 401")
    assert err.rstrip().endswith("check the API token in $REPLICATE_API_TOKEN")
    assert "r8_a_wrong_token_xyz" not in err
    assert not (tmp_path / "runs" / "spec" / "manifest.jsonl").exists()
    assert sandbox.state.snapshot()["creates"] == 0


def test_no_token_is_a_usage_error_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p"}
        """,
    )
    assert main(["run", str(spec), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        "batchrun: no API token: set REPLICATE_API_TOKEN in the environment "
        "(or try the built-in emulator with --sandbox)\n"
    )
    assert not (tmp_path / "runs").exists()


def test_the_runner_runs_on_trio_too(tmp_path: Path, make_sandbox: Callable[..., Sandbox]) -> None:
    import anyio

    from batchrun.engine.runner import RunOptions, run_async
    from batchrun.spec.load import load_spec

    sandbox = make_sandbox(honor_wait=False)  # polls too, not only creates
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: [0, 1, 2, 3]}
        """,
    )
    options = RunOptions(base_url=sandbox.base_url, token=TOKEN, out=tmp_path / "run")

    async def main() -> bool:
        summary = await run_async(load_spec(spec), options)
        return summary.ok and summary.client.gets > 0

    assert anyio.run(main, backend="trio")
    assert assert_files_intact(tmp_path / "run") == 4


def test_a_second_run_on_the_same_folder_at_once_is_refused(
    tmp_path: Path,
    sandbox: Sandbox,
    token_in_env: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from batchrun.manifest.writer import exclusive

    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p"}
        """,
    )
    run_dir = tmp_path / "runs" / "spec"
    with exclusive(run_dir / "manifest.jsonl"):  # another run holds the journal
        code = main(run_argv(spec, sandbox, "--quiet"))
    assert code == 2
    assert capsys.readouterr().err == (
        f"batchrun: another batchrun run is writing {run_dir / 'manifest.jsonl'}; wait for it "
        "to finish, or give this one another --out (or another --shard)\n"
    )
    assert sandbox.state.snapshot()["creates"] == 0


def test_the_first_stop_withdraws_creates_still_waiting_for_their_turn(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    import anyio

    from batchrun.engine.runner import RunOptions, Stopper, run_async
    from batchrun.spec.load import load_spec
    from batchrun.spec.rate import Rate

    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        concurrency: 6
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: {range: [0, 6]}}
        """,
    )
    options = RunOptions(
        base_url=sandbox.base_url, token=TOKEN, out=tmp_path / "run", rate=Rate.parse("60/min")
    )
    stopper = Stopper()

    async def main_() -> Any:
        async with anyio.create_task_group() as tg:

            async def stop_after_the_first_create() -> None:
                # The sandbox lives in another thread; its count is what is watched.
                while sandbox.state.snapshot()["creates"] < 1:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
                stopper.request()

            tg.start_soon(stop_after_the_first_create)
            return await run_async(load_spec(spec), options, stopper=stopper)

    summary = anyio.run(main_)
    created = sandbox.state.snapshot()["creates"]
    assert summary.interrupted
    assert created < 6  # at 1/s, with a burst of one, most were still waiting for their turn
    assert summary.left == 6 - created
    assert summary.tally.in_flight == 0
    # Those withdrawn are recorded as not created, never `submitting`: the next run does not
    # look for them in the API's list (where a proxy has none, it would flag them).
    withdrawn = [r for r in records(tmp_path / "run").values() if r.not_created]
    assert len(withdrawn) == 6 - created
    assert {r.status for r in records(tmp_path / "run").values()} <= {"succeeded", "error"}
    # The next run creates the rest, and nothing twice.
    assert run_spec(spec, sandbox).ok
    assert sandbox.state.snapshot()["creates"] == 6


def test_two_outputs_of_one_key_mapped_to_one_file_are_refused_before_any_create(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        files: "${job}/${key}${ext}"
        jobs:
          - model: acme/painter
            input: {prompt: "two", num_outputs: 2}
        """,
    )
    with pytest.raises(SpecError) as caught:
        run_spec(spec, sandbox)
    assert [issue.message for issue in caught.value.issues] == [
        "job 'painter' asks for 2 outputs per prediction (num_outputs: 2), but the files"
        " template has no ${index} or ${output} to tell them apart"
    ]
    assert sandbox.state.snapshot()["creates"] == 0


def test_an_upload_the_api_refuses_fails_only_its_key(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(max_upload_bytes=300_000)
    (tmp_path / "small.bin").write_bytes(b"s" * 1000)  # inline as a data URI
    (tmp_path / "big.bin").write_bytes(b"b" * 400_000)  # uploaded, and refused (413)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p", mask: {file: "${f}"}}
            matrix: {f: [small.bin, big.bin]}
        """,
    )
    summary = run_spec(spec, sandbox)
    by_file = {r.vars["f"]: r for r in records(tmp_path / "run").values()}
    assert by_file["small.bin"].status == "succeeded"
    assert by_file["big.bin"].status == "error"
    assert by_file["big.bin"].error is not None
    assert by_file["big.bin"].error.startswith(f"POST {sandbox.base_url}/v1/files: 413")
    assert not summary.ok
    assert summary.tally.finished == {"succeeded": 1, "error": 1}


def test_a_run_interns_no_name_of_its_files(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 22: pathlib interns each part it parses, so a Path per downloaded file (its name,
    # its `.part`, its URL's parts for the extension) left dead entries in the interpreter's
    # table of interned strings, which a long run then rebuilt again and again.
    interned: list[str] = []
    runner_thread = threading.current_thread()
    intern = sys.intern

    def recording(text: str) -> str:
        if threading.current_thread() is runner_thread:  # not the sandbox's
            interned.append(text)
        return intern(text)

    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "fox ${i}"}
            matrix: {i: {range: [0, 3]}}
        """,
    )
    monkeypatch.setattr(sys, "intern", recording)
    summary = run_spec(spec, sandbox)
    monkeypatch.undo()
    assert (summary.ok, summary.tally.files) == (True, 3)
    files = {file.path for record in records(tmp_path / "run").values() for file in record.files}
    names = {Path(path).stem for path in files} | {Path(path).name for path in files}
    assert len(names) == 6
    assert [text for text in interned if any(name in text for name in names)] == []
