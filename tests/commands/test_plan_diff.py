"""`batchrun plan SPEC --diff REV`: a pull request's spec against the spec at a git revision."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from runs import Git, RunCli, write_spec

from batchrun.planner.expand import iter_plan
from batchrun.spec.load import load_spec

SPEC = """
    batchrun: 1
    name: review
    jobs:
      - id: img
        model: acme/painter
        input:
          prompt: "${subject}, ${style}"
          seed: ${seed}
        matrix:
          subject: [a fox, a boat]
          style: {lines: shared/styles.txt}
          seed: [1, 2]
      - id: words
        model: acme/writer
        input: {prompt: "${row.q}"}
        matrix:
          row: {jsonl: questions.jsonl}
    """


@pytest.fixture
def repo(tmp_path: Path, git: Git) -> Path:
    """A git repo with one commit: a spec in specs/ that names value files in its folder."""
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    # Inside the spec's folder: a spec reads outside it only with --allow-outside (issue 13).
    (repo / "specs" / "shared").mkdir(parents=True)
    (repo / "specs" / "shared" / "styles.txt").write_text("ink\noil\n")
    (repo / "specs" / "questions.jsonl").write_text('{"q": "why?"}\n{"q": "how?"}\n')
    write_spec(repo / "specs", SPEC)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def edit(repo: Path) -> None:
    """The pull request: a style replaced (in the value file), a seed added, a question gone."""
    (repo / "specs" / "shared" / "styles.txt").write_text("ink\nchalk\n")
    spec = repo / "specs" / "spec.yaml"
    spec.write_text(spec.read_text().replace("seed: [1, 2]", "seed: [1, 2, 3]"))
    (repo / "specs" / "questions.jsonl").write_text('{"q": "why?"}\n')


def test_json_lists_exactly_the_added_and_removed(repo: Path, run_cli: RunCli) -> None:
    spec = repo / "specs" / "spec.yaml"
    before = {p.key: p for p in iter_plan(load_spec(spec))}
    edit(repo)
    after = {p.key: p for p in iter_plan(load_spec(spec))}

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD", "--json")

    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    added = {
        (d["job"], d["vars"]["subject"], d["vars"]["style"], d["vars"]["seed"])
        for d in lines
        if d["change"] == "added" and d["job"] == "img"
    }
    removed = {
        (d["job"], d["vars"]["subject"], d["vars"]["style"], d["vars"]["seed"])
        for d in lines
        if d["change"] == "removed" and d["job"] == "img"
    }
    # chalk is new (every seed), seed 3 is new (for ink too); oil is gone (seeds 1 and 2).
    assert added == {
        ("img", subject, style, seed)
        for subject in ("a fox", "a boat")
        for style, seeds in (("chalk", (1, 2, 3)), ("ink", (3,)))
        for seed in seeds
    }
    assert removed == {
        ("img", subject, "oil", seed) for subject in ("a fox", "a boat") for seed in (1, 2)
    }
    words = [(d["change"], d["vars"], d["input"]) for d in lines if d["job"] == "words"]
    assert words == [("removed", {"row": {"q": "how?"}}, {"prompt": "how?"})]
    # The keys are the plans' own: added = after - before, removed = before - after.
    assert {d["key"] for d in lines if d["change"] == "added"} == set(after) - set(before)
    assert {d["key"] for d in lines if d["change"] == "removed"} == set(before) - set(after)
    assert set(lines[0]) == {
        "change",
        "key",
        "job",
        "target",
        "vars",
        "input",
        "repeat",
        "recorded",
    }
    assert not any(line["recorded"] for line in lines)  # no manifest here


def words_key(spec: Path, question: str) -> str:
    """The key the spec, as it is on disk now, gives the question."""
    return next(
        p.key
        for p in iter_plan(load_spec(spec))
        if p.job == "words" and p.vars["row"]["q"] == question
    )


def test_the_text_and_the_markdown(repo: Path, run_cli: RunCli, git: Git) -> None:
    spec = repo / "specs" / "spec.yaml"
    commit = git(repo, "rev-parse", "HEAD").strip()[:12]
    removed_key = words_key(spec, "how?")
    (repo / "specs" / "questions.jsonl").write_text('{"q": "why?"}\n{"q": "what | when?"}\n')
    key = words_key(spec, "what | when?")

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD")
    assert (code, err) == (0, "")
    assert out == (
        f"{spec} against HEAD ({commit})\n"
        "\n"
        "job img: 0 added, 0 changed, 0 removed, 8 unchanged\n"
        "\n"
        "job words: 1 added, 0 changed, 1 removed, 1 unchanged\n"
        f'  + {key}  {{row: {{q: "what | when?"}}}}\n'
        f'  - {removed_key}  {{row: {{q: "how?"}}}}\n'
        "\n"
        "total: 1 added, 0 changed, 1 removed, 9 unchanged\n"
    )

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD", "--markdown")
    assert (code, err) == (0, "")
    assert out == (
        f"### batchrun plan: `{spec}` against `HEAD` ({commit})\n"
        "\n"
        "| job | added | changed | removed | unchanged | predict time to expect |\n"
        "|---|---:|---:|---:|---:|---|\n"
        "| `img` | 0 | 0 | 0 | 8 | — |\n"
        "| `words` | 1 | 0 | 1 | 1 | no recorded runs |\n"
        "| **total** | **1** | **0** | **1** | **9** | |\n"
        "\n"
        "<details><summary><code>words</code>: 1 prediction added</summary>\n"
        "\n"
        "| key | row.q | input.prompt |\n"
        "|---|---|---|\n"
        f"| `{key}` | what \\| when? | what \\| when? |\n"
        "\n"
        "</details>\n"
        "\n"
        "<details><summary><code>words</code>: 1 prediction removed</summary>\n"
        "\n"
        "| key | row.q | input.prompt |\n"
        "|---|---|---|\n"
        f"| `{removed_key}` | how? | how? |\n"
        "\n"
        "</details>\n"
    )


def test_predict_time_to_expect_from_the_manifest(repo: Path, run_cli: RunCli) -> None:
    spec_path = repo / "specs" / "spec.yaml"
    spec = load_spec(spec_path)
    spec.output.mkdir(parents=True)
    # The manifest as its format (docs/manifest.md) has it: a header, then records.
    lines = [{"batchrun_manifest": 1, "spec": str(spec_path), "name": spec.name}]
    for planned in iter_plan(spec):
        if planned.job == "img" and planned.vars["seed"] == 1:
            seconds = 2.0 if planned.vars["style"] == "ink" else 4.0
            record = {**planned.to_json(), "status": "succeeded"}
            lines.append({**record, "metrics": {"predict_time": seconds}})
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (spec.output / "manifest.jsonl").write_text(text)
    edit(repo)

    code, out, err = run_cli("plan", str(spec_path), "--diff", "HEAD")

    assert (code, err) == (0, "")
    # 8 added img predictions at the mean of 2, 2, 4, 4 seconds: 24 seconds.
    # Of the 4 removed (oil, seeds 1 and 2), the 2 of seed 1 ran: their results stay.
    assert (
        "job img: 8 added, 0 changed, 4 removed (2 of them recorded: their results stay in the run "
        "folder), 4 unchanged; about 24.0s of predict time to run (3.0s each, the mean of 4 "
        "recorded runs)\n"
    ) in out
    assert sum(line.endswith("  (recorded)") for line in out.splitlines()) == 2
    code, out, err = run_cli("plan", str(spec_path), "--diff", "HEAD", "--json")
    removed = [json.loads(line) for line in out.splitlines() if '"removed"' in line]
    ran = sorted((d["vars"]["style"], d["vars"]["seed"]) for d in removed if d["recorded"])
    assert ran == [("oil", 1), ("oil", 1)]


def test_a_spec_new_in_the_pull_request(repo: Path, run_cli: RunCli) -> None:
    spec = write_spec(
        repo / "specs", "batchrun: 1\njobs: [{model: a/b, input: {x: 1}}]\n", "new.yaml"
    )

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD", "--json")

    assert (code, err) == (0, "")
    assert [json.loads(line)["change"] for line in out.splitlines()] == ["added"]
    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD")
    assert "(the spec is not in HEAD: every prediction is added)\n" in out


def test_files_marked_export_ignore_are_read_too(repo: Path, run_cli: RunCli, git: Git) -> None:
    # `git archive` would leave this value file out; the revision's spec reads it all the same.
    (repo / ".gitattributes").write_text("shared/** export-ignore\n")
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-q", "-m", "attributes")
    spec = repo / "specs" / "spec.yaml"

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD")

    assert (code, err) == (0, "")
    assert out.endswith("total: 0 added, 0 changed, 0 removed, 10 unchanged\n")


def test_errors(repo: Path, tmp_path: Path, run_cli: RunCli) -> None:
    spec = repo / "specs" / "spec.yaml"
    code, out, err = run_cli("plan", str(spec), "--diff", "nope")
    assert (code, out) == (2, "")
    assert err == f"batchrun: --diff nope: no such git revision in {repo}\n"

    outside = write_spec(tmp_path, "batchrun: 1\njobs: [{model: a/b, input: {x: 1}}]\n")
    code, out, err = run_cli("plan", str(outside), "--diff", "HEAD")
    assert (code, out, err) == (2, "", f"batchrun: --diff: {outside} is not in a git repository\n")

    code, out, err = run_cli("plan", str(spec), "--markdown")
    assert (code, err) == (2, "batchrun: --markdown shows a diff: use it with --diff REV\n")

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD", "--shard", "1/2")
    said = "batchrun: --diff compares whole plans; it takes no --shard, --sample or --limit\n"
    assert (code, err) == (2, said)


# --- changed, not added and removed (issue 19) --------------------------------------------

SWEEP = """
    batchrun: 1
    jobs:
      - id: img
        model: acme/painter
        input: {prompt: "${subject}, ${style}", seed: "${seed}"}
        matrix:
          subject: [a fox, a boat]
          style: [ink, oil, chalk]
          seed: [1, 2, 3, 4]
      - id: words
        model: acme/writer
        input: {prompt: "${q}"}
        matrix:
          q: [why?, how?]
    """


@pytest.fixture
def sweep(tmp_path: Path, git: Git) -> Path:
    """A repo whose spec sweeps 24 images and 2 questions, committed."""
    repo = tmp_path / "sweep"
    (repo / "specs").mkdir(parents=True)
    spec = write_spec(repo / "specs", SWEEP)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return spec


def detailed(spec: Path) -> None:
    """The issue's edit: ', highly detailed' appended to the image prompt's template."""
    text = spec.read_text().replace('${style}"', '${style}, highly detailed"')
    spec.write_text(text)


def test_a_template_edit_is_24_changed_predictions_in_json(sweep: Path, run_cli: RunCli) -> None:
    before = {(p.job, json.dumps(p.vars)): p for p in iter_plan(load_spec(sweep))}
    detailed(sweep)
    after = {(p.job, json.dumps(p.vars)): p for p in iter_plan(load_spec(sweep))}

    code, out, err = run_cli("plan", str(sweep), "--diff", "HEAD", "--json")

    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["change"] for line in lines] == ["changed"] * 24
    for line in lines:
        row = ("img", json.dumps(line["vars"]))
        assert (line["key"], line["was"]) == (after[row].key, before[row].key)
        assert line["before"] == {
            "prompt": before[row].input["prompt"],
            "seed": line["vars"]["seed"],
        }
        assert line["input"]["prompt"] == line["before"]["prompt"] + ", highly detailed"
        assert line["fields"] == ["input.prompt"]
        assert line["target"] == line["before_target"] == {"model": "acme/painter"}
        assert (line["recorded"], line["was_recorded"], line["repeat"]) == (False, False, 0)


def test_a_template_edit_shows_once_with_its_rows_folded_under_it(
    sweep: Path, run_cli: RunCli
) -> None:
    detailed(sweep)

    code, out, err = run_cli("plan", str(sweep), "--diff", "HEAD")

    assert (code, err) == (0, "")
    assert "job img: 0 added, 24 changed, 0 removed, 0 unchanged\n" in out
    header = (
        "  ~ input.prompt: '${subject}, ${style}' → '${subject}, ${style}, highly detailed'"
        "  (24 predictions)\n"
    )
    assert out.count("~ input.prompt") == 1
    assert header in out
    rows = [line for line in out.splitlines() if line.startswith("      ") and "(was " in line]
    assert len(rows) == 24
    assert rows[0].endswith("  {subject: a fox, style: ink, seed: 1}")
    assert out.endswith("total: 0 added, 24 changed, 0 removed, 2 unchanged\n")

    code, out, err = run_cli("plan", str(sweep), "--diff", "HEAD", "--markdown")
    assert (code, err) == (0, "")
    assert "| `img` | 0 | 24 | 0 | 0 | no recorded runs |\n" in out
    assert out.count("input.prompt</code>:") == 1
    assert (
        "- `~` <code>input.prompt</code>: <code>${subject}, ${style}</code> → "
        "<code>${subject}, ${style}, highly detailed</code>\n"
    ) in out
    folded = out[out.index("<details>") : out.index("</details>")]
    assert "| key | was | subject | style | seed | input.prompt: before → after |\n" in folded
    assert folded.count("| a fox, ink → a fox, ink, highly detailed |") == 4  # seeds 1 to 4
    assert sum(line.startswith("| `") for line in folded.splitlines()) == 24


def test_a_new_model_for_a_job_is_a_change_of_target(sweep: Path, run_cli: RunCli) -> None:
    sweep.write_text(sweep.read_text().replace("acme/writer", "acme/writer-2"))

    code, out, err = run_cli("plan", str(sweep), "--diff", "HEAD")

    assert (code, err) == (0, "")
    assert "job words: 0 added, 2 changed, 0 removed, 0 unchanged\n" in out
    assert "  ~ target: 'acme/writer' → 'acme/writer-2'  (2 predictions)\n" in out
    code, out, err = run_cli("plan", str(sweep), "--diff", "HEAD", "--json")
    line = json.loads(out.splitlines()[0])
    assert (line["before_target"], line["target"]) == (
        {"model": "acme/writer"},
        {"model": "acme/writer-2"},
    )
    assert line["fields"] == ["target"]
    assert line["before"] == line["input"]


def test_a_changed_file_shows_each_rows_values(tmp_path: Path, run_cli: RunCli, git: Git) -> None:
    repo = tmp_path / "files"
    (repo / "specs" / "in").mkdir(parents=True)
    (repo / "specs" / "in" / "a.txt").write_text("one")
    spec = write_spec(
        repo / "specs",
        """
        batchrun: 1
        jobs:
          - model: acme/reader
            input: {doc: {file: "${path}"}}
            matrix:
              path: [in/a.txt]
        """,
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "specs" / "in" / "a.txt").write_text("two!")

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD")

    assert (code, err) == (0, "")
    assert (
        '  ~ input.doc: written alike ({file: "${path}"}), but a file it names changed'
        "  (1 prediction)\n"
    ) in out
    one, two = (hashlib.sha256(text).hexdigest()[:12] for text in (b"one", b"two!"))
    assert (
        f"        input.doc: {{file: in/a.txt, sha256: {one}, size: 3}}"
        f" → {{file: in/a.txt, sha256: {two}, size: 4}}\n"
    ) in out


def test_the_markdown_stays_within_githubs_limit_and_says_what_it_left_out(
    tmp_path: Path, run_cli: RunCli, git: Git
) -> None:
    repo = tmp_path / "big"
    (repo / "specs").mkdir(parents=True)
    words = " ".join(["a long and winding prompt"] * 4)
    spec = write_spec(
        repo / "specs",
        f"""
        batchrun: 1
        jobs:
          - id: a
            model: acme/painter
            input: {{prompt: "{words} ${{n}}"}}
            matrix:
              n: {{range: [0, 400]}}
          - id: b
            model: acme/writer
            input: {{prompt: "{words} ${{n}}"}}
            matrix:
              n: {{range: [0, 400]}}
        """,
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    spec.write_text(spec.read_text().replace("[0, 400]", "[400, 800]").replace("acme/w", "acme/v"))

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD", "--markdown")

    assert (code, err) == (0, "")
    assert len(out) <= 60_000 < 65_536
    # Both jobs' lists are there, each with as many rows as fit, and the rest counted.
    assert out.count("<details>") == 4
    shown = sum(line.startswith("| `") for line in out.splitlines()) - 2  # less the job counts
    assert 100 < shown < 1600
    assert f"{1600 - shown:,} of 1,600 rows are not shown, to keep this comment within" in out
    assert out.endswith("`batchrun plan SPEC --diff REV --json` lists every one.\n")


# --- a base that does not load -------------------------------------------------------------


def test_a_base_that_does_not_load_compares_as_empty(repo: Path, run_cli: RunCli, git: Git) -> None:
    spec = repo / "specs" / "spec.yaml"
    good = spec.read_text()
    spec.write_text(good.replace("batchrun: 1", "batchrun: 1\nbogus: 2"))
    git(repo, "commit", "-q", "-am", "broken")
    spec.write_text(good)

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD")

    assert (code, err) == (0, "")
    note = [line for line in out.splitlines() if "does not load" in line]
    assert len(note) == 1
    assert note[0].startswith(
        "(the spec at HEAD does not load, so every prediction counts as added: "
        "HEAD:specs/spec.yaml:2:1: "
    )
    assert out.endswith("total: 10 added, 0 changed, 0 removed, 0 unchanged\n")

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD", "--markdown")
    assert code == 0
    assert "The spec at HEAD does not load, so every prediction counts as added: " in out

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD", "--json")
    assert code == 0
    assert err.startswith("batchrun: the spec at HEAD does not load, so every prediction")
    assert err.count("\n") == 1
    assert {json.loads(line)["change"] for line in out.splitlines()} == {"added"}


def test_a_base_missing_a_file_it_names_compares_as_empty(
    repo: Path, run_cli: RunCli, git: Git
) -> None:
    git(repo, "rm", "-q", "specs/questions.jsonl")
    git(repo, "commit", "-q", "-m", "the value file is gone")
    (repo / "specs" / "questions.jsonl").write_text('{"q": "why?"}\n')
    spec = repo / "specs" / "spec.yaml"

    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD")

    assert (code, err) == (0, "")
    assert "(the spec at HEAD does not load, so every prediction counts as added: " in out
    assert "questions.jsonl" in out.splitlines()[1]
    assert out.endswith("total: 9 added, 0 changed, 0 removed, 0 unchanged\n")
