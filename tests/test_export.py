"""`batchrun export`: a sandbox run as JSON Lines, CSV and a folder the real `datasets` loads."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from runs import run_spec, write_spec

from batchrun.cli import main
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent

# Images and text in one spec: a row value (csv) flattened as row.*, a failing prediction.
SPEC = """
    batchrun: 1
    name: mixed
    jobs:
      - id: pics
        model: acme/painter
        input:
          prompt: "${row.subject}, ${style}"
          seed: 1
          sandbox_status: "${outcome}"
        matrix:
          row: {csv: subjects.csv}
          style: [ink, oil]
          outcome: [succeeded]
        include:
          - {row: {subject: a ghost, mood: eerie}, style: ink, outcome: failed}
      - id: words
        model: meta/llama-chat
        input: {prompt: "Tell me about ${topic}"}
        matrix:
          topic: [foxes, boats, clouds]
    """


@pytest.fixture
def run_folder(tmp_path: Path, sandbox: Sandbox) -> Path:
    (tmp_path / "subjects.csv").write_text("subject,mood\na fox,calm\na boat,=SUM(A1)\n")
    spec = write_spec(tmp_path, SPEC)
    run_spec(spec, sandbox, out=load_spec(spec).output)  # where `export SPEC` looks
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_jsonl_has_one_row_per_prediction_with_flat_variables(
    run_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys, "export", str(run_folder / "spec.yaml"), "--format", "jsonl", "--to", "-"
    )
    assert (code, err) == (0, "batchrun: wrote 8 rows to stdout\n")
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 8
    assert list(rows[0]) == [
        "key",
        "job",
        "row.subject",
        "row.mood",
        "style",
        "outcome",
        "topic",
        "input",
        "status",
        "output",
        "files",
        "version",
        "prediction_id",
        "predict_time",
        "input_token_count",
        "output_token_count",
        "error",
    ]
    pics = [row for row in rows if row["job"] == "pics"]
    assert sorted((r["row.subject"], r["style"], r["status"]) for r in pics) == [
        ("a boat", "ink", "succeeded"),
        ("a boat", "oil", "succeeded"),
        ("a fox", "ink", "succeeded"),
        ("a fox", "oil", "succeeded"),
        ("a ghost", "ink", "failed"),
    ]
    ghost = next(r for r in pics if r["status"] == "failed")
    assert ghost["files"] == []
    assert ghost["error"] == "sandbox: failed as asked (sandbox_status)"
    # A language model's output is its text (the sandbox's echoes the prompt), not a token list.
    words = {row["topic"]: row for row in rows if row["job"] == "words"}
    assert sorted(words) == ["boats", "clouds", "foxes"]
    for topic, row in words.items():
        assert isinstance(row["output"], str)
        assert f"tell me about {topic}" in row["output"]
        assert row["files"] == []
        assert row["predict_time"] > 0


def test_csv_escapes_formulas(run_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = run_folder / "out.csv"
    code, out, err = cli(
        capsys, "export", str(run_folder / "spec.yaml"), "--format", "csv", "--to", str(dest)
    )
    assert (code, out, err) == (0, "", f"batchrun: wrote 8 rows to {dest}\n")
    rows = list(csv.DictReader(io.StringIO(dest.read_text())))
    assert len(rows) == 8
    assert {r["row.mood"] for r in rows if r["job"] == "pics"} == {"calm", "'=SUM(A1)", "eerie"}
    fox = next(r for r in rows if r["row.subject"] == "a fox" and r["style"] == "ink")
    assert [Path(p).suffix for p in json.loads(fox["files"])] == [".png"]
    assert json.loads(fox["input"]) == {
        "prompt": "a fox, ink",
        "seed": 1,
        "sandbox_status": "succeeded",
    }


def test_hf_export_loads_with_datasets(
    run_folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets  # a test dependency: the real consumer of what `hf` writes

    cache = str(run_folder / "hf-cache")
    dest = run_folder / "dataset"
    code, out, err = cli(
        capsys, "export", str(run_folder / "spec.yaml"), "--format", "hf", "--to", str(dest)
    )
    assert (code, out) == (0, "")
    left = "(1 not succeeded or missing files, left out)"
    assert err == f"batchrun: wrote 7 rows in 2 job folders {left} to {dest}\n"

    images = datasets.load_dataset(
        "imagefolder", data_dir=str(dest / "pics"), split="train", cache_dir=cache
    )
    assert images.num_rows == 4
    # image (the PNG, decoded), file_index, then key, job, 4 variables and the 10 fixed columns
    assert images.num_columns == 18
    assert images.column_names[:8] == [
        "image",
        "file_index",
        "key",
        "job",
        "row.subject",
        "row.mood",
        "style",
        "outcome",
    ]
    assert images[0]["image"].size[0] > 0
    text = datasets.load_dataset(
        "json", data_dir=str(dest / "words"), split="train", cache_dir=cache
    )
    assert (text.num_rows, text.num_columns) == (3, 13)  # key, job, topic, 10 fixed columns
    card = (dest / "README.md").read_text()
    assert "| `pics` | imagefolder | 4 | 4 | `acme/painter` |" in card
    assert "| `words` | json | 3 | 3 | `meta/llama-chat` |" in card
    assert "left out: 1 failed." in card
    # Files are hard links to the run's own files: the dataset costs no second copy.
    assert all(path.stat().st_nlink == 2 for path in (dest / "pics").glob("*.png"))


def test_hf_export_of_one_kind_loads_by_job_name(
    tmp_path: Path,
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - {id: a, model: meta/llama-chat, input: {prompt: "${t}"}, matrix: {t: [x, y]}}
          - {id: b, model: acme/gpt-mini, input: {prompt: "${t}"}, matrix: {t: [x, y, z]}}
        """,
    )
    run_spec(spec, sandbox, out=load_spec(spec).output)
    dest = tmp_path / "dataset"
    code, _, err = cli(capsys, "export", str(spec), "--format", "hf", "--to", str(dest))
    assert (code, err) == (0, f"batchrun: wrote 5 rows in 2 job folders to {dest}\n")
    b = datasets.load_dataset(str(dest), "b", split="train", cache_dir=str(tmp_path / "cache"))
    assert (b.num_rows, b.num_columns) == (3, 13)
