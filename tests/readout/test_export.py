"""`batchrun export`: a sandbox run as JSON Lines, CSV and a folder the real `datasets` loads."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from runs import TOKEN, Git, RunCli, run_spec, write_spec

from batchrun import safefs
from batchrun._version import __version__
from batchrun.planner.lock import read_lock
from batchrun.readout.export.card import Card, HfJob, dataset_card
from batchrun.readout.export.origin import Provenance
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]

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
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """The sandbox playing a real API, so that what it makes counts as a model's output; the
    sandbox's own results are refused by verify, and tested as such."""
    return make_sandbox(announce=False)


@pytest.fixture
def run_folder(tmp_path: Path, sandbox: Sandbox) -> Path:
    (tmp_path / "subjects.csv").write_text("subject,mood\na fox,calm\na boat,=SUM(A1)\n")
    spec = write_spec(tmp_path, SPEC)
    run_spec(spec, sandbox, out=load_spec(spec).output)  # where `export SPEC` looks
    return tmp_path


def test_jsonl_has_one_row_per_prediction_with_flat_variables(
    run_folder: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    code, out, err = run_cli(
        "export", str(run_folder / "spec.yaml"), "--format", "jsonl", "--to", "-"
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
        "api",
        "predict_time",
        "input_token_count",
        "output_token_count",
        "cost",
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
    # Each row names the API it ran on, as its record does.
    assert all(r["api"] == {"url": sandbox.base_url, "sandbox": False} for r in rows)
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


def test_csv_escapes_formulas(run_folder: Path, run_cli: RunCli) -> None:
    dest = run_folder / "out.csv"
    code, out, err = run_cli(
        "export", str(run_folder / "spec.yaml"), "--format", "csv", "--to", str(dest)
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


@pytest.mark.slow
def test_hf_export_loads_with_datasets(
    run_folder: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets  # a test dependency: the real consumer of what `hf` writes

    cache = str(run_folder / "hf-cache")
    dest = run_folder / "dataset"
    code, out, err = run_cli(
        "export", str(run_folder / "spec.yaml"), "--format", "hf", "--to", str(dest)
    )
    assert (code, out) == (0, "")
    assert err == (
        f"batchrun: wrote 7 rows in 2 job folders to {dest}\n"
        "batchrun: 7 of the 8 planned predictions are here; missing: 1 failed\n"
    )

    images = datasets.load_dataset(
        "imagefolder", data_dir=str(dest / "pics"), split="train", cache_dir=cache
    )
    assert images.num_rows == 4
    # image (the PNG, decoded), file_index, then key, job, 4 variables and the 12 fixed columns
    assert images.num_columns == 20
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
    assert (text.num_rows, text.num_columns) == (3, 15)  # key, job, topic, 12 fixed columns
    card = (dest / "README.md").read_text()
    # Images and text in one folder: `datasets` takes one loader per folder, so each job is a
    # config of its own that loads as JSON (an image job's rows name their files).
    assert "| pics | json | 4 | 4 | acme/painter |" in card
    assert "| words | json | 3 | 3 | meta/llama-chat |" in card
    assert "7 of the 8 planned predictions are here; missing: 1 failed." in card
    assert "succeeded and are here" not in card
    words = datasets.load_dataset(str(dest), "words", split="train", cache_dir=cache)
    assert (words.num_rows, words.num_columns) == (3, 15)
    assert sorted(words["topic"]) == ["boats", "clouds", "foxes"]
    pics = datasets.load_dataset(str(dest), "pics", split="train", cache_dir=cache)
    assert pics.num_rows == 4
    assert all((dest / "pics" / name).is_file() for name in pics["file_name"])
    # Files are hard links to the run's own files: the dataset costs no second copy.
    assert all(path.stat().st_nlink == 2 for path in (dest / "pics").glob("*.png"))


def test_hf_export_of_one_kind_loads_by_job_name(
    tmp_path: Path,
    sandbox: Sandbox,
    run_cli: RunCli,
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
    code, _, err = run_cli("export", str(spec), "--format", "hf", "--to", str(dest))
    assert (code, err) == (0, f"batchrun: wrote 5 rows in 2 job folders to {dest}\n")
    b = datasets.load_dataset(str(dest), "b", split="train", cache_dir=str(tmp_path / "cache"))
    assert (b.num_rows, b.num_columns) == (3, 15)


def card_metadata(dest: Path) -> dict[str, Any]:
    """The YAML block a dataset card opens with (between its first two `---` lines)."""
    lines = (dest / "README.md").read_text().splitlines()
    assert lines[0] == "---"
    end = lines.index("---", 1)
    data = yaml.safe_load("\n".join(lines[1:end]))
    assert isinstance(data, dict)
    return data


SIX = """
    batchrun: 1
    name: six
    jobs:
      - id: pics
        model: acme/painter
        input: {prompt: "a ${x}", seed: 1}
        matrix: {x: [fox, owl, cat, elk]}
      - id: captions
        model: meta/llama-chat
        input: {prompt: "Tell me about ${topic}"}
        matrix: {topic: [foxes, boats]}
    """


def test_card_of_an_unfinished_run_says_what_is_missing_and_why(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    # A run stopped after 3 of 6 (as Ctrl-C leaves it: the rest never created), two of those
    # failed: the card never says every prediction succeeded.
    spec = write_spec(
        tmp_path,
        SIX.replace("seed: 1}", 'seed: 1, sandbox_status: "${s}"}').replace(
            "matrix: {x: [fox, owl, cat, elk]}", "matrix: {s: [failed, succeeded], x: [fox, owl]}"
        ),
    )
    run_spec(spec, sandbox, out=load_spec(spec).output, limit=3)
    dest = tmp_path / "dataset"
    code, _, err = run_cli("export", str(spec), "--format", "hf", "--to", str(dest))
    shortfall = "1 of the 6 planned predictions are here; missing: 3 not started, 2 failed"
    assert (code, err) == (
        0,
        f"batchrun: wrote 1 row in 1 job folder to {dest}\nbatchrun: {shortfall}\n",
    )
    card = (dest / "README.md").read_text()
    assert f"{shortfall}." in card
    assert "succeeded and are here" not in card
    assert "Every prediction" not in card
    counts = card_metadata(dest)["batchrun"]["predictions"]
    assert counts == {"planned": 6, "here": 1, "missing": {"not started": 3, "failed": 2}}


def test_a_finished_run_says_so(tmp_path: Path, sandbox: Sandbox, run_cli: RunCli) -> None:
    spec = write_spec(tmp_path, SIX)
    run_spec(spec, sandbox, out=load_spec(spec).output)
    dest = tmp_path / "dataset"
    code, _, err = run_cli("export", str(spec), "--format", "hf", "--to", str(dest))
    assert (code, err) == (0, f"batchrun: wrote 6 rows in 2 job folders to {dest}\n")
    assert "All 6 planned predictions succeeded and are here." in (dest / "README.md").read_text()


def test_a_file_changed_after_the_run_is_not_exported_as_the_models(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    spec = write_spec(tmp_path, SIX)
    out = load_spec(spec).output
    run_spec(spec, sandbox, out=out)
    changed = sorted(out.rglob("*.png"))[0]
    changed.write_bytes(changed.read_bytes()[:-1] + b"!")  # same size, other bytes
    dest = tmp_path / "dataset"
    code, _, err = run_cli("export", str(spec), "--format", "hf", "--to", str(dest))
    assert code == 0
    assert "5 of the 6 planned predictions are here; missing: 1 files missing or changed" in err
    assert len(list((dest / "pics").glob("*.png"))) == 3


# A field no table row keeps (`input`), or one only the hf layout reads (`target`, its
# folders), malformed: found as the table is read (as `status` and `report` find it), said as
# they say it (the journal, the key), not as an internal error, and nothing is written.
@pytest.mark.parametrize(
    ("fmt", "field"), [("hf", "target"), ("hf", "input"), ("jsonl", "input"), ("csv", "input")]
)
def test_a_malformed_record_leaves_no_export(
    run_folder: Path, run_cli: RunCli, fmt: str, field: str
) -> None:
    journal = load_spec(run_folder / "spec.yaml").output / "manifest.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    last = max(at for at, line in enumerate(lines) if at and json.loads(line)["job"] == "words")
    record = json.loads(lines[last])
    lines[last] = json.dumps({**record, field: 5}) + "\n"
    journal.write_text("".join(lines))
    (run_folder / "out").mkdir()
    dest = run_folder / "out" / ("dataset" if fmt == "hf" else f"rows.{fmt}")
    code, out, err = run_cli(
        "export", str(run_folder / "spec.yaml"), "--format", fmt, "--to", str(dest)
    )
    assert (code, out) == (1, "")
    assert err == f"batchrun: {journal}: a malformed record for key {record['key']!r}\n"
    assert list((run_folder / "out").iterdir()) == []


def test_a_record_edited_in_place_after_the_table_was_kept_is_said_so(
    run_folder: Path, run_cli: RunCli
) -> None:
    # The table kept from an earlier export is taken again (the journal's size and the bytes
    # its hashes cover are the same), so the line changed in the middle is first read as its
    # row is written: said as a record that does not read back, not as an internal error.
    spec = str(run_folder / "spec.yaml")
    assert run_cli("export", spec, "--format", "jsonl", "--to", str(run_folder / "a.jsonl"))[0] == 0
    journal = load_spec(run_folder / "spec.yaml").output / "manifest.jsonl"
    text = journal.read_bytes()
    starts, at = [], 0
    for line in text.splitlines(keepends=True):
        starts.append((at, line.rstrip(b"\n")))
        at += len(line)
    newest = {json.loads(line).get("key"): (start, line) for start, line in starts[1:]}
    # The newest line of a key (the one exported), 4 kB or more from either end of the journal
    start, line = next(
        (start, line)
        for start, line in newest.values()
        if start >= 4096 and len(text) - start - len(line) >= 4096
    )
    record = json.loads(line)
    bare = json.dumps({**record, "input": 5}, separators=(",", ":")).encode()
    edited = bare[:-1] + b" " * (len(line) - len(bare)) + b"}"  # the same length
    journal.write_bytes(text[:start] + edited + text[start + len(line) :])
    code, out, err = run_cli("export", spec, "--format", "jsonl", "--to", str(run_folder / "b"))
    assert (code, out) == (1, "")
    assert err == (
        f"batchrun: {journal}: cannot read the record of {record['key']} again: "
        "'int' object is not iterable\n"
    )


def test_card_metadata_holds_the_provenance(
    tmp_path: Path,
    sandbox: Sandbox,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    git: Git,
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    spec = write_spec(repo / "specs", "license: cc-by-4.0\n" + textwrap.dedent(SIX).lstrip())
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    commit = git(repo, "rev-parse", "HEAD").strip()
    code, _, _ = run_cli("lock", str(spec), "--base-url", sandbox.base_url)
    assert code == 0
    out = load_spec(spec).output
    run_spec(spec, sandbox, out=out)
    dest = tmp_path / "dataset"
    code, _, _ = run_cli("export", str(spec), "--format", "hf", "--to", str(dest))
    assert code == 0
    meta = card_metadata(dest)
    assert meta["license"] == "cc-by-4.0"
    made = meta["batchrun"]
    assert made["spec"] == {
        "path": "specs/spec.yaml",  # where it is in the repository, not on this machine
        "sha256": hashlib.sha256(spec.read_bytes()).hexdigest(),
    }
    # The lock and the run folder are not tracked: the tree is as committed.
    assert made["git"] == {"commit": commit, "dirty": False}
    lock = spec.with_name("spec.yaml.lock")
    pinned = read_lock(spec)
    assert pinned is not None
    version = pinned.pins["acme/painter"].version
    assert version is not None
    assert len(version) == 64
    assert made["lock"] == {
        "path": "specs/spec.yaml.lock",
        "sha256": hashlib.sha256(lock.read_bytes()).hexdigest(),
        "pins": {pin.model: pin.version for pin in pinned.pins.values()},
    }
    assert made["license"] == "cc-by-4.0"
    assert made["batchrun_version"] == __version__
    assert made["exported_at"].endswith("Z")
    models = {model["job"]: model for model in made["models"]}
    assert models["pics"] == {"job": "pics", "targets": ["acme/painter"], "versions": {version: 4}}
    assert made["api"] == [{"url": sandbox.base_url, "sandbox": False, "predictions": 6}]
    assert made["predictions"] == {"planned": 6, "here": 6, "missing": {}}
    card = (dest / "README.md").read_text()
    assert f"- git commit: {commit}\n" in card
    assert "- license: cc-by-4.0\n" in card
    assert f"- API: {sandbox.base_url} (a real API): 6 predictions\n" in card

    # An edit of a tracked file, not committed: the export says the tree was dirty.
    spec.write_text(spec.read_text() + "# an edit\n")
    code, _, _ = run_cli("export", str(spec), "--format", "hf", "--to", str(dest), "--force")
    assert code == 0
    assert card_metadata(dest)["batchrun"]["git"] == {"commit": commit, "dirty": True}


def test_force_replaces_an_earlier_export_and_nothing_else(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    spec = write_spec(tmp_path, SIX)
    run_spec(spec, sandbox, out=load_spec(spec).output, limit=2)
    dest = tmp_path / "dataset"
    export = ("export", str(spec), "--format", "hf", "--to", str(dest))
    assert run_cli(*export)[0] == 0
    first = sorted(p.name for p in dest.rglob("*"))

    run_spec(spec, sandbox, out=load_spec(spec).output)
    code, _, err = run_cli(*export)
    assert (code, err) == (
        2,
        f"batchrun: --to {dest}: already there and not an empty folder "
        "(--force replaces an earlier export)\n",
    )
    assert sorted(p.name for p in dest.rglob("*")) == first  # untouched

    code, _, err = run_cli(*export, "--force")
    assert (code, err) == (0, f"batchrun: wrote 6 rows in 2 job folders to {dest}\n")
    assert "All 6 planned predictions" in (dest / "README.md").read_text()
    assert len(list((dest / "pics").glob("*.png"))) == 4
    # Nothing of the build or of the old export is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    # A folder batchrun did not write is never replaced, --force or not.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = run_cli("export", str(spec), "--format", "hf", "--to", str(mine), "--force")
    assert code == 2
    assert "--force replaces only an earlier export" in err
    assert (mine / "notes.txt").read_text() == "keep me"


def test_card_text_cannot_break_out_of_its_place(tmp_path: Path) -> None:
    # What a manifest (perhaps edited) or a server says is one escaped line in the card: it
    # cannot end the metadata block, start a heading, or carry HTML.
    hostile = "x\n---\n# owned <img src=x onerror=alert(1)> | `tick`"
    job = HfJob(job=hostile, kind="json", rows=1, predictions=1)
    job.targets.add(hostile)
    job.versions[hostile] += 1
    made = Provenance(hostile, hostile, None, None, None, hostile, hostile)
    card = Card(name=hostile, provenance=made, planned=1, here=1)
    card.apis[hostile, True] += 1
    text = dataset_card([job], card)
    lines = text.splitlines()
    assert [n for n, line in enumerate(lines) if line == "---"] == [0, lines.index("---", 1)]
    body = lines[lines.index("---", 1) + 1 :]
    assert not [line for line in body if line.startswith(("# owned", "---"))]
    # Every Markdown or HTML character is escaped (a backslash before it) in the body.
    shown = "\n".join(body)
    assert "<img src=x onerror=alert(1)>" not in shown
    assert "| `tick`" not in shown
    assert r"\<img src=x onerror=alert\(1\)\> \| \`tick\`" in shown
    meta = yaml.safe_load("\n".join(lines[1 : lines.index("---", 1)]))
    assert meta["pretty_name"] == "x --- # owned <img src=x onerror=alert(1)> | `tick`"


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-aside"])
def test_force_swaps_whole_folders_with_or_without_an_atomic_exchange(
    tmp_path: Path, exchange: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, dest = tmp_path / "new", tmp_path / "dest"
    for folder, text in ((dest, "old"), (new, "new")):
        folder.mkdir()
        (folder / "README.md").write_text(text)
    if not exchange:  # a system without renameat2(RENAME_EXCHANGE): moved aside, then renamed
        monkeypatch.setattr(safefs, "_exchange", lambda first, second: False)
    aside = safefs.swap_folder(new, dest)
    assert (dest / "README.md").read_text() == "new"
    assert (aside / "README.md").read_text() == "old"
    assert aside.parent == tmp_path
    assert not new.exists()


def test_hf_makes_a_key_as_text_only_for_a_row_its_card_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At a million keys, making each key's text to judge its row was a second of an export:
    # a row of text that goes in is judged by its kind, and its key's name needs no check.
    from array import array

    from runfolder import rec, write_run

    from batchrun.manifest.keyrows import KeyRows
    from batchrun.manifest.table import load_table
    from batchrun.readout.export.inclusion import sort_out

    run = tmp_path / "run"
    run.mkdir()
    done = [rec(f"{n:016x}", output=f"text {n}") for n in range(1, 7)]
    write_run(run, [*done, rec("00000000000000ff", status="failed", error="no")])
    table = load_table(run, variables=True)
    rows = array("I", table.rows.values())
    made: list[str] = []
    key_of = KeyRows.key_of
    monkeypatch.setattr(
        KeyRows, "key_of", lambda self, row: made.append(key_of(self, row)) or made[-1]
    )
    card = Card(name="sweep", provenance=Provenance(None, None, None, None, None, "0", "now"))
    by_job = sort_out(table, rows, run, card)
    assert list(by_job) == ["flux"]
    assert list(by_job["flux"][0]) == [table.rows[record.key] for record in done]
    assert card.missing == [("00000000000000ff", "flux", "failed")]
    # Each kind of row judged once by a key of it, and the row the card names
    assert made == ["0000000000000001", "00000000000000ff", "00000000000000ff"]
