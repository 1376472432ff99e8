"""`batchrun validate` and `batchrun plan`, through the real command line."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runs import RunCli

from batchrun.cli import main
from batchrun.frontend.destination import WRITE_CHUNK

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_a_copy_of_the_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The example specs write to specs/runs/ (the README's quick start leaves a run there);
    # a copy without it keeps these tests from reading what another command left behind.
    # In a folder of its own, so tmp_path stays outside it for the tests that use it too.
    copy = tmp_path / "repo"
    for folder in ("specs", "tests/specs"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("runs"))
    monkeypatch.chdir(copy)
    # plan and validate show the API a run would use; the environment must not choose it here.
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)


def test_validate_the_examples(run_cli: RunCli) -> None:
    code, out, err = run_cli(
        "validate", "specs/quickstart.yaml", "specs/sweep.yaml", "specs/dataset.yaml"
    )
    assert (code, err) == (0, "")
    assert out == (
        "specs/quickstart.yaml: ok (6 predictions in 1 job)"
        "; API https://api.replicate.com (default), token from $REPLICATE_API_TOKEN (default)\n"
        "specs/sweep.yaml: ok (23 predictions in 1 job)"
        "; API https://api.replicate.com (default), token from $REPLICATE_API_TOKEN (default)\n"
        "specs/dataset.yaml: ok (15 predictions in 2 jobs)"
        "; API https://api.replicate.com (default), token from $REPLICATE_API_TOKEN (default)\n"
    )


def test_validate_prints_every_error_and_exits_2(run_cli: RunCli) -> None:
    code, out, err = run_cli("validate", "tests/specs/broken.yaml", "specs/quickstart.yaml")
    assert code == 2
    assert out == (
        "specs/quickstart.yaml: ok (6 predictions in 1 job)"
        "; API https://api.replicate.com (default), token from $REPLICATE_API_TOKEN (default)\n"
    )
    assert err == (
        "tests/specs/broken.yaml:4:1: concurency: unknown field; did you mean 'concurrency'?\n"
        "tests/specs/broken.yaml:5:7: rate: expected N/s, N/min or N/h, like 600/min;"
        " got '600/minute'\n"
        "tests/specs/broken.yaml:9:16: jobs[0].input.prompt: unknown variable ${subjct};"
        " did you mean ${subject}?\n"
        "tests/specs/broken.yaml:16:10: jobs[0].exclude[0].colour: 'colour' is not a matrix"
        " axis; the axes are subject, style, seed\n"
        "tests/specs/prompts.jsonl:2:16: jobs[1].matrix.row: not valid JSON: Expecting property"
        " name enclosed in double quotes\n"
        "tests/specs/broken.yaml: 5 errors\n"
    )


def test_validate_expands_rows_to_find_what_only_a_row_shows(
    run_cli: RunCli,
) -> None:
    code, out, err = run_cli("validate", "tests/specs/rows.yaml")
    assert (code, out) == (2, "")
    assert err == (
        "tests/specs/rows.yaml:13:9: jobs[0].include[2]: this row ({fruit: banana}) has no"
        " variable 'animal', which jobs[0].input.prompt uses\n"
        "tests/specs/rows.yaml: 1 error\n"
    )


def test_validate_a_spec_that_is_not_there(run_cli: RunCli) -> None:
    code, _, err = run_cli("validate", "specs/nothere.yaml")
    assert code == 2
    assert err == (
        "specs/nothere.yaml:1:1: cannot read this file: No such file or directory\n"
        "specs/nothere.yaml: 1 error\n"
    )


def test_plan_summary(run_cli: RunCli) -> None:
    code, out, err = run_cli("plan", "specs/quickstart.yaml")
    assert (code, err) == (0, "")
    assert out == (
        "quickstart: specs/quickstart.yaml\n"
        "output: specs/runs/quickstart (no manifest yet: every prediction is new)\n"
        "api: https://api.replicate.com (default), token from $REPLICATE_API_TOKEN (default)\n"
        "\n"
        "job flux-schnell: black-forest-labs/flux-schnell, 6 predictions\n"
        '  {"prompt": "a watercolor painting of a red fox", "seed": 1, "num_outputs": 1}\n'
        '  {"prompt": "a watercolor painting of a red fox", "seed": 2, "num_outputs": 1}\n'
        '  {"prompt": "a watercolor painting of a red fox", "seed": 3, "num_outputs": 1}\n'
        "  … and 3 more\n"
        "\n"
        "total: 6 predictions in 1 job\n"
        "time: at least 0.6s (creates at 10/s, 32 in flight); how long a prediction runs is"
        " unknown until the first predictions finish\n"
    )


def test_plan_summary_of_several_jobs_with_out_and_shard(run_cli: RunCli, tmp_path: Path) -> None:
    code, out, _ = run_cli("plan", "specs/dataset.yaml", "--out", str(tmp_path), "--shard", "1/1")
    assert code == 0
    lines = out.splitlines()
    assert lines[:3] == [
        "dataset: specs/dataset.yaml",
        "shard 1/1: only the keys of this shard are counted",
        f"output: {tmp_path} (no manifest yet: every prediction is new)",
    ]
    assert "job schnell: black-forest-labs/flux-schnell, 5 predictions" in lines
    assert (
        "job pinned: 3e0e4c0b6bd8b7d7c27b5bd5ca2ab22f5b1d3a0a0dd9f2e6e4b9d6e5c4a3b2c1,"
        " 10 predictions" in lines
    )
    assert lines[-2] == "total: 15 predictions in 2 jobs"
    assert lines[-1].startswith("time: at least 1.5s (creates at 10/s, 32 in flight)")


def test_plan_json_lists_every_prediction(run_cli: RunCli) -> None:
    code, out, err = run_cli("plan", "specs/sweep.yaml", "--json")
    assert (code, err) == (0, "")
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 23
    assert records[0] == {
        "key": records[0]["key"],
        "job": "flux",
        "target": {"model": "black-forest-labs/flux-schnell"},
        "vars": {"subject": "a red fox", "style": "watercolor", "seed": 1, "ratio": "1:1"},
        "input": {"prompt": "a red fox, watercolor", "seed": 1, "aspect_ratio": "1:1"},
        "repeat": 0,
    }
    assert records[-1]["vars"] == {
        "subject": "a blue whale",
        "style": "watercolor",
        "seed": 7,
        "ratio": "16:9",
    }
    assert len({r["key"] for r in records}) == 23


def test_plan_json_shards_partition_the_plan(run_cli: RunCli) -> None:
    keys = []
    for shard in ("1/2", "2/2"):
        _, out, _ = run_cli("plan", "specs/sweep.yaml", "--json", "--shard", shard)
        keys.append({json.loads(line)["key"] for line in out.splitlines()})
    _, out, _ = run_cli("plan", "specs/sweep.yaml", "--json")
    assert not keys[0] & keys[1]
    assert keys[0] | keys[1] == {json.loads(line)["key"] for line in out.splitlines()}


class CountingStdout(io.StringIO):
    """stdout that counts its writes: unbuffered (PYTHONUNBUFFERED=1), each is a system call."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_plan_json_writes_its_lines_in_chunks_not_one_by_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "n.txt").write_text("".join(f"{i}\n" for i in range(5_000)), encoding="utf-8")
    spec = tmp_path / "big.yaml"
    spec.write_text(
        "batchrun: 1\njobs:\n  - {model: a/b, input: {n: '${n}'}, matrix: {n: {lines: n.txt}}}\n",
        encoding="utf-8",
    )
    stdout = CountingStdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["plan", str(spec), "--json"]) == 0
    lines = stdout.getvalue().splitlines()
    assert len(lines) == 5_000
    assert [json.loads(line)["input"] for line in (lines[0], lines[-1])] == [
        {"n": "0"},
        {"n": "4999"},
    ]
    # About 100 bytes a line: 500 kB in chunks of 64 kB is 8 writes, where it was 10,000.
    assert stdout.writes <= -(-len(stdout.getvalue()) // WRITE_CHUNK)


def test_plan_on_a_broken_spec_exits_2(run_cli: RunCli) -> None:
    code, out, err = run_cli("plan", "tests/specs/rows.yaml")
    assert (code, out) == (2, "")
    assert err.endswith("batchrun: 1 error in the spec; nothing was sent\n")


def test_plan_with_a_bad_shard_exits_2(run_cli: RunCli) -> None:
    code, _, err = run_cli("plan", "specs/sweep.yaml", "--shard", "3/2")
    assert code == 2
    assert err == "batchrun: --shard expects I/N with 1 <= I <= N, like 2/8; got '3/2'\n"


def test_plan_json_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    rows = "".join(f"{i}\n" for i in range(20_000))
    (tmp_path / "n.txt").write_text(rows, encoding="utf-8")
    spec = tmp_path / "big.yaml"
    spec.write_text(
        "batchrun: 1\njobs:\n  - {model: a/b, input: {n: '${n}'}, matrix: {n: {lines: n.txt}}}\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "batchrun", "plan", str(spec), "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read()
        code = process.wait(timeout=60)
    assert json.loads(first)["input"] == {"n": "0"}
    assert (code, err) == (0, b"")
