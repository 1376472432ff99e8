"""What `batchrun` alone and `--help` show."""

from __future__ import annotations

import pytest

from batchrun import cli


def test_bare_batchrun_prints_help_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: batchrun [-h] [--version] COMMAND ...\n")
    assert "    run       run what the plan says is left\n" in out
    assert err == ""


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["lock", "--help"]])
def test_help_lists_the_environment_variables(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.endswith(cli.ENVIRONMENT_HELP + "\n")
    for name in ("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "BATCHRUN_DEBUG", "token_env"):
        assert name in cli.ENVIRONMENT_HELP
