"""The plan's keys kept in the run folder (planner/plancache.py): the same keys, jobs and order
as a walk of the plan, for every selection it serves, and never used when the spec changed, the
file is damaged, or the spec's plan reads a file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from runfolder import rec, write_run
from runs import count_walks, write_spec

from batchrun.cli import main
from batchrun.planner import plancache
from batchrun.planner.expand import Shard, iter_plan
from batchrun.planner.plancache import PLAN_CACHE, PlanRecorder
from batchrun.planner.sample import Selection, iter_selected
from batchrun.spec.load import Spec, load_spec

SPEC = """
batchrun: 1
output: run
jobs:
  - id: grid
    model: acme/flux
    price: {per_prediction: 0.013}
    input: {prompt: "${animal} at ${hour}", seed: "${seed}"}
    matrix:
      animal: [cat, dog, owl]
      hour: {range: [0, 24, 5]}
      seed: [1, 2]
    exclude: [{animal: owl, seed: 2}]
    include: [{animal: fox, hour: 3, seed: 9}, {animal: cat, hour: 5, seed: 1, extra: yes}]
  - id: again
    model: acme/flux
    repeat: 3
    price: {per_image: 0.003}
    input: {prompt: "the same ${n}", num_outputs: "${n}"}
    matrix: {n: {range: [0, 7]}}
  - id: single
    model: acme/other
    input: {prompt: "one"}
"""

SELECTIONS = [
    Selection(),
    Selection(Shard(1, 3)),
    Selection(Shard(3, 3)),
    Selection(limit=5),
    Selection(limit=1000),
    Selection(Shard(2, 3), limit=4),
]


def kept(spec: Spec) -> None:
    """The plan cache written from a whole walk, as `status`, `export` and `report` write it."""
    recorder = PlanRecorder(spec)
    for planned in iter_plan(spec):
        recorder.add(planned.key, planned.job)
    recorder.save(spec.output)


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    loaded = load_spec(write_spec(tmp_path, SPEC))
    loaded.output.mkdir()
    return loaded


def test_the_cached_walk_is_the_walk(spec: Spec) -> None:
    kept(spec)
    cached = plancache.read(spec.output, spec)
    assert cached is not None
    whole = list(iter_plan(spec))
    for selection in SELECTIONS:
        fresh = [(planned.key, planned.job) for planned in iter_selected(spec, selection)]
        walked = list(cached.walk(selection))
        assert [(key, job) for key, job, _ in walked] == fresh, selection
        assert all(whole[at].key == key for key, _, at in walked)
    with pytest.raises(ValueError, match="sample"):
        next(cached.walk(Selection(sample=3)))  # a sample ranks by each row's variables
    # The inputs of any places, rendered again: those of the walk.
    for wanted in ([0], [len(whole) - 1], [1, 2, 3, 27, 28, 29, 41], list(range(len(whole)))):
        again = cached.rendered(spec, wanted)
        assert again is not None
        assert again == [whole[at] for at in wanted]


def _status(spec: Spec, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    main(["status", str(spec.path), *extra])
    return capsys.readouterr().out


def _plan(spec: Spec, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["plan", str(spec.path), *extra]) == 0
    return capsys.readouterr().out


def _recorded(spec: Spec) -> None:
    """A run folder that recorded some of the plan: succeeded, failed, and one key no longer
    planned."""
    planned = list(iter_plan(spec))
    records = [rec(p.key, job=p.job, input=p.input, vars=p.vars) for p in planned[:9]]
    records += [rec(p.key, "failed", job=p.job) for p in planned[20:23]]
    records.append(rec("00000000000000aa", job="grid"))
    write_run(spec.output, records, spec=spec.path)


def test_status_counts_the_same_from_the_cache(
    spec: Spec, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _recorded(spec)
    outputs = {}
    for extra in ((), ("--json",), ("--all",)):
        fresh = _status(spec, capsys, *extra)
        assert (spec.output / PLAN_CACHE).exists()
        walks = count_walks(monkeypatch)
        outputs[extra] = _status(spec, capsys, *extra)
        assert not walks  # the keys came from the cache
        monkeypatch.undo()
        assert outputs[extra] == fresh
        (spec.output / PLAN_CACHE).unlink()
    # `plan` takes the keys from the cache too, and renders again only the new keys' inputs
    # (its examples, its estimate): what it prints is what a walk of the plan gives. A
    # sample's ranking reads every row: it walks the plan.
    for extra in ((), ("--limit", "7"), ("--shard", "2/3"), ("--sample", "4")):
        fresh = _plan(spec, capsys, *extra)
        _status(spec, capsys)
        walks = count_walks(monkeypatch)
        assert _plan(spec, capsys, *extra) == fresh
        assert bool(walks) == (extra[:1] == ("--sample",)), extra
        monkeypatch.undo()
        (spec.output / PLAN_CACHE).unlink()
    data = json.loads(outputs[("--json",)])
    assert data["planned"] == len(list(iter_plan(spec)))


def test_an_edit_of_the_spec_is_a_new_plan(
    spec: Spec, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _recorded(spec)
    before = json.loads(_status(spec, capsys, "--json"))
    spec.path.write_text(spec.path.read_text().replace("seed: [1, 2]", "seed: [1, 2, 3]"))
    edited = load_spec(spec.path)
    assert plancache.read(edited.output, edited) is None
    after = json.loads(_status(edited, capsys, "--json"))
    assert after["planned"] == len(list(iter_plan(edited))) > before["planned"]
    cached = plancache.read(edited.output, edited)  # written anew for the spec as it is now
    assert cached is not None
    assert [(k, j) for k, j, _ in cached.walk(Selection())] == [
        (p.key, p.job) for p in iter_plan(edited)
    ]
    # Another batchrun version, another plan format: not this plan's cache.
    monkeypatch.setattr(plancache, "__version__", "0.0.0+other")
    assert plancache.read(edited.output, edited) is None
    monkeypatch.undo()
    monkeypatch.setattr(plancache, "PLAN_FORMAT", plancache.PLAN_FORMAT + 1)
    assert plancache.read(edited.output, edited) is None


def _damaged(data: bytes) -> Iterator[bytes]:
    yield b""
    yield data[:-1]  # cut short
    yield data + b"\0"  # grown
    yield data[: len(data) // 2]
    yield b"x" + data[1:]  # another magic
    line = data.index(b"\n", len(plancache.MAGIC))
    for at in (line - 3, line + 1, line + 8 * 5 + 3, len(data) - 1):  # meta, keys, jobs
        yield data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
    meta = json.loads(data[len(plancache.MAGIC) : line])
    for name, value in (("count", meta["count"] - 1), ("jobs", ["grid", "x", "y"])):
        other = json.dumps({**meta, name: value}).encode()
        yield plancache.MAGIC + other + data[line:]


def test_a_damaged_cache_is_ignored_and_written_anew(
    spec: Spec, capsys: pytest.CaptureFixture[str]
) -> None:
    _recorded(spec)
    expected = _status(spec, capsys, "--json")
    path = spec.output / PLAN_CACHE
    good = path.read_bytes()
    for damaged in _damaged(good):
        path.write_bytes(damaged)
        assert plancache.read(spec.output, spec) is None, damaged[:40]
        assert _status(spec, capsys, "--json") == expected
        assert path.read_bytes() == good  # the walk wrote it again
    path.unlink()
    path.mkdir()  # not a file: ignored, and left alone
    assert _status(spec, capsys, "--json") == expected


@pytest.mark.parametrize(
    ("body", "files"),
    [
        (
            'input: {prompt: "${p}"}\n    matrix: {p: {lines: prompts.txt}}',
            {"prompts.txt": "a\nb\n"},
        ),
        ('input: {image: {file: "${f}"}}\n    matrix: {f: [a.png]}', {"a.png": "png"}),
    ],
)
def test_a_plan_that_reads_a_file_is_never_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, files: dict[str, str]
) -> None:
    text = f"batchrun: 1\noutput: run\njobs:\n  - model: acme/flux\n    {body}\n"
    spec = load_spec(write_spec(tmp_path, text, files=files, as_is=True))
    assert not plancache.reads_nothing(spec)
    write_run(spec.output, [rec(p.key, job=p.job) for p in iter_plan(spec)], spec=spec.path)
    _status(spec, capsys)
    assert not (spec.output / PLAN_CACHE).exists()


def test_export_and_report_scope_the_records_by_the_cache(
    spec: Spec, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An export on a folder `status` never saw walks the plan and keeps it as `status` does
    (the same bytes); the next export reads it: the same rows, no walk."""
    _recorded(spec)
    exported = tmp_path / "rows.jsonl"
    path = spec.output / PLAN_CACHE

    def export() -> tuple[str, bytes]:
        assert main(["export", str(spec.path), "--format", "jsonl", "--to", str(exported)]) == 0
        return capsys.readouterr().err, exported.read_bytes()

    assert not path.exists()
    fresh = export()
    assert fresh[1].count(b"\n") == 12  # the 13 recorded but the one no longer planned
    kept_by_export = path.read_bytes()
    walks = count_walks(monkeypatch)
    assert export() == fresh
    assert not walks
    monkeypatch.undo()
    path.unlink()
    _status(spec, capsys)
    assert path.read_bytes() == kept_by_export


def test_a_report_keeps_the_plan_as_status_does(
    spec: Spec, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _recorded(spec)
    page = tmp_path / "report.html"
    path = spec.output / PLAN_CACHE

    def report() -> None:
        assert main(["report", str(spec.path), "--output", str(page)]) == 0
        capsys.readouterr()

    report()
    kept_by_report = path.read_bytes()
    walks = count_walks(monkeypatch)
    report()
    assert not walks
    monkeypatch.undo()
    path.unlink()
    _status(spec, capsys)
    assert path.read_bytes() == kept_by_report
