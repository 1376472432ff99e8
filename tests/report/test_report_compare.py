"""`batchrun report RUN --compare OTHER`: two runs side by side, paired by job and variables."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from runs import TOKEN, Git, write_spec

from batchrun.cli import main
from batchrun.sandbox import Sandbox

SPEC = """
batchrun: 1
output: runs/review
jobs:
  - id: img
    model: acme/painter
    input: {prompt: "${subject}, ${style}", width: 64, height: 64}
    matrix:
      subject: [a fox, a boat]
      style: [ink, oil]
  - id: words
    model: acme/writer-llm
    input: {prompt: "tell me about ${q}"}
    matrix:
      q: [foxes, kites]
"""


def edit(spec: Path) -> None:
    """The change under review: a detail in the image prompt, another question, a new one."""
    text = spec.read_text().replace('${style}"', '${style}, highly detailed"')
    text = text.replace("tell me about", "write a haiku about").replace("kites]", "kites, owls]")
    spec.write_text(text)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git: Git) -> Path:
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    write_spec(repo / "specs", SPEC, "sweep.yaml")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.chdir(repo)
    return repo


def run(sandbox: Sandbox, spec: str, out: str) -> None:
    assert main(["run", spec, "--base-url", sandbox.base_url, "--out", out, "-q"]) == 0


def pairs(page: str) -> list[str]:
    found = re.findall(r'<section class="pair" id="p-[0-9a-f]{16}">\n<h3>([^<]*) <span', page)
    return [html.unescape(text) for text in found]


def test_two_run_folders_side_by_side(
    repo: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sandbox, "specs/sweep.yaml", "before")
    edit(repo / "specs" / "sweep.yaml")
    run(sandbox, "specs/sweep.yaml", "after")
    capsys.readouterr()

    assert main(["report", "after", "--compare", "before"]) == 0
    assert capsys.readouterr().out == "after/compare.html\n"
    page = (repo / "after" / "compare.html").read_text()

    # Every row both runs have is a pair, by job and variables; owls only in the new one.
    assert pairs(page) == [
        'img: subject "a boat", style "ink"',
        'img: subject "a boat", style "oil"',
        'img: subject "a fox", style "ink"',
        'img: subject "a fox", style "oil"',
        'words: q "foxes"',
        'words: q "kites"',
    ]
    assert "<dt>pairs</dt><dd>6: 6 asked differently, 0 the same</dd>" in page
    # The inputs that differ, above each pair.
    assert (
        '<li><code>input.prompt</code>: <code class="old">a fox, ink</code> → '
        '<code class="new">a fox, ink, highly detailed</code></li>'
    ) in page
    # Old and new side by side, the images embedded: the page stands alone.
    assert page.count("<h4>before · before</h4>") == page.count("<h4>after · after</h4>") == 6
    assert page.count('<img src="data:image/png;base64,') == 8
    # Text outputs as a diff.
    assert page.count('<pre class="textdiff">') == 2
    assert "<del>tell</del>" in page
    assert re.search(r"<ins>[^<]*write a haiku[^<]*</ins> about foxes", page)
    # Only in one run: listed apart.
    assert '<h2>Only in after <span class="count">1 prediction</span></h2>' in page
    assert "Only in before" not in page
    assert "<h4>words: q &quot;owls&quot;</h4>" in page
    assert "script-src 'none'" in page


def test_a_git_revision_of_the_spec_looked_up_in_its_run_folder(
    repo: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str], git: Git
) -> None:
    spec = "specs/sweep.yaml"
    run(sandbox, spec, "specs/runs/review")  # main's run, where the spec puts it
    edit(repo / spec)
    run(sandbox, spec, "specs/runs/review")  # the change's run, into the same folder
    capsys.readouterr()

    assert main(["report", spec, "--compare", "main", "--output", "review.html"]) == 0
    page = (repo / "review.html").read_text()
    commit = git(repo, "rev-parse", "HEAD")[:12]
    assert f"<h4>before · main ({commit})</h4>" in page
    assert len(pairs(page)) == 6
    assert "<dt>pairs</dt><dd>6: 6 asked differently, 0 the same</dd>" in page
    assert f"<dt>only in main ({commit})</dt><dd>0</dd>" in page
    assert "<dt>only in specs/runs/review</dt><dd>1</dd>" in page


def test_what_compare_cannot_compare(
    repo: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sandbox, "specs/sweep.yaml", "after")
    capsys.readouterr()
    assert main(["report", "after", "--compare", "nowhere"]) == 2
    assert capsys.readouterr().err == (
        "batchrun: --compare nowhere: not a run folder; to compare with a git revision, name the"
        " spec: `batchrun report SPEC --compare REV`\n"
    )
    run(sandbox, "specs/sweep.yaml", "specs/runs/review")
    capsys.readouterr()
    assert main(["report", "specs/sweep.yaml", "--compare", "nope"]) == 2
    assert capsys.readouterr().err == f"batchrun: --compare nope: no such git revision in {repo}\n"
