"""`--json` on every command that reports something, and `batchrun completion SHELL`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from runs import write_spec

from batchrun import cli
from batchrun.commands.completion import completion_script
from batchrun.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]


def test_validate_json_gives_each_spec_its_counts_or_its_placed_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in ("specs", "tests/specs"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("runs"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)
    code = cli.main(["validate", "--json", "specs/quickstart.yaml", "tests/specs/rows.yaml"])
    out, err = capsys.readouterr()
    assert (code, err) == (2, "")
    assert json.loads(out) == {
        "ok": False,
        "specs": [
            {
                "spec": "specs/quickstart.yaml",
                "ok": True,
                "predictions": 6,
                "jobs": 1,
                # Where a run would send the token, and from which variable (issue 13).
                "api": "https://api.replicate.com",
                "token_env": "REPLICATE_API_TOKEN",
                "run_refuses": None,
            },
            {
                "spec": "tests/specs/rows.yaml",
                "ok": False,
                "errors": [
                    {
                        "file": "tests/specs/rows.yaml",
                        "line": 13,
                        "column": 9,
                        "path": "jobs[0].include[2]",
                        "message": "this row ({fruit: banana}) has no variable 'animal', "
                        "which jobs[0].input.prompt uses",
                    }
                ],
            },
        ],
    }
    assert cli.main(["validate", "--json", "specs/quickstart.yaml"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_lock_json_says_what_was_pinned(
    tmp_path: Path,
    sandbox: Sandbox,
    token_in_env: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "a"}
          - model: black-forest-labs/flux-schnell
            input: {prompt: "b"}
        """,
    )
    assert cli.main(["lock", str(spec), "--base-url", sandbox.base_url, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    latest = sandbox.state.model("acme", "painter").latest.id
    assert json.loads(out) == {
        "lock": str(tmp_path / "spec.yaml.lock"),
        "pins": [
            {"model": "acme/painter", "version": latest, "reason": None},
            {
                "model": "black-forest-labs/flux-schnell",
                "version": None,
                "reason": "an official model: it always runs its latest version",
            },
        ],
    }


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "batchrun" in script
    for word in ("validate", "status", "retry-failed", "progress"):
        assert word in script, word


def test_the_bash_completion_completes_commands_options_and_choices(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    script = tmp_path / "batchrun.bash"
    script.write_text(completion_script(cli.build_parser(), "bash"), encoding="utf-8")

    def complete(*words: str) -> str:
        words_array = " ".join(f"'{w}'" for w in ("batchrun", *words))
        probe = (
            f"source {script}; COMP_WORDS=({words_array}); COMP_CWORD={len(words)}; "
            '_shtab_batchrun; echo "${COMPREPLY[@]}"'
        )
        done = subprocess.run([bash, "-c", probe], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert complete("st") == "status"
    assert complete("run", "--pro") == "--progress"
    assert complete("run", "--progress", "") == "auto bar lines none"
