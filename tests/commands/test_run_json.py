"""`run --json` prints one JSON object on every exit, and a stopped run's summary says what was
stopped (issue 17, item 6): through the real command line, against the sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from runs import TOKEN, ids_recorded, sigint_at_start, wait_for, write_spec

from batchrun.cli import main
from batchrun.sandbox import Sandbox

SPEC = """
    batchrun: 1
    concurrency: 4
    jobs:
      - model: acme/painter
        input: {prompt: "p${i}", width: 64, height: 64}
        matrix:
          i: {range: [0, 40]}
    """

# A child that sends itself SIGINT as `batchrun.commands.run.load_spec` is called: Ctrl-C
# before the run began (started with SIGINT's default handling: see `runs.sigint_at_start`).
CTRL_C_BEFORE_THE_RUN = """
import os, signal, sys
import batchrun.commands.run as target

real = target.load_spec

def interrupted(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    return real(*args, **kwargs)

target.load_spec = interrupted
from batchrun.cli import main
sys.exit(main(sys.argv[1:]))
"""


# A child whose run fails with a bug of batchrun's (an exception that is no BatchrunError).
A_BUG_IN_THE_RUN = """
import sys
import batchrun.commands.run as target

def broken(*args, **kwargs):
    raise RuntimeError("a bug")

target.run = broken
from batchrun.cli import main
sys.exit(main(sys.argv[1:]))
"""


def env() -> dict[str, str]:
    out = {**os.environ, "REPLICATE_API_TOKEN": TOKEN}
    out.pop("BATCHRUN_DEBUG", None)
    return out


def one_object(text: str) -> dict[str, object]:
    """stdout holds exactly one JSON object."""
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def test_a_spec_error_prints_a_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, "batchrun: 1\njobs:\n  - model: acme/painter\n    input: 3\n")
    code = main(["run", str(spec), "--json", "--sandbox"])
    out, err = capsys.readouterr()
    assert code == 2
    data = one_object(out)
    assert (data["ok"], data["interrupted"], data["exit_code"]) == (False, False, 2)
    assert data["error"] == "1 error in the spec; nothing was sent"
    assert isinstance(data["issues"], list)
    assert len(data["issues"]) == 1
    assert str(data["issues"][0]).startswith(f"{spec}:4:")
    assert "1 error in the spec; nothing was sent" in err  # stderr says it as ever


def test_a_refused_token_prints_a_json_object(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served = make_sandbox(tokens=["r8_the_right_token_0123456789"])
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)  # not the one it takes
    spec = write_spec(tmp_path, SPEC)
    code = main(["run", str(spec), "--json", "--base-url", served.base_url])
    out, err = capsys.readouterr()
    assert code == 3, err
    data = one_object(out)
    assert (data["ok"], data["interrupted"], data["exit_code"]) == (False, False, 3)
    assert "401" in str(data["error"])
    assert TOKEN not in out


def test_ctrl_c_before_the_run_began_prints_a_json_object(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SPEC)
    child = subprocess.run(
        [sys.executable, "-c", CTRL_C_BEFORE_THE_RUN, "run", str(spec), "--json", "--sandbox"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=sigint_at_start(signal.SIG_DFL),
    )
    assert child.returncode == 130, child.stderr
    data = one_object(child.stdout)
    assert data == {
        "ok": False,
        "interrupted": True,
        "error": "interrupted before the run began; nothing was sent",
        "exit_code": 130,
    }


def test_a_bug_prints_a_json_object_too(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SPEC)
    child = subprocess.run(
        [sys.executable, "-c", A_BUG_IN_THE_RUN, "run", str(spec), "--json", "--sandbox"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 1, child.stderr
    assert one_object(child.stdout) == {
        "ok": False,
        "interrupted": False,
        "error": "internal error: RuntimeError: a bug",
        "exit_code": 1,
    }
    assert "batchrun: internal error: RuntimeError: a bug" in child.stderr


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_ctrl_c_mid_run_says_what_was_stopped(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], as_json: bool
) -> None:
    served = make_sandbox(latency=0.5)
    spec = write_spec(tmp_path, SPEC)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "batchrun", "run", str(spec), "--out", str(run_dir)]
    command += ["--base-url", served.base_url, "--progress", "none"]
    child = subprocess.Popen(
        [*command, *(["--json"] if as_json else [])],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_at_start(signal.SIG_DFL),
    )
    wait_for(lambda: ids_recorded(run_dir) >= 2, "the first predictions")
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "nothing to do" not in out + err
    if as_json:
        data = one_object(out)
        assert (data["ok"], data["interrupted"], data["surveyed"]) == (False, True, True)
        finished = sum(int(n) for n in dict(data["finished"]).values())  # type: ignore[call-overload]
        assert int(data["not_started"]) > 0  # type: ignore[call-overload]
        assert finished + int(data["not_started"]) + int(data["in_flight"]) == 40  # type: ignore[call-overload]
    else:
        assert out == ""
        summary = textwrap.dedent(err)
        assert " not started (stopped); run again to continue" in summary


def test_a_usage_error_prints_its_json_object_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["run", "spec.yaml", "--json", "--concurrency-typo", "3"])
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "ok": False,
        "interrupted": False,
        "error": "batchrun: error: unrecognized arguments: --concurrency-typo 3",
        "exit_code": 2,
    }
    assert err.splitlines()[-1] == "batchrun: error: unrecognized arguments: --concurrency-typo 3"
    # Without --json, argparse's words alone, as ever.
    with pytest.raises(SystemExit):
        main(["run", "spec.yaml", "--concurrency-typo", "3"])
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: ")
