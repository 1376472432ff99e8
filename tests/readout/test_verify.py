"""`batchrun verify`: a run folder against its spec, a dataset against its export record, through
the real command line, after sandbox runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from runs import RunCli, records, run_spec, write_spec

from batchrun.manifest import tablecache
from batchrun.manifest.table import load_table
from batchrun.manifest.tablecache import TABLE_CACHE
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

SPEC = """
    batchrun: 1
    name: pets
    jobs:
      - id: pics
        model: acme/painter
        input: {prompt: "a ${x}", seed: 1, sandbox_status: "${s}"}
        matrix: {s: [succeeded], x: [fox, owl, cat]}
      - id: captions
        model: meta/llama-chat
        input: {prompt: "Tell me about ${topic}"}
        matrix: {topic: [foxes, boats]}
    """


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """The sandbox playing a real API, so that what it makes counts as a model's output; the
    sandbox's own results are refused by verify, and tested as such."""
    return make_sandbox(announce=False)


def ran(tmp_path: Path, sandbox: Sandbox, body: str = SPEC, **options: object) -> Path:
    """The spec, run against the sandbox into the folder it names."""
    spec = write_spec(tmp_path, body)
    run_spec(spec, sandbox, out=load_spec(spec).output, **options)
    return spec


def by_job(spec: Path, job: str) -> list[str]:
    """The keys of a job that have a record, sorted."""
    return sorted(r.key for r in records(load_spec(spec).output).values() if r.job == job)


def test_a_whole_run_verifies_by_spec_and_by_folder(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    spec = ran(tmp_path, sandbox)
    folder = load_spec(spec).output
    code, out, err = run_cli("verify", str(spec))
    assert (code, out) == (0, "")
    assert err.startswith(f"batchrun: {folder}: verified: all 5 planned predictions succeeded, ")
    assert "3 files (" in err
    # The folder alone: its manifest names the spec.
    assert run_cli("verify", str(folder))[:2] == (0, "")
    code, out, _ = run_cli("verify", str(spec), "--json")
    found = json.loads(out)
    assert (code, found["ok"], found["kind"], found["planned"]) == (0, True, "run", 5)
    assert (found["succeeded"], found["files"], found["problems"]) == (5, 3, [])


def test_a_changed_and_a_missing_file_are_named(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    spec = ran(tmp_path, sandbox)
    folder = load_spec(spec).output
    pics = sorted(
        (r for r in records(folder).values() if r.job == "pics"), key=lambda r: r.files[0].path
    )
    same_size, longer, gone = (record.files[0] for record in pics)
    path = folder / same_size.path
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    (folder / longer.path).write_bytes((folder / longer.path).read_bytes() + b"more")
    (folder / gone.path).unlink()
    code, out, err = run_cli("verify", str(spec))
    assert code == 1
    assert sorted(out.splitlines()) == sorted(
        [
            f"{same_size.path}: its sha256 is not the one recorded (same size, other bytes) "
            f"(key {pics[0].key})",
            f"{longer.path}: {longer.bytes + 4:,} bytes, recorded {longer.bytes:,} "
            f"(key {pics[1].key})",
            f"{gone.path}: missing (key {pics[2].key})",
        ]
    )
    assert err.startswith(f"batchrun: {folder}: 3 problems; 3 files (")
    code, out, _ = run_cli("verify", str(spec), "--json")
    found = json.loads(out)
    assert (code, found["ok"], found["succeeded"]) == (1, False, 2)
    assert {(p["subject"], p["kind"]) for p in found["problems"]} == {
        (same_size.path, "file"),
        (longer.path, "file"),
        (gone.path, "file"),
    }


def test_a_partial_run_names_every_key_not_done(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    # Stopped after 2 of 5, as Ctrl-C leaves a run: the rest were never created.
    spec = ran(tmp_path, sandbox, limit=2)
    out_dir = load_spec(spec).output
    done = records(out_dir)
    assert len(done) == 2
    code, out, err = run_cli("verify", str(spec))
    assert code == 1
    planned = [json.loads(line) for line in run_cli("plan", str(spec), "--json")[1].splitlines()]
    assert sorted(out.splitlines()) == sorted(
        f"{p['key']}: not started (job {p['job']})" for p in planned if p["key"] not in done
    )
    assert len(out.splitlines()) == 3
    assert err.startswith(f"batchrun: {out_dir}: 3 problems; 2 files (")


def test_a_failed_prediction_is_a_problem(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    spec = ran(tmp_path, sandbox, SPEC.replace("s: [succeeded]", "s: [failed]"))
    failed = by_job(spec, "pics")
    code, out, _ = run_cli("verify", str(spec))
    assert code == 1
    assert sorted(out.splitlines()) == [
        f"{key}: failed (job pics): sandbox: failed as asked (sandbox_status)" for key in failed
    ]


def test_a_dataset_verifies_until_it_is_tampered_with(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    spec = ran(tmp_path, sandbox)
    dest = tmp_path / "dataset"
    assert run_cli("export", str(spec), "--format", "hf", "--to", str(dest))[0] == 0
    code, out, err = run_cli("verify", str(dest))
    assert (code, out) == (0, "")
    assert err.startswith(f"batchrun: {dest}: verified: all 5 planned predictions succeeded, ")
    # 3 pictures, 2 row files and the card
    assert "6 files (" in err
    assert "its batchrun-export.jsonl has sha256 " in err

    rows = dest / "captions" / "data.jsonl"
    rows.write_text(rows.read_text().replace("foxes", "fixes"))  # a row edited, same size
    picture = sorted((dest / "pics").glob("*.png"))[0]
    picture.unlink()  # a file removed
    (dest / "pics" / "extra.png").write_bytes(b"\x89PNG")  # a file added
    card = dest / "README.md"
    size = card.stat().st_size
    card.write_text(card.read_text().replace("All 5 planned", "All 50 planned"))  # the card
    code, out, _ = run_cli("verify", str(dest))
    assert code == 1
    assert sorted(out.splitlines()) == sorted(
        [
            f"README.md: {size + 1:,} bytes, recorded {size:,}",
            "captions/data.jsonl: its sha256 is not the one recorded (same size, other bytes)",
            "pics/extra.png: not in batchrun-export.jsonl: added after the export",
            f"pics/{picture.name}: missing",
        ]
    )


def out_line(out: str, subject: str) -> str:
    """The one line of `out` about `subject`."""
    found = [line for line in out.splitlines() if line.startswith(f"{subject}: ")]
    assert len(found) == 1, out
    return found[0]


def test_a_dataset_of_a_partial_run_does_not_verify(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    spec = ran(tmp_path, sandbox, limit=3)
    dest = tmp_path / "dataset"
    assert run_cli("export", str(spec), "--format", "hf", "--to", str(dest))[0] == 0
    code, out, _ = run_cli("verify", str(dest), "--json")
    found = json.loads(out)
    assert (code, found["ok"], found["kind"], found["planned"], found["succeeded"]) == (
        1,
        False,
        "dataset",
        5,
        3,
    )
    keys = sorted(p["subject"] for p in found["problems"])
    assert {p["kind"] for p in found["problems"]} == {"missing"}
    recorded = set(records(load_spec(spec).output))
    assert len(keys) == 2
    assert not set(keys) & recorded
    assert all(
        p["detail"] == "not in the dataset: not started (job captions)" for p in found["problems"]
    )


def test_what_is_neither_a_run_nor_a_dataset_is_a_usage_error(
    tmp_path: Path, run_cli: RunCli
) -> None:
    assert run_cli("verify", str(tmp_path / "nothing")) == (
        2,
        "",
        f"batchrun: {tmp_path / 'nothing'}: no such run folder, spec file or dataset\n",
    )
    code, _, err = run_cli("verify", str(tmp_path))
    assert code == 2
    assert "neither a run folder (no manifest) nor a dataset" in err


def test_a_record_naming_a_file_outside_the_dataset_is_not_read(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    spec = ran(tmp_path, sandbox, limit=1)
    dest = tmp_path / "dataset"
    assert run_cli("export", str(spec), "--format", "hf", "--to", str(dest))[0] == 0
    record = dest / "batchrun-export.jsonl"
    lines = record.read_text().splitlines()
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    outside = {"file": "../secret.txt", "bytes": 9, "sha256": "0" * 64}
    record.write_text("\n".join([lines[0], json.dumps(outside), *lines[1:]]) + "\n")
    header = json.loads(lines[0])
    header["files"] += 1
    record.write_text(record.read_text().replace(lines[0], json.dumps(header), 1))
    code, out, _ = run_cli("verify", str(dest))
    assert code == 1
    assert "../secret.txt: outside the dataset's folder: not read" in out.splitlines()


def test_a_sandbox_run_and_its_dataset_are_refused_unless_allowed(
    tmp_path: Path, run_cli: RunCli
) -> None:
    # The README's quick start: `run --sandbox` (the built-in emulator, in this process).
    spec = write_spec(tmp_path, SPEC)
    out = tmp_path / "tried"
    assert run_cli("run", str(spec), "--sandbox", "--out", str(out), "-q")[0] == 0
    made = records(out)
    assert len(made) == 5
    code, stdout, err = run_cli("verify", str(out))
    assert code == 1
    assert sorted(stdout.splitlines()) == sorted(
        f"{key}: made by the sandbox, not a model (job {record.job})"
        for key, record in made.items()
    )
    assert err.startswith(f"batchrun: {out}: 5 problems; 3 files (")
    code, stdout, err = run_cli("verify", str(out), "--allow-sandbox")
    assert (code, stdout) == (0, "")
    assert err.startswith(f"batchrun: {out}: verified: all 5 planned predictions succeeded")

    # Exported, it says so, and verify refuses the dataset the same way.
    dest = tmp_path / "dataset"
    code, _, err = run_cli("export", str(out), "--format", "hf", "--to", str(dest))
    assert code == 0
    assert "batchrun: 5 predictions in it were made by the sandbox" in err
    card = (dest / "README.md").read_text()
    assert "**5 of these predictions were made by the sandbox**" in card
    api = yaml.safe_load(card.split("---\n")[1])["batchrun"]["api"]
    assert [(entry["sandbox"], entry["predictions"]) for entry in api] == [(True, 5)]
    code, stdout, _ = run_cli("verify", str(dest))
    assert code == 1
    assert sorted(line.split(":")[0] for line in stdout.splitlines()) == sorted(made)
    assert all(" made by the sandbox at http://127.0.0.1:" in line for line in stdout.splitlines())
    assert run_cli("verify", str(dest), "--allow-sandbox")[:2] == (0, "")


def test_a_spec_only_the_sandbox_ran_is_not_verified_and_says_where_those_runs_are(
    tmp_path: Path, run_cli: RunCli
) -> None:
    # The quick start as the README has it: `run --sandbox` writes beside the spec's folder.
    spec = write_spec(tmp_path, SPEC)
    assert run_cli("run", str(spec), "--sandbox", "-q")[0] == 0
    code, out, err = run_cli("verify", str(spec))
    assert code == 1
    assert len(out.splitlines()) == 5
    assert all(": not started (job " in line for line in out.splitlines())
    real = load_spec(spec).output
    assert err.splitlines() == [
        f"batchrun: {real}: 5 problems; 0 files (0 B) checked",
        f"batchrun: the sandbox's runs of this spec are in {real}-sandbox; verify that folder "
        "with --allow-sandbox to check them",
    ]
    assert run_cli("verify", f"{real}-sandbox", "--allow-sandbox")[:2] == (0, "")


def test_verify_proves_the_kept_table_by_every_journal_byte_unless_quick(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table kept on disk (.batchrun-table.bin) looks at a journal's identity and the bytes
    at its ends, not at every byte; verify's word is a proof, so it hashes every byte the table
    was read from, and reads the journals whole when they differ."""
    spec = ran(tmp_path, sandbox)
    folder = load_spec(spec).output
    # Only the journal's first and last byte are looked at: an edit in place between them, of
    # the same length, leaves the cache standing.
    monkeypatch.setattr(tablecache, "HEAD_CHECKED", 1)
    monkeypatch.setattr(tablecache, "TAIL_CHECKED", 1)
    assert run_cli("status", str(spec))[0] == 0  # keeps the table on disk, so marked
    assert (folder / TABLE_CACHE).exists()
    journal = folder / "manifest.jsonl"
    data = journal.read_bytes()
    at = data.rfind(b'"status":"succeeded"')  # some key's newest line
    key = json.loads(data[data.rfind(b"\n", 0, at) + 1 : data.find(b"\n", at)])["key"]
    with journal.open("r+b") as handle:  # the same file: its inode unchanged
        handle.seek(at)
        handle.write(b'"status":"failed"   ')
    # The cache still stands for the journal as it was; a proof of its digest sees the edit.
    cached, whole = load_table(folder), load_table(folder, prove=True)
    assert cached.status_of(cached.rows[key]) == "succeeded"
    assert whole.status_of(whole.rows[key]) == "failed"
    code, out, _ = run_cli("verify", str(spec), "--json")
    problems = json.loads(out)["problems"]
    assert code == 1
    assert [(problem["subject"], problem["kind"]) for problem in problems] == [(key, "failed")]
