"""Links planted in a run folder (by a pull request, or anyone) never carry a write elsewhere, and
a manifest someone edited cannot make batchrun hash what is not a regular file of the run."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest

from batchrun import safefs
from batchrun.errors import StorageError
from batchrun.manifest.records import Record
from batchrun.manifest.state import file_intact
from batchrun.manifest.table import load_index
from batchrun.manifest.writer import FOLDER_LOCK, ManifestWriter, exclusive, new_header
from batchrun.planner.lock import Pin, write_lock
from batchrun.readout.status import write_csv
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

pytestmark = pytest.mark.timeout(30)
EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text("keep me")
    return path


def record(key: str, **changes: object) -> Record:
    base = Record(
        key=key,
        job="flux",
        target={"model": "acme/flux"},
        input={"prompt": "p"},
        vars={},
        repeat=0,
        status="succeeded",
    )
    return base.replace(**changes)


def test_a_link_at_the_manifest_is_replaced_and_never_appended_through(tmp_path: Path) -> None:
    target = victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    manifest = run / "manifest.jsonl"
    manifest.symlink_to(target)
    header = new_header(spec_path=run / "s.yaml", spec_sha256="ab" * 32, name="s", shard=None)
    writer = ManifestWriter.open(manifest, header, load_index(run))
    writer.append(record("a"))
    writer.close()
    assert target.read_text() == "keep me"
    assert not manifest.is_symlink()
    assert len(manifest.read_text().splitlines()) == 2


def test_appending_refuses_a_link(tmp_path: Path) -> None:
    target = victim(tmp_path)
    link = tmp_path / "manifest.jsonl"
    link.symlink_to(target)
    with pytest.raises(StorageError) as caught:
        safefs.open_append(link, None, what="the manifest ")
    assert str(caught.value) == (
        f"cannot write the manifest {link}: it is a link, and batchrun does not write through links"
    )
    assert target.read_text() == "keep me"


def test_a_link_at_the_lock_file_is_replaced(tmp_path: Path) -> None:
    target = victim(tmp_path)
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text("batchrun: 1\njobs:\n  - model: acme/flux\n    input: {prompt: x}\n")
    (tmp_path / "s.yaml.lock").symlink_to(target)
    written = write_lock(load_spec(spec_path), [Pin("acme/flux", "a" * 64)])
    assert target.read_text() == "keep me"
    assert not written.is_symlink()
    assert "acme/flux" in written.read_text()


def test_a_lock_file_beside_a_linked_spec_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        safefs.write_atomically(tmp_path / "x" / "s.yaml.lock", "x", tmp_path / "y")


def test_the_csv_replaces_a_link_and_escapes_formulas(tmp_path: Path) -> None:
    target = victim(tmp_path)
    out = tmp_path / "export.csv"
    out.symlink_to(target)
    hostile = [
        record("=1+2", error='=HYPERLINK("http://x")'),
        record("b", error="+cmd", job="@SUM(A1)"),
        record("c", error="-2", output="\tx"),
        record("d", error="plain"),
    ]
    with safefs.atomic_text_writer(out, None) as handle:  # what `status --csv FILE` writes to
        assert write_csv(hostile, handle) == 4
    assert target.read_text() == "keep me"
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["key"] for row in rows] == ["'=1+2", "b", "c", "d"]
    assert [row["error"] for row in rows] == ['\'=HYPERLINK("http://x")', "'+cmd", "'-2", "plain"]
    assert rows[1]["job"] == "'@SUM(A1)"
    assert rows[2]["output"] == "'\tx"


def test_a_manifest_naming_dev_zero_is_not_hashed(tmp_path: Path) -> None:
    started = time.monotonic()
    assert not file_intact(tmp_path, "/dev/zero", 0, EMPTY_SHA)
    assert not file_intact(tmp_path, "../../../../../../dev/zero", 0, EMPTY_SHA)
    assert time.monotonic() - started < 1


def test_a_fifo_in_the_run_folder_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "a.png")
    assert not file_intact(tmp_path, "a.png", 0, EMPTY_SHA)


def test_a_file_outside_the_run_folder_is_not_intact(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "outside.png").write_bytes(b"")
    (run / "inside.png").symlink_to(tmp_path / "outside.png")
    assert not file_intact(run, "../outside.png", 0, EMPTY_SHA)
    assert not file_intact(run, "inside.png", 0, EMPTY_SHA)
    (run / "real.png").write_bytes(b"")
    assert file_intact(run, "real.png", 0, EMPTY_SHA)


def test_temporaries_are_new_files_with_unguessable_names(tmp_path: Path) -> None:
    dest = tmp_path / "report.html"
    with safefs.atomic_writer(dest, tmp_path) as handle:
        handle.write(b"page")
        (tmp_name,) = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert tmp_name.startswith(".report.html.")
    assert len(tmp_name) > len(".report.html..tmp") + 8
    assert os.listdir(tmp_path) == ["report.html"]
    assert dest.read_bytes() == b"page"


def test_a_link_planted_at_the_manifests_lock_file_is_refused_not_followed(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    outside = tmp_path / "outside" / "created.txt"
    outside.parent.mkdir()
    (run / "manifest.jsonl.lock").symlink_to(outside)
    with pytest.raises(StorageError) as caught, exclusive(run / "manifest.jsonl"):
        pass
    assert str(caught.value) == (
        f"cannot write the lock {run / 'manifest.jsonl.lock'}: it is a link, and batchrun does not"
        " write through links; remove it and run again"
    )
    assert not outside.exists()  # opening it to append used to create the file it points to


STALE = [
    ".a.png.0123456789ab.part",
    "sub/.b.png.abcdef012345.part",
    ".manifest.jsonl.00ff00ff00ff.tmp",
]


def plant_temporaries(run: Path, outside: Path) -> None:
    """A killed run's temporaries, and what looks like them but is not batchrun's to remove."""
    (run / "sub").mkdir(parents=True)
    for name in STALE:
        (run / name).write_bytes(b"torn")
    (run / "a.part").write_bytes(b"a result whose extension is .part")
    (run / "sub" / ".notes.tmp").write_bytes(b"not a name batchrun makes")
    (run / ".x.png.0123456789ab.part").symlink_to(victim(outside))
    (outside / ".y.png.0123456789ab.part").write_bytes(b"outside")
    (run / "linked").symlink_to(outside, target_is_directory=True)


def test_the_next_run_removes_the_temporaries_a_killed_run_left_and_nothing_else(
    tmp_path: Path,
) -> None:
    run, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    plant_temporaries(run, outside)
    with exclusive(run / "manifest.jsonl"):
        left = sorted(str(p.relative_to(run)) for p in run.rglob("*") if not p.is_dir())
    assert left == [
        ".batchrun-run.lock",
        ".x.png.0123456789ab.part",  # a link: not a file batchrun wrote
        "a.part",
        "manifest.jsonl.lock",
        "sub/.notes.tmp",
    ]
    assert (outside / "victim.txt").read_text() == "keep me"
    assert (outside / ".y.png.0123456789ab.part").exists()  # behind a linked folder: not entered


def test_temporaries_stay_while_another_shards_run_writes_in_the_folder(tmp_path: Path) -> None:
    run, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    with exclusive(run / "manifest-shard-1-of-2.jsonl"):
        plant_temporaries(run, outside)  # as the other shard's downloads would be, in flight
        with exclusive(run / "manifest-shard-2-of-2.jsonl"):
            assert all((run / name).exists() for name in STALE)
    assert (run / FOLDER_LOCK).is_file()


def test_downloads_and_atomic_writes_name_their_temporaries_recognisably(tmp_path: Path) -> None:
    names = [
        safefs.temporary_for(tmp_path / "a.png", ".part"),
        safefs.temporary_for(tmp_path / "m"),
    ]
    for path in names:
        path.write_bytes(b"")
    assert sorted(safefs.remove_temporaries(tmp_path)) == sorted(names)
    assert list(tmp_path.iterdir()) == []


def test_an_edited_manifest_cannot_export_a_file_from_outside_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runfolder import image, rec, write_run

    from batchrun.cli import main
    from batchrun.manifest.records import FileRecord

    secret = tmp_path / "id_rsa.png"
    secret.write_bytes(b"private key")
    run = tmp_path / "run"
    run.mkdir()
    stolen = FileRecord("https://x/1", "../id_rsa.png", "00" * 32, 11)
    write_run(run, [image(run, "ok", "flux/ok.png"), rec("k1", files=(stolen,))])
    dest = tmp_path / "dataset"
    assert main(["export", str(run), "--format", "hf", "--to", str(dest)]) == 1
    assert capsys.readouterr().err == (
        f"batchrun: {run}: the manifest names '../id_rsa.png' for key k1, which is not a file "
        "inside the run folder; nothing was exported\n"
    )
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["id_rsa.png", "run"]


def test_the_csv_export_replaces_a_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    from runfolder import image, write_run

    from batchrun.cli import main

    target = victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    write_run(run, [image(run, "ok", "flux/ok.png", error="=cmd")])
    out = tmp_path / "out.csv"
    out.symlink_to(target)
    assert main(["export", str(run), "--format", "csv", "--to", str(out)]) == 0
    assert target.read_text() == "keep me"
    assert not out.is_symlink()


def test_a_key_that_is_a_path_cannot_put_an_export_file_outside_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runfolder import image, write_run

    from batchrun.cli import main

    run = tmp_path / "a" / "b" / "run"
    run.mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    target = victim(tmp_path / "outside")
    planted = image(run, "ok", "flux/ok.png").replace(key="../../../outside/victim.txt")
    write_run(run, [planted])
    dest = tmp_path / "a" / "b" / "dataset"
    assert main(["export", str(run), "--format", "hf", "--to", str(dest)]) == 1
    assert capsys.readouterr().err == (
        f"batchrun: {run}: the manifest names the key '../../../outside/victim.txt', which is"
        " not a key batchrun makes; nothing was exported\n"
    )
    assert target.read_text() == "keep me"
    assert not dest.exists()


@pytest.mark.parametrize("key", ["../../../outside/victim", "a b"])
def test_a_key_that_is_not_a_key_is_refused_for_a_text_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    # A prediction of text has no file to check: its key's name is checked all the same (it
    # is the one not among the 16 hex digits batchrun makes), after keys that are.
    from runfolder import rec, write_run

    from batchrun.cli import main

    run = tmp_path / "run"
    run.mkdir()
    write_run(run, [rec("00000000000000aa", output="a"), rec(key, output="b")])
    dest = tmp_path / "dataset"
    assert main(["export", str(run), "--format", "hf", "--to", str(dest)]) == 1
    assert capsys.readouterr().err == (
        f"batchrun: {run}: the manifest names the key {key!r}, which is"
        " not a key batchrun makes; nothing was exported\n"
    )
    assert not dest.exists()


def test_a_link_planted_at_the_preflight_records_temporary_is_not_written_through(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runs import TOKEN, write_spec

    from batchrun.cli import main

    target = victim(tmp_path)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: a fox}
        """,
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "preflight.json.part").symlink_to(target)
    (run / "preflight.json").symlink_to(target)
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    argv = ["run", str(spec), "--base-url", sandbox.base_url, "--out", str(run), "--quiet"]
    assert main(argv) == 0
    assert target.read_text() == "keep me"
    assert not (run / "preflight.json").is_symlink()
    assert '"batchrun_preflight": 1' in (run / "preflight.json").read_text()


SPEC_HEAD = "batchrun: 1\njobs:\n  - model: acme/flux\n"


@pytest.mark.parametrize(
    ("body", "fifo", "message"),
    [
        (SPEC_HEAD + "    input: {prompt: hi}\n", "spec.yaml", "cannot read this file"),
        (
            SPEC_HEAD + "    input: {prompt: '${p}'}\n    matrix:\n      p: {lines: p.txt}\n",
            "p.txt",
            "not a regular file",
        ),
        (
            SPEC_HEAD + "    input: {prompt: '${p}'}\n    matrix:\n      p: {json: p.json}\n",
            "p.json",
            "not a regular file",
        ),
        (SPEC_HEAD + "    input: {image: {file: in.png}}\n", "in.png", "not a regular file"),
        (
            SPEC_HEAD.replace("jobs:", "prices: p.yaml\njobs:") + "    input: {prompt: hi}\n",
            "p.yaml",
            "cannot read 'p.yaml'",
        ),
    ],
    ids=["spec", "lines", "json", "file-input", "prices"],
)
def test_a_fifo_where_a_file_is_read_is_refused_not_waited_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, fifo: str, message: str
) -> None:
    from batchrun.cli import main

    spec = tmp_path / "spec.yaml"
    if fifo != "spec.yaml":
        spec.write_text(body)
    os.mkfifo(tmp_path / fifo)
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "not a regular file" in err


def test_a_fifo_planted_at_the_preflight_record_is_not_waited_on(tmp_path: Path) -> None:
    from batchrun.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_HEAD + "    input: {prompt: hi}\n")
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "preflight.json")  # `plan` reads the record offline: it used to wait here
    assert main(["plan", str(spec), "--out", str(run)]) == 0


def test_a_fifo_as_the_lock_or_the_manifests_spec_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runfolder import image, write_run

    from batchrun.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_HEAD + "    input: {prompt: hi}\n")
    os.mkfifo(tmp_path / "spec.yaml.lock")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_" + "a" * 37)
    assert main(["run", str(spec), "--base-url", "http://127.0.0.1:9"]) == 2
    assert "spec.yaml.lock:1:1: cannot read it: not a regular file" in capsys.readouterr().err
    # A manifest whose header names a FIFO as its spec: status counts every record instead.
    run = tmp_path / "run"
    run.mkdir()
    write_run(run, [image(run, "ok", "flux/ok.png")])
    manifest = run / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    header = json.loads(lines[0])
    os.mkfifo(tmp_path / "hang.yaml")
    header["spec"] = str(tmp_path / "hang.yaml")
    manifest.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    for command in (["status"], ["report"], ["export", "--format", "csv", "--to", "-"]):
        assert main([command[0], str(run), *command[1:]]) in (0, 1), command
    capsys.readouterr()


def test_an_oversized_json_value_file_is_refused_before_it_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import batchrun.spec.sources
    from batchrun.cli import main

    # A small stand-in for the limit: the rule under test, at a size a test writes fast.
    monkeypatch.setattr(batchrun.spec.sources, "MAX_JSON_FILE_BYTES", 1000)
    (tmp_path / "p.json").write_text(json.dumps(["x" * 10] * 200))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC_HEAD + "    input: {prompt: '${p}'}\n    matrix:\n      p: {json: p.json}\n"
    )
    assert main(["validate", str(spec)]) == 2
    assert "cannot read this file: larger than 1,000 bytes" in capsys.readouterr().err


def test_results_never_hands_out_a_path_outside_the_run_folder(tmp_path: Path) -> None:
    # Decided (docs/SECURITY.md): a path that leaves the run folder is left out of `paths`.
    from runfolder import image, rec, write_run

    import batchrun
    from batchrun.manifest.records import FileRecord

    secret = tmp_path / "id_rsa"
    secret.write_text("private key")
    run = tmp_path / "run"
    run.mkdir()
    (run / "linked.png").symlink_to(secret)
    stolen = (
        FileRecord("https://x/1", "../id_rsa", "00" * 32, 11),
        FileRecord("https://x/2", "linked.png", "00" * 32, 11),
    )
    write_run(run, [image(run, "ok", "flux/ok.png"), rec("k1", files=stolen)])
    rows = {row["key"]: row["paths"] for row in batchrun.results(run)}
    assert rows == {"ok": [str(run / "flux" / "ok.png")], "k1": []}


def test_names_that_differ_only_by_case_are_two_files(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decided (docs/SECURITY.md): batchrun's names are exact. Two outputs named Fox and fox are
    # two files here; where a file system folds case, the second overwrites the first and the
    # recorded sha256 says so (status counts the first as changed; the next run fetches it).
    from runs import TOKEN, write_spec

    from batchrun.cli import main
    from batchrun.manifest.reader import load_records

    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        files: "${name}-${index}${ext}"
        jobs:
          - model: acme/painter
            input: {prompt: "${name}"}
            matrix:
              name: [Fox, fox]
        """,
    )
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    out = tmp_path / "run"
    argv = ["run", str(spec), "--base-url", sandbox.base_url, "--out", str(out), "--quiet"]
    assert main(argv) == 0
    _, records = load_records(out)
    assert sorted(f.path for r in records.values() for f in r.files) == ["Fox-0.png", "fox-0.png"]
