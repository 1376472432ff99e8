"""The plan: keys, order, files, row problems, shards and the summary."""

from __future__ import annotations

import hashlib
import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
from runs import write_spec

from batchrun.errors import SpecError, UsageError
from batchrun.planner.expand import (
    FileInput,
    PlannedPrediction,
    Shard,
    check_plan,
    in_shard,
    iter_plan,
    parse_shard,
    prediction_key,
)
from batchrun.planner.summary import summarize
from batchrun.spec.load import load_spec
from batchrun.spec.target import Target

GOLDEN = Path(__file__).resolve().parents[1] / "specs" / "golden"
CAT_SHA = "5635a0fa9168624d821171194d7a2478cb8022b1c6167d5f18fcff2df7e581ed"


def planned(path: Path | str) -> list[PlannedPrediction]:
    return list(iter_plan(load_spec(path)))


def row_errors(path: Path | str) -> list[str]:
    return [str(issue) for issue in check_plan(load_spec(path)).issues]


def test_golden_keys_never_change() -> None:
    keys = [(p.job, p.key) for p in planned(GOLDEN / "golden.yaml")]
    assert keys == [
        ("flux-schnell", "3f818817e64315f3"),
        ("flux-schnell", "0a0e675a492c96f4"),
        ("flux-schnell", "687846b62ab36378"),
        ("flux-schnell", "9375a85985a51fd9"),
        ("flux-schnell", "f576c08494b44702"),
        ("v-2a6b576a", "f0923e82b2b4a818"),
        ("v-2a6b576a", "6b817957604c7c8b"),
        ("captioner", "3625b84c82761f3b"),
    ]


def test_a_key_is_the_hash_of_the_documented_canonical_json() -> None:
    first = planned(GOLDEN / "golden.yaml")[0]
    document = {
        "target": {"model": "black-forest-labs/flux-schnell"},
        "input": {
            "prompt": "fox, in snow, at dawn",
            "seed": 1,
            "guidance": 3.5,
            "go_fast": True,
            "image": {"file": {"sha256": CAT_SHA, "size": 19}},
        },
        "repeat": 0,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first.key == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert prediction_key(first.target, first.input, first.repeat) == first.key


def test_the_golden_plan_in_full() -> None:
    found = planned(GOLDEN / "golden.yaml")
    assert [p.to_json() for p in found[4:]] == [
        {
            "key": "f576c08494b44702",
            "job": "flux-schnell",
            "target": {"model": "black-forest-labs/flux-schnell"},
            "vars": {"row": {"subject": "whale", "detail": "deep"}, "seed": 7},
            "input": {
                "prompt": "whale, deep",
                "seed": 7,
                "guidance": 3.5,
                "go_fast": True,
                "image": {"file": "cat.png", "sha256": CAT_SHA, "size": 19},
            },
            "repeat": 0,
        },
        {
            "key": "f0923e82b2b4a818",
            "job": "v-2a6b576a",
            "target": {
                "version": "2a6b576af31790b470f0a8442e1e9791213fa13799cbb65a9fc1436e96389574"
            },
            "vars": {},
            "input": {"prompt": "a lamp", "n": 0},
            "repeat": 0,
        },
        {
            "key": "6b817957604c7c8b",
            "job": "v-2a6b576a",
            "target": {
                "version": "2a6b576af31790b470f0a8442e1e9791213fa13799cbb65a9fc1436e96389574"
            },
            "vars": {},
            "input": {"prompt": "a lamp", "n": 1},
            "repeat": 1,
        },
        {
            "key": "3625b84c82761f3b",
            "job": "captioner",
            "target": {"deployment": "acme/captioner"},
            "vars": {},
            "input": {"text": "${literal}", "tags": ["a", "captioner"]},
            "repeat": 0,
        },
    ]
    image = found[0].input["image"]
    assert image == FileInput((GOLDEN / "cat.png"), "cat.png", CAT_SHA, 19)


def test_keys_ignore_how_a_spec_runs_and_follow_what_it_predicts(folder: Path) -> None:
    base = (
        "batchrun: 1\n{extra}jobs:\n  - model: a/b\n    input: {{p: '${{s}}', n: {n}}}\n"
        "    matrix: {{s: [x, y]}}\n"
    )
    write_spec(folder, base.format(extra="", n=1), as_is=True)
    keys = [p.key for p in planned("spec.yaml")]
    settings = "concurrency: 3\nrate: 5/s\nrequests: 9/s\nwait: 5\noutput: elsewhere\nname: other\n"
    write_spec(folder, base.format(extra=settings, n=1), as_is=True)
    assert [p.key for p in planned("spec.yaml")] == keys
    write_spec(folder, base.format(extra="", n=2), as_is=True)
    assert not set(keys) & {p.key for p in planned("spec.yaml")}


def test_a_file_counts_by_its_content_not_its_path(folder: Path) -> None:
    text = "batchrun: 1\njobs:\n  - model: a/b\n    input: {image: {file: '{path}'}}\n"
    write_spec(folder, text.replace("{path}", "a.png"), files={"a.png": "bytes"}, as_is=True)
    (before,) = planned("spec.yaml")
    shutil.move(folder / "a.png", folder / "moved.png")
    write_spec(folder, text.replace("{path}", "moved.png"), as_is=True)
    (moved,) = planned("spec.yaml")
    assert moved.key == before.key
    assert moved.input["image"].relpath == "moved.png"
    (folder / "moved.png").write_text("other bytes", encoding="utf-8")
    (changed,) = planned("spec.yaml")
    assert changed.key != before.key


def test_order_is_jobs_then_rows_then_repeats(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\njobs:\n  - model: a/b\n    input: {p: '${a}${extra}'}\n"
        "    matrix: {a: [x, y]}\n    include: [{extra: '!'}, {a: z, extra: '?'}]\n    repeat: 2\n"
        "  - model: a/c\n    input: {}\n",
        as_is=True,
    )
    found = [(p.job, p.input, p.vars, p.repeat) for p in planned("spec.yaml")]
    assert found == [
        ("b", {"p": "x!"}, {"a": "x", "extra": "!"}, 0),
        ("b", {"p": "x!"}, {"a": "x", "extra": "!"}, 1),
        ("b", {"p": "y!"}, {"a": "y", "extra": "!"}, 0),
        ("b", {"p": "y!"}, {"a": "y", "extra": "!"}, 1),
        ("b", {"p": "z?"}, {"a": "z", "extra": "?"}, 0),
        ("b", {"p": "z?"}, {"a": "z", "extra": "?"}, 1),
        ("c", {}, {}, 0),
    ]


FRUIT = """\
batchrun: 1
jobs:
  - model: acme/fruit
    input:
      prompt: "${fruit} and ${animal}"
    matrix:
      fruit: [apple, pear]
      animal: [cat, dog]
    include:
      - color: green
      - {color: pink, animal: cat}
      - fruit: banana
"""


def test_a_row_without_a_variable_the_input_uses(folder: Path) -> None:
    write_spec(folder, FRUIT, as_is=True)
    message = (
        "spec.yaml:12:9: jobs[0].include[2]: this row ({fruit: banana}) has no variable"
        " 'animal', which jobs[0].input.prompt uses"
    )
    with pytest.raises(SpecError) as caught:
        planned("spec.yaml")
    assert str(caught.value) == message
    assert row_errors("spec.yaml") == [message]


def test_a_product_row_without_an_include_variable(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\njobs:\n  - model: a/npm\n"
        "    input: {os: '${os}', node: '${node}', npm: '${npm}'}\n"
        "    matrix:\n      os: [windows-latest, ubuntu-latest]\n      node: [14, 16]\n"
        "    include:\n      - {os: windows-latest, node: 16, npm: 6}\n",
        as_is=True,
    )
    assert row_errors("spec.yaml") == [
        "spec.yaml:6:7: jobs[0].matrix: this row ({os: windows-latest, node: 14}) has no"
        " variable 'npm', which jobs[0].input.npm uses"
    ]


def test_a_missing_field_and_a_missing_file_found_row_by_row(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\njobs:\n  - model: a/b\n    input:\n      p: '${row.p}'\n"
        "      image: {file: 'inputs/${row.img}'}\n    matrix:\n"
        "      row: [{p: 1, img: a.png}, {q: 2, img: a.png}, {p: 3, img: b.png}]\n",
        files={"inputs/a.png": "a"},
        as_is=True,
    )
    assert row_errors("spec.yaml") == [
        "spec.yaml:5:10: jobs[0].input.p: ${row.p}: no field 'p' here (the fields are q, img),"
        " in the row {row: {q: 2, img: a.png}}",
        "spec.yaml:6:21: jobs[0].input.image.file: file 'inputs/b.png' does not exist,"
        " in the row {row: {p: 3, img: b.png}}",
    ]


def test_two_rows_that_would_make_the_same_prediction(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\njobs:\n  - model: a/b\n    input: {p: '${row.p}'}\n"
        "    matrix:\n      row: {jsonl: rows.jsonl}\n",
        files={"rows.jsonl": '{"p": 1, "note": "x"}\n{"p": 1, "note": "y"}\n'},
        as_is=True,
    )
    key = prediction_key(Target("model", "a", "b"), {"p": 1}, 0)
    # Placed in the value file, at the repeating row's line, naming the line it repeats.
    assert row_errors("spec.yaml") == [
        "rows.jsonl:2:1: jobs[0].matrix.row: this row ({row: {p: 1, note: y}}) makes the same"
        f" prediction as the row at line 1 (key {key}); rows must differ in what they"
        " send (repeat: runs one input several times)"
    ]
    with pytest.raises(SpecError):
        planned("spec.yaml")


def test_check_plan_counts_each_job(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\njobs:\n"
        "  - {model: a/b, input: {p: '${x}'}, matrix: {x: {range: [0, 7]}}, repeat: 3}\n"
        "  - {model: a/c, input: {}}\n",
        as_is=True,
    )
    checked = check_plan(load_spec("spec.yaml"))
    assert (checked.counts, checked.total, checked.issues) == ({"b": 21, "c": 1}, 22, ())


def test_choosing_jobs(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\njobs:\n  - {model: a/b, input: {}}\n  - {model: a/c, input: {}}\n",
        as_is=True,
    )
    spec = load_spec("spec.yaml")
    assert [p.job for p in iter_plan(spec, jobs=["c"])] == ["c"]
    with pytest.raises(UsageError, match=r"^no job named 'd'; the jobs are b, c$"):
        iter_plan(spec, jobs=["d"])


def test_shards_split_the_plan_by_key(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\njobs:\n"
        "  - {model: a/b, input: {n: '${n}'}, matrix: {n: {range: [0, 300]}}}\n",
        as_is=True,
    )
    spec = load_spec("spec.yaml")
    every = [p.key for p in iter_plan(spec)]
    shards = [[p.key for p in iter_plan(spec, shard=(i, 3))] for i in (1, 2, 3)]
    assert sorted(key for shard in shards for key in shard) == sorted(every)
    assert all(60 < len(shard) < 140 for shard in shards)
    for i, shard in enumerate(shards, 1):
        assert all(int(key, 16) % 3 == i - 1 and in_shard(key, (i, 3)) for key in shard)
    assert all(in_shard(key, None) for key in every)


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0", "-1/2", ""])
def test_bad_shards(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--shard expects I/N with 1 <= I <= N, like 2/8; got "):
        parse_shard(text)


def test_a_good_shard() -> None:
    shard = parse_shard("2/8")
    assert shard == Shard(2, 8) == (2, 8)
    assert str(shard) == "2/8"


def test_summarize_keeps_counts_and_a_few_examples(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\nname: demo\njobs:\n"
        "  - {model: a/b, input: {n: '${n}'}, matrix: {n: {range: [0, 5]}}}\n"
        "  - {id: other, model: a/c, input: {}}\n",
        as_is=True,
    )
    spec = load_spec("spec.yaml")
    summary = summarize(spec)
    assert (summary.name, summary.output, summary.total, summary.shard) == (
        "demo",
        folder / "runs" / "demo",
        6,
        None,
    )
    assert [(j.id, str(j.target), j.count) for j in summary.jobs] == [
        ("b", "a/b", 5),
        ("other", "a/c", 1),
    ]
    assert [e.input for e in summary.jobs[0].examples] == [{"n": 0}, {"n": 1}, {"n": 2}]
    elsewhere = summarize(spec, shard=(1, 2), output=folder / "x")
    assert (elsewhere.output, elsewhere.shard) == (folder / "x", Shard(1, 2))


def test_planned_predictions_are_frozen(folder: Path) -> None:
    write_spec(folder, "batchrun: 1\njobs:\n  - {model: a/b, input: {}}\n", as_is=True)
    (first,) = planned("spec.yaml")
    with pytest.raises(AttributeError):
        first.key = "x"  # type: ignore[misc]
    assert first == PlannedPrediction(first.key, "b", Target("model", "a", "b"), {}, {}, 0)


@pytest.mark.slow
def test_planning_streams_a_big_dataset(folder: Path) -> None:
    rows = 30_000
    csv = "prompt,n\n" + "".join(f"a prompt about thing number {i},{i}\n" for i in range(rows))
    write_spec(
        folder,
        "batchrun: 1\njobs:\n  - model: a/b\n    input: {prompt: '${row.prompt}', n: '${row.n}'}\n"
        "    matrix: {row: {csv: rows.csv}}\n",
        files={"rows.csv": csv},
        as_is=True,
    )
    spec = load_spec("spec.yaml")
    tracemalloc.start()
    count = sum(1 for _ in iter_plan(spec))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == rows
    # Holding the rows would take about 10 MB more; the plan holds only the keys it has seen
    # (about 3.5 MB here).
    assert peak < 6_000_000, peak


def test_every_repeated_csv_row_is_reported_at_once_at_its_line(folder: Path) -> None:
    rows = "prompt,note\n" + "".join(f"p{i % 3},n{i}\n" for i in range(6))
    write_spec(
        folder,
        "batchrun: 1\njobs:\n  - model: a/b\n    input: {p: '${row.prompt}'}\n"
        "    matrix:\n      row: {csv: rows.csv}\n",
        files={"rows.csv": rows},
        as_is=True,
    )
    errors = row_errors("spec.yaml")
    assert [error.split(": this row")[0] for error in errors] == [
        "rows.csv:5:1: jobs[0].matrix.row",
        "rows.csv:6:1: jobs[0].matrix.row",
        "rows.csv:7:1: jobs[0].matrix.row",
    ]
    assert (
        "({row: {prompt: p0, note: n3}}) makes the same prediction as the row at line 2"
        in (errors[0])
    )


def test_identical_lines_are_each_placed_at_their_own_line(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\njobs:\n  - model: a/b\n    input: {p: '${s}'}\n"
        "    matrix:\n      s: {lines: s.txt}\n",
        files={"s.txt": "fox\nowl\nfox\nfox\n"},
        as_is=True,
    )
    assert [error.split(" (key")[0] for error in row_errors("spec.yaml")] == [
        "s.txt:3:1: jobs[0].matrix.s: this row ({s: fox}) makes the same prediction as the"
        " row at line 1",
        "s.txt:4:1: jobs[0].matrix.s: this row ({s: fox}) makes the same prediction as the"
        " row at line 1",
    ]


def test_a_field_the_files_template_cannot_fill_is_a_spec_error(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\nfiles: 'images/${subject.name}/${seed}${ext}'\njobs:\n"
        "  - model: a/b\n    input: {p: '${subject}', seed: '${seed}'}\n"
        "    matrix:\n      subject: {lines: s.txt}\n      seed: [1, 2]\n",
        files={"s.txt": "a red fox\nan owl\n"},
        as_is=True,
    )
    assert row_errors("spec.yaml") == [
        "spec.yaml:2:8: files: ${subject.name}: 'name' is a path field, but 'a red fox' is not"
        " a path (a value from {glob:}, or text with a '/' or an extension), in the row"
        " {subject: a red fox, seed: 1} of job 'b'"
    ]
    with pytest.raises(SpecError, match="'name' is a path field"):
        planned("spec.yaml")


def test_path_fields_name_files_after_globbed_inputs(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\nfiles: '${img.stem}${ext}'\njobs:\n"
        "  - model: a/b\n    input: {image: {file: '${img}'}}\n"
        "    matrix:\n      img: {glob: 'in/*.png'}\n",
        files={"in/a.png": "x", "in/b.png": "y"},
        as_is=True,
    )
    assert row_errors("spec.yaml") == []


def test_two_keys_named_alike_by_the_files_template_are_spec_errors(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\nfiles: 'images/${subject}${ext}'\njobs:\n"
        "  - model: a/b\n    input: {p: '${subject}', seed: '${seed}'}\n"
        "    matrix:\n      subject: [fox, owl]\n      seed: [1, 2]\n",
        as_is=True,
    )
    errors = row_errors("spec.yaml")
    assert len(errors) == 2
    assert errors[0].startswith(
        "spec.yaml:2:8: files: this template names the files of the row {subject: fox, seed: 2}"
        " and of the row {subject: fox, seed: 1} alike ('images/fox', keys "
    )
    assert errors[0].endswith("); add ${key} or a variable that tells them apart")


def test_several_outputs_need_index_or_output_in_the_files_template(folder: Path) -> None:
    text = (
        "batchrun: 1\nfiles: '${key}${ext}'\njobs:\n"
        "  - model: a/b\n    input: {p: x, num_outputs: 4}\n"
    )
    write_spec(folder, text, as_is=True)
    assert row_errors("spec.yaml") == [
        "spec.yaml:2:8: files: job 'b' asks for 4 outputs per prediction (num_outputs: 4),"
        " but the files template has no ${index} or ${output} to tell them apart"
    ]
    write_spec(folder, text.replace("${key}${ext}", "${key}-${output}${ext}"), as_is=True)
    assert row_errors("spec.yaml") == []
