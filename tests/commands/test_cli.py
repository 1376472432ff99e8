from __future__ import annotations

import pytest

from batchrun import cli
from batchrun.errors import (
    ApiConnectionError,
    AuthenticationError,
    ManifestError,
    ServerError,
    SpecError,
    SpecIssue,
    StorageError,
    UsageError,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SpecError([SpecIssue("s.yaml", 1, 1, "jobs", "bad")]), 2),
        (UsageError("bad option"), 2),
        (AuthenticationError("401"), 3),
        (ApiConnectionError("unreachable"), 3),
        (ServerError("502 again and again"), 3),
        (ManifestError("torn"), 1),
        (StorageError("disk full"), 1),
    ],
)
def test_every_error_has_its_exit_code(error: Exception, code: int) -> None:
    assert cli.exit_code_for(error) == code  # type: ignore[arg-type]


def test_a_bug_is_one_line_without_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_supersecrettoken123")

    def broken(args: object) -> int:
        raise RuntimeError("boom with r8_supersecrettoken123 inside")

    monkeypatch.setattr("batchrun.commands.status.main", broken)
    monkeypatch.delenv("BATCHRUN_DEBUG", raising=False)
    assert cli.main(["status", "anything"]) == 1
    assert capsys.readouterr().err == (
        "batchrun: internal error: RuntimeError: boom with *** inside\n"
        "batchrun: this is a bug; run again with BATCHRUN_DEBUG=1 to see where it happened\n"
    )


def test_a_missing_run_folder_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "no/such/place"]) == 2
    assert capsys.readouterr().err == "batchrun: no/such/place: no such run folder or spec file\n"


def test_python_dash_m_batchrun_is_the_cli() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "batchrun", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("batchrun ")
