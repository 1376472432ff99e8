"""load_spec: records, defaults, and every meaning check with its exact message."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from runs import write_spec

from batchrun.errors import SpecError
from batchrun.spec.load import Spec, load_spec
from batchrun.spec.rate import Rate
from batchrun.spec.target import Target

ROOT = Path(__file__).resolve().parents[2]
VERSION = "2a6b576af31790b470f0a8442e1e9791213fa13799cbb65a9fc1436e96389574"
TOKEN_MESSAGE = (
    "looks like an API token; put it in the environment"
    " (REPLICATE_API_TOKEN or the variable named by token_env) instead"
)


def errors(folder: Path, text: str, files: dict[str, str] | None = None) -> list[str]:
    write_spec(folder, text, files=files, as_is=True)
    with pytest.raises(SpecError) as caught:
        load_spec("spec.yaml")
    return [str(issue) for issue in caught.value.issues]


JOB = "batchrun: 1\njobs:\n  - model: acme/flux\n"


def test_defaults(folder: Path) -> None:
    path = write_spec(folder, JOB + "    input: {prompt: hi}\n", as_is=True)
    spec = load_spec("spec.yaml")
    assert spec == Spec(
        path=path,
        name="spec",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        concurrency=32,
        rate=Rate(600.0, 60.0, "600/min"),
        requests=Rate(3000.0, 60.0, "3000/min"),
        wait=60,
        output=folder / "runs" / "spec",
        files="${job}/${key}-${index}${ext}",
        base_url=None,
        token_env="REPLICATE_API_TOKEN",
        jobs=spec.jobs,
        display_path="spec.yaml",
        places=spec.places,
    )
    (job,) = spec.jobs
    assert (job.id, job.target, job.concurrency, job.repeat) == (
        "flux",
        Target("model", "acme", "flux"),
        None,
        1,
    )
    assert dict(job.input) == {"prompt": "hi"}


def test_every_setting(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\nname: portraits\nbase_url: https://proxy.example/replicate\n"
        "token_env: MY_TOKEN\nconcurrency: 8\nrate: 2.5/s\nrequests: 100/h\nwait: 30\n"
        "output: out/here\nfiles: '${job}/${key}${ext}'\n"
        "jobs:\n  - deployment: acme/dep\n    concurrency: 2\n    repeat: 3\n    input: {}\n",
        as_is=True,
    )
    spec = load_spec("spec.yaml")
    assert (spec.name, spec.base_url, spec.token_env) == (
        "portraits",
        "https://proxy.example/replicate",
        "MY_TOKEN",
    )
    assert (spec.concurrency, spec.wait, spec.files) == (8, 30, "${job}/${key}${ext}")
    assert spec.rate.per_second == 2.5
    assert spec.requests.per_second == pytest.approx(100 / 3600)
    assert spec.output == folder / "out" / "here"
    (job,) = spec.jobs
    assert (job.id, job.concurrency, job.repeat) == ("dep", 2, 3)


@pytest.mark.parametrize(
    ("text", "count", "seconds"),
    [("600/min", 600, 60), ("10/s", 10, 1), ("1.5/h", 1.5, 3600), (" 5 / s ", 5, 1)],
)
def test_rates(text: str, count: float, seconds: float) -> None:
    rate = Rate.parse(text)
    assert (rate.number, rate.seconds, rate.text, str(rate)) == (count, seconds, text, text)
    assert rate.per_second == count / seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("600", "expected N/s, N/min or N/h, like 600/min; got '600'"),
        ("10/sec", "expected N/s, N/min or N/h, like 600/min; got '10/sec'"),
        ("0/min", "a rate must be more than 0, like 600/min; got '0/min'"),
    ],
)
def test_rates_that_do_not_parse(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        Rate.parse(text)


def test_job_ids_are_derived_from_the_target(folder: Path) -> None:
    write_spec(
        folder,
        "batchrun: 1\njobs:\n"
        "  - {model: black-forest-labs/flux-schnell, input: {}}\n"
        f"  - {{model: 'lucataco/flux-lora:{VERSION}', input: {{}}}}\n"
        f"  - {{version: '{VERSION}', input: {{}}}}\n"
        "  - {deployment: acme/my-flux, input: {}}\n"
        "  - {id: mine, model: acme/flux-schnell, input: {}}\n",
        as_is=True,
    )
    ids = [job.id for job in load_spec("spec.yaml").jobs]
    assert ids == ["flux-schnell", "flux-lora", "v-2a6b576a", "my-flux", "mine"]


def test_duplicate_job_ids(folder: Path) -> None:
    text = (
        "batchrun: 1\njobs:\n  - {model: a/flux, input: {}}\n  - {model: b/flux, input: {}}\n"
        "  - {id: x, model: c/d, input: {}}\n  - {id: x, model: c/e, input: {}}\n"
    )
    assert errors(folder, text) == [
        "spec.yaml:4:5: jobs[1]: this job would be called 'flux', like jobs[0];"
        " give one of them an id",
        "spec.yaml:6:10: jobs[3].id: duplicate job id 'x' (jobs[2] has it too)",
    ]


def test_exactly_one_target(folder: Path) -> None:
    text = (
        "batchrun: 1\njobs:\n  - input: {}\n"
        f"  - model: a/b\n    version: '{VERSION}'\n    input: {{}}\n"
        f"  - {{model: a/b, version: '{VERSION}', deployment: a/c, input: {{}}}}\n"
    )
    assert errors(folder, text) == [
        "spec.yaml:3:5: jobs[0]: a job needs a target: model, version or deployment",
        "spec.yaml:5:5: jobs[1]: a job has one target, but this one names model and version;"
        " keep one",
        "spec.yaml:7:18: jobs[2]: a job has one target, but this one names model, version and"
        " deployment; keep one",
    ]


SWEEP = """\
batchrun: 1
jobs:
  - model: acme/flux
    input:
      prompt: "${subjct} in ${style}"
      seed: ${seed}
    matrix:
      subject: [fox, owl]
      style: [ink, oil]
      seed: [1, 2]
    exclude:
      - {subject: fox, style: ink}
      - {colour: red, seed: 1}
"""


def test_the_documented_meaning_errors(folder: Path) -> None:
    assert errors(folder, SWEEP) == [
        "spec.yaml:5:16: jobs[0].input.prompt: unknown variable ${subjct};"
        " did you mean ${subject}?",
        "spec.yaml:13:10: jobs[0].exclude[1].colour: 'colour' is not a matrix axis;"
        " the axes are subject, style, seed",
    ]


def test_exclude_that_removes_everything(folder: Path) -> None:
    text = (
        JOB + "    input: {a: '${a}', b: '${b}'}\n    matrix: {a: [1, 2], b: [x, y]}\n"
        "    exclude: [{a: 1}, {a: 2}]\n"
    )
    assert errors(folder, text) == [
        "spec.yaml:3:5: jobs[0]: the matrix expands to no predictions"
        " (exclude removes all 4 combinations)"
    ]


def test_unknown_variables_without_a_close_match(folder: Path) -> None:
    text = (
        "batchrun: 1\njobs:\n"
        "  - model: a/b\n    input: {p: '${zebra}', q: '${row.x}', k: '${key}'}\n"
        "    matrix: {row: [{x: 1}]}\n"
        "  - model: a/c\n    input: {p: '${zebra}'}\n"
    )
    assert errors(folder, text) == [
        "spec.yaml:4:17: jobs[0].input.p: unknown variable ${zebra}; the variables are row",
        "spec.yaml:4:47: jobs[0].input.k: ${key} is only known when naming downloaded files"
        " (files:), not in an input",
        "spec.yaml:7:17: jobs[1].input.p: unknown variable ${zebra}; this job has no matrix",
    ]


def test_include_keys_and_builtins_are_known_variables(folder: Path) -> None:
    text = (
        JOB + "    input: {p: '${a} ${extra} ${repeat} ${job}'}\n    matrix: {a: [1, 2]}\n"
        "    include: [{extra: 1}]\n"
    )
    write_spec(folder, text, as_is=True)
    assert load_spec("spec.yaml").jobs[0].variables == frozenset({"a", "extra"})


def test_a_malformed_template_is_placed_at_its_dollar(folder: Path) -> None:
    text = JOB + "    input:\n      prompt: 'a ${b'\n      other: \"${1}\"\n"
    assert errors(folder, text) == [
        "spec.yaml:5:18: jobs[0].input.prompt: '${' is not closed by '}'"
        " (write $${ for a literal ${)",
        "spec.yaml:6:15: jobs[0].input.other: ${1} is not a variable reference;"
        " expected ${name} or ${name.field} (write $${ for a literal ${)",
    ]


def test_an_axis_the_input_does_not_use(folder: Path) -> None:
    text = JOB + "    input: {p: '${a}'}\n    matrix: {a: [1, 2], seed: [1, 2, 3], one: [x]}\n"
    assert errors(folder, text) == [
        "spec.yaml:5:25: jobs[0].matrix.seed: the input does not use ${seed},"
        " so its 3 values would make identical predictions"
    ]


def test_a_value_listed_twice(folder: Path) -> None:
    text = JOB + "    input: {p: '${a}'}\n    matrix:\n      a: [1, x, 1, '1', x]\n"
    assert errors(folder, text) == [
        "spec.yaml:6:17: jobs[0].matrix.a[2]: value #3 (1) repeats value #1",
        "spec.yaml:6:25: jobs[0].matrix.a[4]: value #5 ('x') repeats value #2",
    ]


def test_value_file_errors_are_placed_in_the_value_file(folder: Path) -> None:
    text = (
        "batchrun: 1\njobs:\n"
        "  - {model: a/b, input: {p: '${s}'}, matrix: {s: {lines: ok.txt}}}\n"
        "  - model: a/c\n    input: {p: '${row.prompt}'}\n"
        "    matrix:\n      row: {jsonl: data/prompts.jsonl}\n"
    )
    files = {
        "ok.txt": "one\n",
        "data/prompts.jsonl": '{"prompt": "a"}\n{"prompt": "b"\n{"prompt": "c"}\n',
    }
    assert errors(folder, text, files) == [
        "data/prompts.jsonl:2:15: jobs[1].matrix.row: not valid JSON: Expecting ',' delimiter"
    ]


def test_sources_that_give_nothing(folder: Path) -> None:
    text = (
        JOB + "    input: {p: '${a}${b}${c}${d}${e}${f}${g}'}\n    matrix:\n"
        "      a: {lines: missing.txt}\n      b: {csv: folder}\n      c: {lines: empty.txt}\n"
        "      d: {range: [5, 1]}\n      e: {glob: 'inputs/*.png'}\n      f: []\n"
        "      g: {range: [1, 9, 0]}\n"
    )
    (folder / "folder").mkdir()
    assert errors(folder, text, {"empty.txt": "\n\n"}) == [
        "spec.yaml:6:18: jobs[0].matrix.a.lines: file 'missing.txt' does not exist",
        "spec.yaml:7:16: jobs[0].matrix.b.csv: 'folder' is a folder, not a file",
        "spec.yaml:8:10: jobs[0].matrix.c: 'empty.txt' has no values",
        "spec.yaml:9:10: jobs[0].matrix.d: the range [5, 1] has no values",
        "spec.yaml:10:10: jobs[0].matrix.e: no files match 'inputs/*.png'",
        "spec.yaml:11:10: jobs[0].matrix.f: this axis has no values",
        "spec.yaml:12:25: jobs[0].matrix.g.range[2]: the step of a range cannot be 0",
    ]


def test_local_files_named_without_templates_must_exist(folder: Path) -> None:
    text = JOB + "    input:\n      image: {file: cat.png}\n      mask: {file: inputs}\n"
    (folder / "inputs").mkdir()
    assert errors(folder, text) == [
        "spec.yaml:5:21: jobs[0].input.image.file: file 'cat.png' does not exist",
        "spec.yaml:6:20: jobs[0].input.mask.file: 'inputs' is a folder, not a file",
    ]


def test_a_token_is_refused_and_never_echoed(folder: Path) -> None:
    token = "r8_" + "A1b2C3d4E5" * 4
    text = (
        f"# {token}\nbatchrun: 1\njobs:\n  - model: {token}\n"
        f"    input: {{auth: 'Bearer {'x' * 24}', p: 'hk-{'9' * 30}'}}\n"
    )
    found = errors(folder, text)
    assert found == [
        f"spec.yaml:1:3: {TOKEN_MESSAGE}",
        f"spec.yaml:4:12: jobs[0].model: {TOKEN_MESSAGE}",
        f"spec.yaml:5:20: jobs[0].input.auth: {TOKEN_MESSAGE}",
        f"spec.yaml:5:58: jobs[0].input.p: {TOKEN_MESSAGE}",
    ]
    assert token not in "\n".join(found)


def test_a_token_with_a_stray_character_in_it_is_not_echoed_either(folder: Path) -> None:
    # Found by test_spec_properties: a ':' typed into a token hides it from the token check,
    # and the rate's and target's own messages used to quote it whole.
    broken = "r8_xxxx:" + "x" * 26
    text = f"batchrun: 1\nrate: {broken}\njobs:\n  - model: {broken}\n    input: {{}}\n"
    assert errors(folder, text) == [
        "spec.yaml:2:7: rate: expected N/s, N/min or N/h, like 600/min;"
        " got (a value that looks like an API token)",
        "spec.yaml:4:12: jobs[0].model: expected owner/name or owner/name:VERSION (VERSION is"
        " 64 lowercase hex characters), like black-forest-labs/flux-schnell;"
        " got (a value that looks like an API token)",
    ]


def test_the_files_template_is_checked_at_load(folder: Path) -> None:
    text = (
        "batchrun: 1\nfiles: '/out/${job}/../${subject}/${nope}-${index}${ext}'\njobs:\n"
        "  - {model: a/b, input: {p: '${subject}'}, matrix: {subject: [x]}}\n"
        "  - {model: a/c, input: {}}\n"
    )
    assert errors(folder, text) == [
        "spec.yaml:2:8: files: the files template may not leave the run folder with '..'",
        "spec.yaml:2:8: files: the files template must be relative to the run folder",
        "spec.yaml:2:24: files: ${subject} is not a variable of job 'c'; the top-level files"
        " template names the files of every job without files of its own (give that job its"
        " own files)",
        "spec.yaml:2:35: files: unknown variable ${nope}; the variables are ext, index, job,"
        " key, output, repeat",
    ]


def test_the_schema_speaks_first_and_alone(folder: Path) -> None:
    text = "batchrun: 1\njobs:\n  - model: 5\n    input: {p: '${x}'}\n    matrix: 3\n"
    assert errors(folder, text) == [
        "spec.yaml:3:12: jobs[0].model: expected text, got 5"
        " (YAML reads it as a number or true/false; put it in quotes)",
        "spec.yaml:5:13: jobs[0].matrix: expected a mapping, got 3",
    ]


def test_every_issue_at_once_sorted_by_place(folder: Path) -> None:
    text = (
        "batchrun: 1\nwait: 0\njobs:\n  - model: a/b\n    input: {p: '${q}'}\n"
        "  - model: a\n    input: {}\n    extra: 1\n"
    )
    assert errors(folder, text) == [
        "spec.yaml:2:7: wait: expected a number from 1 to 60, got 0",
        "spec.yaml:5:17: jobs[0].input.p: unknown variable ${q}; this job has no matrix",
        "spec.yaml:6:12: jobs[1].model: expected owner/name or owner/name:VERSION"
        " (VERSION is 64 lowercase hex characters), like black-forest-labs/flux-schnell;"
        " got 'a'",
        "spec.yaml:8:5: jobs[1].extra: unknown field; the fields here are id, model, version,"
        " deployment, concurrency, price, timeout, input, matrix, exclude, include, repeat, files",
    ]


def test_a_spec_that_cannot_be_read(folder: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec("nothere.yaml")
    assert str(caught.value) == "nothere.yaml:1:1: cannot read this file: No such file or directory"
    (folder / "bad.yaml").write_bytes(b"batchrun: 1\nname: caf\xe9\n")
    with pytest.raises(SpecError) as bad:
        load_spec("bad.yaml")
    assert str(bad.value) == "bad.yaml:2:10: not valid UTF-8 text"


def test_paths_are_shown_relative_to_the_current_folder(folder: Path) -> None:
    sub = folder / "specs"
    sub.mkdir()
    (sub / "spec.yaml").write_text(
        "batchrun: 1\njobs:\n  - model: a/b\n    input: {p: '${s}'}\n"
        "    matrix: {s: {lines: s.txt}}\n    bad: 1\n",
        encoding="utf-8",
    )
    (sub / "s.txt").write_bytes(b"\xff\n")
    with pytest.raises(SpecError) as caught:
        load_spec(str(sub / "spec.yaml"))
    assert [str(issue) for issue in caught.value.issues] == [
        "specs/s.txt:1:1: jobs[0].matrix.s: not valid UTF-8 text",
        "specs/spec.yaml:6:5: jobs[0].bad: unknown field; the fields here are id, model, version,"
        " deployment, concurrency, price, timeout, input, matrix, exclude, include, repeat, files",
    ]


@pytest.mark.parametrize("name", ["quickstart", "sweep", "dataset"])
def test_the_example_specs_load(name: str) -> None:
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    assert spec.name == name
    assert spec.output == ROOT / "specs" / "runs" / name
    text = (ROOT / "specs" / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/batchrun.schema.json\n")


def test_license_is_an_identifier_for_the_dataset_card(folder: Path) -> None:
    write_spec(folder, "license: cc-by-4.0\n" + JOB + "    input: {prompt: hi}\n", as_is=True)
    assert load_spec("spec.yaml").license == "cc-by-4.0"
    assert errors(folder, 'license: "CC BY 4.0\\n---"\n' + JOB + "    input: {prompt: hi}\n") == [
        "spec.yaml:1:10: license: expected a license identifier in lower case, like cc-by-4.0, "
        "mit or other; got 'CC BY 4.0\\n---'"
    ]
