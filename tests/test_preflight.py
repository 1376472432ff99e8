"""Issue 10: nothing is paid for before everything that can be checked was checked.

Each test is one mistake from the issue, made as a new user would, run over a socket against
the sandbox; it counts the creates the sandbox received (0, or 1 where a create is the probe).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import TOKEN, write_spec

from batchrun.cli import main
from batchrun.sandbox import Sandbox


def creates(sandbox: Sandbox) -> int:
    return int(sandbox.state.snapshot()["creates"])


def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_field_the_files_template_cannot_fill_sends_nothing(
    tmp_path: Path,
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "subjects.txt").write_text("a red fox\nan old lighthouse\n")
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        files: "images/${subject.name}/${seed}${ext}"
        jobs:
          - model: acme/painter
            input: {prompt: "${subject}", seed: "${seed}"}
            matrix:
              subject: {lines: subjects.txt}
              seed: [1, 2]
        """,
    )
    message = (
        f"{spec}:2:8: files: ${{subject.name}}: 'name' is a path field, but 'a red fox' is"
        " not a path (a value from {glob:}, or text with a '/' or an extension), in the row"
        " {subject: a red fox, seed: 1} of job 'painter'"
    )
    for command in ("validate", "plan"):
        code, _, err = cli(capsys, monkeypatch, command, str(spec))
        assert (code, err.splitlines()[0]) == (2, message)
    code, _, err = cli(capsys, monkeypatch, "run", str(spec), "--base-url", sandbox.base_url)
    assert (code, err.splitlines()[0]) == (2, message)
    assert creates(sandbox) == 0


def test_path_fields_name_files_after_their_inputs(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "inputs").mkdir()
    for name in ("cat.png", "dog.png"):
        (tmp_path / "inputs" / name).write_bytes(b"not really a png")
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        files: "${img.stem}-${output}${ext}"
        jobs:
          - model: acme/painter
            input: {prompt: "${img}", image: {file: "${img}"}}
            matrix:
              img: {glob: "inputs/*.png"}
        """,
    )
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    out = tmp_path / "r"
    argv = ["run", str(spec), "--base-url", sandbox.base_url, "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["cat-0.png", "dog-0.png"]


def test_two_keys_mapped_to_one_file_send_nothing(
    tmp_path: Path,
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        files: "images/${subject}${ext}"
        jobs:
          - model: acme/painter
            input: {prompt: "${subject}", seed: "${seed}"}
            matrix:
              subject: [a red fox]
              seed: [1, 2, 3]
        """,
    )
    code, _, err = cli(capsys, monkeypatch, "validate", str(spec))
    assert code == 2
    assert err.count("this template names the files of the row") == 2
    code, _, err = cli(capsys, monkeypatch, "run", str(spec), "--base-url", sandbox.base_url)
    assert code == 2
    assert "{subject: a red fox, seed: 2} and of the row {subject: a red fox, seed: 1}" in err
    assert creates(sandbox) == 0


def test_every_duplicate_csv_row_is_reported_in_one_pass_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = [f"prompt {i}" for i in range(20)] + [f"prompt {i}" for i in range(13)]
    (tmp_path / "rows.csv").write_text(
        "prompt,id\n" + "".join(f"{p},{n}\n" for n, p in enumerate(prompts))
    )
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "${row.prompt}"}
            matrix:
              row: {csv: rows.csv}
        """,
    )
    code, _, err = cli(capsys, monkeypatch, "validate", str(spec))
    assert code == 2
    lines = err.splitlines()
    assert lines[-1] == f"{spec}: 13 errors"
    csv = tmp_path / "rows.csv"
    assert [line.split(": this row")[0] for line in lines[:-1]] == [
        f"{csv}:{22 + n}:1: jobs[0].matrix.row" for n in range(13)
    ]
    assert lines[0].endswith(
        "makes the same prediction as the row at line 2 (key "
        + lines[0].split("(key ")[1].split(")")[0]
        + "); rows must differ in what they send (repeat: runs one input several times)"
    )
