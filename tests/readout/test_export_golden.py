"""`batchrun export` of one varied run folder, byte for byte as the code of commit 5e6682e wrote
it (before export took its columns from the table kept on disk and its rows from each line
without a `Record`: issue 22).

The folder has three jobs with different variables (a matrix of text, unicode, a variable named
like a fixed column, `status`, and values of every kind: an integer beyond 64 bits, a float,
true, null, a list, the text "10" beside 10; a JSON Lines source of mappings, flattened, one
nested and one empty; a job with none), two journals, retried keys, failed, canceled, in-flight
and not-created keys, images with files, token lists, JSON outputs, formulas, costs with and
without a price and an earlier attempt's, lines without an API and the sandbox's, and keys the
spec no longer plans (one not a key batchrun makes, one whose mapping value has its fields in
another order than a planned key's equal value). Each export is run twice (the second reads the
table the first kept), with and without `--all`, and once more after the spec is gone.

An output that changes on purpose is written again with
`BATCHRUN_GOLDEN=write pytest THIS_FILE`, and the diff is reviewed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from forks import forks_recorded, stopped_by_ctrl_c
from runfolder import REAL, SANDBOX, GoldenJournals, png, stamp
from runs import RunCli

from batchrun import secondcore
from batchrun.manifest import tablerow, tablevalues
from batchrun.manifest.records import Record
from batchrun.manifest.table import load_table
from batchrun.manifest.tablecache import TABLE_CACHE
from batchrun.manifest.widevalues import Wide
from batchrun.planner.expand import iter_plan
from batchrun.readout.export import origin, twocores
from batchrun.readout.export.rows import table_columns
from batchrun.spec.load import load_spec

GOLDEN = Path(__file__).parent / "golden"
SPEC = """\
batchrun: 1
name: golden-export
price: {per_second: 0.0014}
jobs:
  - id: flux
    model: acme/flux
    input: {prompt: "${subject}, ${status}", seed: "${seed}"}
    matrix:
      subject: ["un renard roux", "日本語の猫", "-minus"]
      status: [draft, final]
      seed: [10, "10", 1.5, true, 1180591620717411303424, null, [1, "two"]]
  - id: chat
    model: acme/chat
    input: {prompt: "${row.q}"}
    matrix:
      row: {jsonl: rows.jsonl}
  - id: plain
    model: acme/plain
    input: {prompt: "no variables here"}
"""
ROWS = [
    {"q": "why is the sky blue?", "lang": "en"},
    {"q": "pourquoi le ciel est-il bleu ? — ç", "lang": "fr", "meta": {"level": 2, "tags": ["a"]}},
    {"q": "=1+1", "lang": "en", "meta": {}},
    {"q": "wie?\ttab", "lang": "de", "extra": "ü"},
]
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"


def _line(n: int, record: Record, run: Path) -> dict[str, Any]:
    """The record of the plan's `n`th key as a line, in one of many shapes."""
    if record.job == "flux":
        path = f"flux/{record.key}.png"
        (run / "flux").mkdir(exist_ok=True)
        data = png(4 + n % 3, 3)
        (run / path).write_bytes(data)
        url = f"https://files.example/{record.key}.png"
        line = record.replace(output=[url]).to_json()
        sha256 = hashlib.sha256(data).hexdigest()
        line["files"] = [{"url": url, "path": path, "sha256": sha256, "bytes": len(data)}]
    elif record.job == "chat":
        outputs: list[Any] = [["Hel", "lo ", "wörld"], {"text": "ok", "n": n}, "=cmd|' /C calc'!A0"]
        line = record.replace(output=outputs[n % 3]).to_json()
    else:
        line = record.replace(output={"answer": 42, "list": [1.0, 2, None]}).to_json()
    line["api"] = SANDBOX if n % 9 == 2 else REAL
    metrics: list[Any] = [
        {"predict_time": 0.5 + n / 8},
        {"predict_time": 3, "input_token_count": 12, "output_token_count": 40},
        {"predict_time": True, "input_token_count": "12"},
        {},
    ]
    line["metrics"] = metrics[n % 4]
    if n % 7 == 3:
        line.update(status="failed", error=f"@CUDA out of memory <{n}> ü", output=None, files=[])
    elif n % 11 == 4:
        line.update(status="processing", output=None, completed_at=None, files=[])
    elif n % 10 == 6:
        line.update(status="canceled", output=None, files=[], error="-canceled")
    elif n % 17 == 8:
        line.update(status="error", not_created=True, output=None, files=[], error="refused")
    elif n % 13 == 5 and line["files"]:
        line["missing"] = [line["files"][0]["url"]]
        line["files"] = []
    if n % 6 == 1:
        del line["api"]  # written before records kept it
    if n % 5 == 2:
        line.pop("cost", None)
        line.pop("price", None)
        line["version"] = None
    elif n % 5 == 3:
        line["cost"] = 0.0000000014 * n
        line["cost_before"] = 0.0000000016
    return line


def write_folder(root: Path) -> Path:
    """The spec and its run folder (see the module's docstring); returns the spec's path."""
    (root / "rows.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS), encoding="utf-8"
    )
    (root / "spec.yaml").write_text(SPEC, encoding="utf-8")
    spec = load_spec(root / "spec.yaml")
    run = spec.output
    run.mkdir(parents=True)
    journals = GoldenJournals(spec)
    main = journals.main
    # A key the spec no longer plans, first in the journal: its row value equals the first
    # exported chat key's, its fields in the other order.
    turned = dict(reversed(ROWS[1].items()))
    main.append(
        {
            **Record(
                key="00000000000000bb",
                job="chat",
                target={"model": "acme/chat"},
                input={"prompt": "old"},
                vars={"row": turned},
                repeat=0,
                status="succeeded",
                output="old answer",
            ).to_json(),
            "written_ns": 900,
        }
    )
    for n, planned in enumerate(iter_plan(spec)):
        record = Record.planned(planned, "succeeded").replace(
            prediction_id=f"p{n:04d}",
            version=VERSION,
            created_at=stamp(2 * n),
            started_at=stamp(2 * n),
            completed_at=stamp(2 * n + 1),
            attempts=1,
            cost=0.0007 + n / 10_000,
            price={"per_second": 0.0014},
        )
        journals.add(n, _line(n, record, run))
    journals.retry()
    for key, variables in (
        ("00000000000000aa", {"subject": "an old subject", "old_axis": 3, "status": "x"}),
        ("legacy_key_1", {"input": "a variable named input", "row": {"q": "gone", "z": 1}}),
    ):
        gone = Record(
            key=key,
            job="flux",
            target={"model": "acme/flux"},
            input={"prompt": "an old prompt"},
            vars=variables,
            repeat=0,
            status="succeeded",
            output="gone",
            created_at=stamp(300),
            completed_at=stamp(301),
        ).to_json()
        journals.written += 1
        main.append({**gone, "api": REAL, "written_ns": journals.written})
    journals.write(run)
    return spec.path


def exports(root: Path, run_cli: RunCli) -> dict[str, bytes]:
    """Every export of the folder, by name: jsonl and csv, with and without --all, each twice
    (the second from the table the first kept); the `hf` folder's row files; then, once the
    spec is gone, every record."""
    spec = write_folder(root)
    run = load_spec(spec).output
    out = root / "out"
    out.mkdir()
    written: dict[str, bytes] = {}

    def export(name: str, target: Path, fmt: str, *more: str) -> None:
        dest = out / f"{name}.{fmt}"
        code, _, err = run_cli("export", str(target), "--format", fmt, "--to", str(dest), *more)
        assert code == 0, err
        written[f"{name}.{fmt}"] = dest.read_bytes()

    for fmt in ("jsonl", "csv"):
        export("plan", spec, fmt)
        assert (run / TABLE_CACHE).exists()  # with the variables: the next export parses none
        export("plan-again", spec, fmt)
        export("all", spec, fmt, "--all")
        export("all-again", run, fmt, "--all")
    code, _, err = run_cli("export", str(spec), "--format", "hf", "--to", str(out / "hf"))
    assert code == 0, err
    for path in sorted((out / "hf").rglob("*.jsonl")):
        if path.name != "batchrun-export.jsonl":
            written[f"hf-{path.parent.name}-{path.name}"] = path.read_bytes()
    spec.unlink()
    for fmt in ("jsonl", "csv"):
        export("no-spec", run, fmt)
    return written


AGAIN = {"plan-again": "plan", "all-again": "all"}


def test_exports_are_as_before(tmp_path: Path, run_cli: RunCli) -> None:
    assert_as_before(exports(tmp_path, run_cli))


def test_exports_are_as_before_when_no_variable_keeps_its_values(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past WIDE_VALUES distinct values a variable keeps their digests, not the values (a text
    of its own per key), and whether any is a mapping: with the limit at 1, every variable of
    the folder with values of more than one kind or not integers is such a one, one of
    mappings among them, and every export is the same."""
    monkeypatch.setattr(tablevalues, "WIDE_VALUES", 1)
    assert_as_before(exports(tmp_path, run_cli))
    table = load_table(tmp_path / "runs" / "golden-export", variables=True)
    wide = [values for values in table.variables.values() if values.wide]
    assert len(wide) > 1  # every variable of more than one value, ints aside
    assert any(isinstance(values.raws, Wide) and values.raws.mapping for values in wide)


def test_the_columns_of_mappings_come_from_the_table_without_reading_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table keeps the fields of each key's own mapping, in its order (the golden rows list
    theirs in two orders), so an export's columns read no line, wide variables or not."""
    run = load_spec(write_folder(tmp_path)).output
    rows = list(load_table(run, variables=True).rows.values())
    expected = table_columns(load_table(run, variables=True), rows)
    assert "row.lang" in expected
    for wide in (False, True):
        monkeypatch.setattr(tablevalues, "WIDE_VALUES", 1 if wide else 4096)
        table = load_table(run, variables=True)
        assert table.variables["row"].wide == wide
        monkeypatch.setattr(table, "lines_of", None)  # called: a TypeError
        monkeypatch.setattr(table, "record_at", None)
        monkeypatch.setattr(table, "_line_of", None)
        assert table_columns(table, rows) == expected


def assert_as_before(made: dict[str, bytes]) -> None:
    """Each export `exports` made is its golden file (or, read again, the first export's)."""
    for name, data in made.items():
        stem, _, fmt = name.partition(".")
        if stem in AGAIN:
            assert data == made[f"{AGAIN[stem]}.{fmt}"], name
            continue
        golden = GOLDEN / f"export-{name}"
        if os.environ.get("BATCHRUN_GOLDEN") == "write":
            golden.parent.mkdir(exist_ok=True)
            golden.write_bytes(data)
        assert data == golden.read_bytes(), name
    assert len(made) == 12


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_the_golden_folder_is_varied(tmp_path: Path, run_cli: RunCli, fmt: str) -> None:
    """What the golden files must hold for the test above to mean something."""
    spec = write_folder(tmp_path)
    dest = tmp_path / f"rows.{fmt}"
    assert run_cli("export", str(spec), "--format", fmt, "--to", str(dest), "--all")[0] == 0
    if fmt == "csv":
        return
    rows = [json.loads(line) for line in dest.read_text(encoding="utf-8").splitlines()]
    assert list(rows[0])[:9] == [
        "key",
        "job",
        "subject",
        "var.status",
        "seed",
        "row.q",
        "row.lang",
        "row.meta.level",
        "row.meta.tags",
    ]
    assert {"var.input", "old_axis", "row.z", "row.extra", "row.meta"} <= set(rows[0])
    assert {row["status"] for row in rows} == {
        "succeeded",
        "failed",
        "canceled",
        "processing",
    }
    assert {type(row["seed"]).__name__ for row in rows} >= {"int", "str", "float", "bool", "list"}
    assert any(row["api"] is None for row in rows)
    assert any(row["cost"] is None for row in rows)
    assert any(row["files"] for row in rows)
    assert {row["key"] for row in rows} >= {"00000000000000aa", "00000000000000bb", "legacy_key_1"}


def test_an_export_from_the_table_kept_on_disk_parses_no_line(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Export keeps its table, variables and all, on disk (.batchrun-table.bin), as the report
    does; the next export (or report) parses no line to know its columns."""
    spec = write_folder(tmp_path)
    first, again = tmp_path / "first.jsonl", tmp_path / "again.jsonl"
    assert run_cli("export", str(spec), "--format", "jsonl", "--to", str(first))[0] == 0
    parsed: list[int] = []
    real = tablerow.append
    monkeypatch.setattr(tablerow, "append", lambda *args: parsed.append(1) or real(*args))
    assert run_cli("export", str(spec), "--format", "jsonl", "--to", str(again))[0] == 0
    assert again.read_bytes() == first.read_bytes()
    assert parsed == []


def test_an_export_after_a_first_status_parses_no_line(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first `status` of a folder reads every line, and keeps the table with its
    variables: the export after it parses no line, and writes what it writes alone."""
    spec = write_folder(tmp_path)
    alone, after = tmp_path / "alone.jsonl", tmp_path / "after.jsonl"
    assert run_cli("export", str(spec), "--format", "jsonl", "--to", str(alone))[0] == 0
    (load_spec(spec).output / TABLE_CACHE).unlink()
    assert run_cli("status", str(spec))[0] in (0, 1)
    parsed: list[int] = []
    real = tablerow.append
    monkeypatch.setattr(tablerow, "append", lambda *args: parsed.append(1) or real(*args))
    assert run_cli("export", str(spec), "--format", "jsonl", "--to", str(after))[0] == 0
    assert after.read_bytes() == alone.read_bytes()
    assert parsed == []


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every export of rows on two cores (the worker's pids, as forked), however few rows."""
    monkeypatch.setattr(twocores, "TWO_CORES_FROM", 2)
    return forks_recorded(monkeypatch)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_on_two_cores_the_export_is_the_same(
    tmp_path: Path, run_cli: RunCli, two_cores: list[int], fmt: str
) -> None:
    spec = write_folder(tmp_path)
    for name, more in (("plan", ()), ("all", ("--all",))):
        dest = tmp_path / f"{name}.{fmt}"
        code, _, err = run_cli("export", str(spec), "--format", fmt, "--to", str(dest), *more)
        assert code == 0, err
        assert dest.read_bytes() == (GOLDEN / f"export-{name}.{fmt}").read_bytes()
    assert len(two_cores) == 2
    # The worker's temporary file is gone with it.
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["all." + fmt, "plan." + fmt, "rows.jsonl", "runs", "spec.yaml"]
    )


def _hf_folder(root: Path, spec: Path, name: str, run_cli: RunCli) -> dict[str, bytes]:
    """`export --format hf` of the folder: each file's bytes by its path in the dataset."""
    dest = root / name
    code, _, err = run_cli("export", str(spec), "--format", "hf", "--to", str(dest))
    assert code == 0, err
    _, out, _ = run_cli("verify", str(dest), "--allow-sandbox", "--json")
    # Every file as its record lists it; what verify finds is only what the plan misses.
    problems = json.loads(out)["problems"]
    assert {problem["kind"] for problem in problems} == {"missing"}
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


@pytest.mark.parametrize("worker", ["writes", "fails"])
def test_on_two_cores_the_hf_export_is_the_same(
    tmp_path: Path,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    worker: str,
) -> None:
    # The card and the export record say when: one moment for both exports.
    monkeypatch.setattr(origin, "utcnow", lambda: "2026-01-02T03:04:05.678Z")
    spec = write_folder(tmp_path)
    one = _hf_folder(tmp_path, spec, "one", run_cli)
    monkeypatch.setattr(twocores, "TWO_CORES_FROM", 2)
    forked = forks_recorded(monkeypatch)
    if worker == "fails":  # the worker's first step: it ends at once, with 1

        def broken() -> None:
            raise RuntimeError("the worker fails")

        monkeypatch.setattr(secondcore.gc, "freeze", broken)
    two = _hf_folder(tmp_path, spec, "two", run_cli)
    assert two == one
    # The job of text on two cores (the job of images stays on one: its files' sums are this
    # process's); the row files are the golden ones.
    assert len(forked) == 1
    assert sorted(name for name in two if name.endswith("data.jsonl")) == [
        "chat/data.jsonl",
        "flux/metadata.jsonl",
    ]
    for name in ("chat/data.jsonl", "flux/metadata.jsonl"):
        golden = GOLDEN / f"export-hf-{name.replace('/', '-')}"
        assert two[name] == golden.read_bytes()


def test_a_worker_that_fails_leaves_its_half_to_the_command(
    tmp_path: Path, run_cli: RunCli, two_cores: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:  # the worker's first step: it ends at once, with 1
        raise RuntimeError("the worker fails")

    monkeypatch.setattr(secondcore.gc, "freeze", broken)
    dest = tmp_path / "plan.jsonl"
    code, _, err = run_cli(
        "export", str(write_folder(tmp_path)), "--format", "jsonl", "--to", str(dest)
    )
    assert code == 0, err
    assert dest.read_bytes() == (GOLDEN / "export-plan.jsonl").read_bytes()
    assert len(two_cores) == 1


def test_without_room_to_copy_the_command_writes_the_half_after_freeing_the_spool(
    tmp_path: Path, run_cli: RunCli, two_cores: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Copying the worker's half needs its size free again beside the spool: where that is not
    # there, the spool is emptied (its space given back) before this process writes the half.
    spools: list[Any] = []
    temporary = twocores.tempfile.TemporaryFile

    def spool(*args: Any, **kwargs: Any) -> Any:
        spools.append(temporary(*args, **kwargs))
        return spools[-1]

    sizes: dict[str, int] = {}

    def no_room(held: Any) -> bool:
        sizes["when checked"] = os.fstat(held.fileno()).st_size
        return False

    real = twocores._write_part

    def write_part(*args: Any, first: bool) -> int:
        if not first:  # in this process: the worker's half, written again
            sizes["when written again"] = os.fstat(spools[0].fileno()).st_size
        return real(*args, first=first)

    monkeypatch.setattr(twocores.tempfile, "TemporaryFile", spool)
    monkeypatch.setattr(twocores, "_room_to_copy", no_room)
    dest = tmp_path / "plan.jsonl"
    spec = write_folder(tmp_path)
    monkeypatch.setattr(twocores, "_write_part", write_part)  # after the fork's import, here
    code, _, err = run_cli("export", str(spec), "--format", "jsonl", "--to", str(dest))
    assert code == 0, err
    assert dest.read_bytes() == (GOLDEN / "export-plan.jsonl").read_bytes()
    assert sizes["when checked"] > 0  # the worker wrote its half
    assert sizes["when written again"] == 0
    assert len(two_cores) == 1


def test_the_room_to_copy_is_the_spool_size_again() -> None:
    import tempfile

    with tempfile.TemporaryFile() as held:
        held.write(b"x" * 1000)
        held.flush()
        free = os.fstatvfs(held.fileno())
        room = free.f_bavail * free.f_frsize
        assert twocores._room_to_copy(held) is (room >= 1000 + twocores.COPY_SLACK)


def test_a_ctrl_c_as_the_worker_is_reaped_is_an_interruption(
    tmp_path: Path, run_cli: RunCli, two_cores: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C arrives the moment the worker is reaped: the command stops as interrupted, and
    # never kills the process id it has just reaped (which another process may take next).
    real_waitpid = os.waitpid
    reaped: list[int] = []

    def waitpid(pid: int, options: int) -> tuple[int, int]:
        done = real_waitpid(pid, options)
        if done[0] and pid in two_cores and not reaped:
            reaped.append(pid)
            # To this thread, as a terminal's Ctrl-C reaches a command that forks only with no
            # other thread (`secondcore.available`); a pytest-xdist worker has others, and a
            # signal to the process would be taken by one of them at once, not held.
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        return done

    killed: list[int] = []
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:
        if sig == signal.SIGKILL:
            killed.append(pid)
        real_kill(pid, sig)

    monkeypatch.setattr(os, "waitpid", waitpid)
    monkeypatch.setattr(os, "kill", kill)
    spec = write_folder(tmp_path)
    dest = tmp_path / "plan.jsonl"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code, _, err = run_cli("export", str(spec), "--format", "jsonl", "--to", str(dest))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert reaped == two_cores
    assert (code, err) == (130, "batchrun: interrupted\n")
    assert killed == []
    assert not dest.exists()


def test_ctrl_c_ends_the_worker_and_writes_nothing(
    tmp_path: Path, run_cli: RunCli, two_cores: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = twocores._write_part

    def interrupted(*args: Any, first: bool) -> int:
        if first:  # this process's half; the worker's goes on
            raise KeyboardInterrupt
        return real(*args, first=first)

    monkeypatch.setattr(twocores, "_write_part", interrupted)
    spec = write_folder(tmp_path)
    dest = tmp_path / "plan.jsonl"
    code, _, err = run_cli("export", str(spec), "--format", "jsonl", "--to", str(dest))
    assert (code, err) == (130, "batchrun: interrupted\n")
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    (worker,) = two_cores
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(worker, 0)


# A child that exports on two cores, however few rows, and sends Ctrl-C to its process group (as
# a terminal does: to the command and its worker) once the worker is forked.
CTRL_C = """
import os, signal, sys
from batchrun import secondcore
from batchrun.readout.export import twocores

twocores.TWO_CORES_FROM = 2
secondcore.available = lambda: True
real = twocores._write_part

def write_part(*args, first):
    if first:
        os.killpg(0, signal.SIGINT)
    return real(*args, first=first)

twocores._write_part = write_part
from batchrun.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("to", ["file", "-"])
def test_ctrl_c_in_a_terminal_stops_the_command_and_its_worker(tmp_path: Path, to: str) -> None:
    spec = write_folder(tmp_path)
    dest = str(tmp_path / "export.jsonl") if to == "file" else "-"
    stopped_by_ctrl_c(CTRL_C, "export", str(spec), "--format", "jsonl", "--to", dest)
    assert sorted(os.listdir(tmp_path)) == ["rows.jsonl", "runs", "spec.yaml"]  # no export
