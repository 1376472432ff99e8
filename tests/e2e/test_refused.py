"""Issue 17, items 3 and 8: a create the API refused is a create that never happened, and every
message names what is actually in use.

Each test runs the real command line (`batchrun.cli.main`) against the sandbox over a socket: a
wrong token, a base URL without the proxy's path, a version the API refuses, a misspelled model.
The key of a refused create stays "not started" (never `submitting`, never failed, never a
possible duplicate), and the run after the fix creates it without `--retry-failed`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from runs import RunCli, records, run_argv, write_spec

from batchrun.commands.python_api import plan
from batchrun.commands.python_api import run as run_api
from batchrun.errors import AuthenticationError
from batchrun.sandbox import Sandbox

KEYS = 10
SPEC = """
batchrun: 1
concurrency: 4
jobs:
  - {target}
    input: {{prompt: "p${{i}}"}}
    matrix: {{i: {{range: [0, {keys}]}}}}
"""
# A version id the sandbox did not derive: with `strict_versions` it refuses it (422), as
# Replicate refuses a version it does not have.
UNKNOWN_VERSION = "f" * 64


def spec_for(folder: Path, target: str = "model: acme/painter", keys: int = KEYS) -> Path:
    return write_spec(folder, SPEC.format(target=target, keys=keys))


def states(spec: Path, out: Path) -> Counter[str]:
    """How many planned keys stand where, as `plan` says."""
    return Counter(str(row["state"]) for row in plan(spec, out=out))


def creates_sent(sandbox: Sandbox) -> int:
    """Create requests the sandbox answered, refused or not."""
    requests = sandbox.state.snapshot()["requests"]
    return sum(n for route, n in requests.items() if route.startswith("POST"))


def assert_not_started(run_dir: Path, refused: int) -> None:
    """Every recorded key is done, or (`refused` of them) recorded as not created."""
    found = records(run_dir).values()
    assert not [r.key for r in found if r.status == "submitting"]
    assert not [r.key for r in found if r.possible_duplicate]
    not_created = [r for r in found if r.not_created]
    assert len(not_created) == refused
    assert {r.status for r in not_created} <= {"error"}
    assert {r.status for r in found if not r.not_created} <= {"succeeded"}


def test_a_revoked_token_leaves_keys_not_started_and_the_next_run_creates_them(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy: no list of predictions, so a key left `submitting` would be created again and
    # flagged as a possible duplicate.
    sandbox = make_sandbox(tokens=["hk-old"], list_endpoint=False)
    spec, out = spec_for(tmp_path), tmp_path / "run"
    argv = run_argv(spec, sandbox, out=out)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "hk-old")
    assert run_cli(*argv, "--limit", "1")[0] == 0  # the pre-flight is recorded

    # The token is refused for creates only (revoked between the pre-flight's reads and the
    # creates; or a proxy key allowed to read but not to spend): the creates meet the 401.
    sandbox.configure(error_rate=1.0, error_methods=frozenset({"POST"}), error_status=401)
    code, _, err = run_cli(*argv)
    assert code == 3
    assert err.rstrip().endswith("; check the API token in $REPLICATE_API_TOKEN")
    assert creates_sent(sandbox) > 1  # creates met the 401
    assert int(sandbox.state.snapshot()["creates"]) == 1
    refused = len([r for r in records(out).values() if r.not_created])
    assert refused >= 1
    assert_not_started(out, refused)
    assert states(spec, out) == {"done": 1, "new": KEYS - 1}
    code, stdout, _ = run_cli("plan", str(spec), "--out", str(out))
    assert code == 0
    assert "(1 prediction recorded in 1 manifest)" in stdout
    code, stdout, _ = run_cli("status", str(out))
    assert code == 1
    assert stdout.splitlines()[0].endswith(": 1 predictions in 1 manifest")
    assert f"1 of {KEYS} done, {KEYS - 1} not started" in stdout.splitlines()
    assert "failures:" not in stdout

    sandbox.configure(error_rate=0.0)  # the token is good for creates again
    code, _, err = run_cli(*argv)
    assert code == 0, err
    assert "may have run twice" not in err
    assert "failed in an earlier run" not in err
    assert int(sandbox.state.snapshot()["creates"]) == KEYS
    assert_not_started(out, 0)
    code, stdout, _ = run_cli("status", str(out))
    assert code == 0
    assert "possible duplicates" not in stdout


def test_a_base_url_without_the_proxy_path_fails_nothing_and_the_fixed_url_runs_all(
    tmp_path: Path,
    sandbox: Sandbox,
    run_cli: RunCli,
    token_in_env: str,
) -> None:
    spec, out = spec_for(tmp_path), tmp_path / "run"
    wrong = sandbox.base_url + "/replicate"  # the sandbox serves the API at its root
    argv = ["run", str(spec), "--out", str(out), "--base-url"]
    for _ in range(2):  # each run refused alike: still nothing failed
        code, _, err = run_cli(*argv, wrong)
        assert code == 1
        assert (
            f"no model acme/painter at {wrong}, or no predictions endpoint there; check the"
            " name in the spec, and the base URL" in err
        )
        assert f"  {KEYS} not started (stopped); run again to continue" in err.splitlines()
        assert "  predictions: none created: the API's answers stopped the work (below)" in err
        assert_not_started(out, 1)
        assert states(spec, out) == {"new": KEYS}
    # The refused key is no prediction: `verify` names it as not started, not as failed.
    (refused,) = [r for r in records(out).values() if r.not_created]
    code, stdout, _ = run_cli("verify", str(out))
    assert code == 1
    assert f"{refused.key}: not started (job painter)" in stdout.splitlines()
    assert len(stdout.splitlines()) == KEYS  # every key, the refused one among them

    code, _, err = run_cli(*argv, sandbox.base_url)
    assert code == 0, err
    assert "failed in an earlier run" not in err
    assert f"predictions: succeeded {KEYS}" in err
    assert int(sandbox.state.snapshot()["creates"]) == KEYS


def test_the_refusals_that_stop_a_job_leave_its_keys_not_started(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
    token_in_env: str,
) -> None:
    sandbox = make_sandbox(strict_versions=True)
    spec = spec_for(tmp_path, target=f"version: {UNKNOWN_VERSION}")
    out = tmp_path / "run"
    argv = run_argv(spec, sandbox, out=out)
    code, _, err = run_cli(*argv)
    assert code == 1
    assert creates_sent(sandbox) == 3  # the same field refused three times stops the job
    lines = err.splitlines()
    assert f"  {KEYS} not started (stopped); run again to continue" in lines
    assert "  failures:" not in lines
    assert "  predictions: none created: the API's answers stopped the work (below)" in err
    # The first two were refused before the third showed the job's mistake: not created too.
    assert_not_started(out, 3)
    assert states(spec, out) == {"new": KEYS}

    sandbox.configure(strict_versions=False)  # the API now serves the version
    code, _, err = run_cli(*argv)
    assert code == 0, err
    assert int(sandbox.state.snapshot()["creates"]) == KEYS
    assert_not_started(out, 0)


def test_a_key_refused_for_its_own_input_stays_failed(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
    token_in_env: str,
) -> None:
    # One row asks for more outputs than the model gives; the others are fine. Without a models
    # endpoint, the pre-flight cannot check inputs: the API's 422 is that key's own.
    sandbox = make_sandbox(models_endpoint=False)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p", num_outputs: "${n}"}
            matrix: {n: [1, 9, 2]}
        """,
    )
    out = tmp_path / "run"
    argv = run_argv(spec, sandbox, out=out)
    code, _, _ = run_cli(*argv)
    assert code == 1
    (refused,) = [r for r in records(out).values() if r.status == "error"]
    assert not refused.not_created
    assert states(spec, out) == {"done": 2, "failed": 1}


def test_a_404_is_no_such_model_where_the_api_answered_for_another(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
    token_in_env: str,
) -> None:
    # A proxy that looks models up by name but does not list them: its answer for one model
    # shows the endpoint is there, so its 404 for the other means no such model.
    sandbox = make_sandbox(only_models=["acme/painter"], models_list=False)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "a"}
          - model: acme/paintr
            input: {prompt: "b"}
        """,
    )
    message = (
        f"{spec}:5:12: jobs[1].model: the API at {sandbox.base_url} has no model acme/paintr;"
        " check its spelling, and the base URL: a proxy serves the API under a path, like"
        " https://host/replicate"
    )
    for command in ("run", "validate"):
        extra = ["--online"] if command == "validate" else []
        code, _, err = run_cli(command, str(spec), *extra, "--base-url", sandbox.base_url)
        assert code == 2
        assert "no endpoint" not in err
        assert err.splitlines()[0] == message
    assert creates_sent(sandbox) == 0


def test_a_404_the_api_cannot_explain_is_worded_as_either(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
    token_in_env: str,
) -> None:
    sandbox = make_sandbox(models_endpoint=False)
    spec = spec_for(tmp_path, keys=1)
    code, _, err = run_cli("validate", str(spec), "--online", "--base-url", sandbox.base_url)
    assert code == 0
    assert err.splitlines() == [
        "batchrun: cannot tell whether the model acme/painter exists: the API at"
        f" {sandbox.base_url} answered 404 (no model acme/painter here, or no models endpoint);"
        " the run goes on"
    ]


# Item 8: every hint names the variable, flag or file actually in use.


@pytest.mark.parametrize("resumed", [False, True], ids=["pre-flight", "create"])
def test_a_wrong_token_from_token_env_is_named_in_the_hint_of_run(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    resumed: bool,
) -> None:
    # The spec says nothing of PROXY_TOKEN: only the command line names it.
    sandbox = make_sandbox(tokens=["hk-right"])
    spec, out = spec_for(tmp_path), tmp_path / "run"
    argv = run_argv(spec, sandbox, out=out)
    argv += ["--token-env", "PROXY_TOKEN"]
    monkeypatch.setenv("REPLICATE_API_TOKEN", "hk-right")  # not the one in use
    monkeypatch.setenv("PROXY_TOKEN", "hk-right")
    if resumed:  # the pre-flight is recorded: the creates meet the 401
        assert run_cli(*argv, "--limit", "1")[0] == 0
    monkeypatch.setenv("PROXY_TOKEN", "hk-wrong")
    code, _, err = run_cli(*argv)
    assert code == 3
    assert err.rstrip().endswith("; check the API token in $PROXY_TOKEN")
    assert "REPLICATE_API_TOKEN" not in err
    assert "hk-wrong" not in err


@pytest.mark.parametrize("command", ["lock", "validate --online"])
def test_a_wrong_token_from_token_env_is_named_in_the_hint_of(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    sandbox = make_sandbox(tokens=["hk-right"])
    spec = spec_for(tmp_path)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "hk-right")
    monkeypatch.setenv("PROXY_TOKEN", "hk-wrong")
    argv = [*command.split(), str(spec), "--base-url", sandbox.base_url]
    code, _, err = run_cli(*argv, "--token-env", "PROXY_TOKEN")
    assert code == 3
    assert err.rstrip().endswith("; check the API token in $PROXY_TOKEN")
    assert "REPLICATE_API_TOKEN" not in err


def test_a_wrong_token_given_to_the_python_api_is_named_as_given(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(tokens=["hk-right"])
    monkeypatch.setenv("REPLICATE_API_TOKEN", "hk-right")
    with pytest.raises(AuthenticationError) as raised:
        run_api(spec_for(tmp_path), base_url=sandbox.base_url, token="hk-wrong")
    assert str(raised.value).endswith("; check the API token batchrun was given (token=)")


def test_quiet_hides_notes_never_the_error_that_stopped_the_job(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
    token_in_env: str,
) -> None:
    sandbox = make_sandbox(only_models=["acme/painter"], models_endpoint=False)
    spec = spec_for(tmp_path, target="model: acme/paintr")
    argv = run_argv(spec, sandbox, out=tmp_path / "run")
    code, out, err = run_cli(*argv, "-q")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"batchrun: stopped job 'paintr': POST {sandbox.base_url}/v1/models/acme/paintr/"
        "predictions: 404 Not found: Model acme/paintr not found; no model acme/paintr at"
        f" {sandbox.base_url}, or no predictions endpoint there; check the name in the spec,"
        " and the base URL (a proxy serves the API under a path, like https://host/replicate)",
        f"batchrun: {KEYS} not started; run again once fixed",
    ]


def test_a_pinned_version_the_api_lacks_names_the_lock_file(
    tmp_path: Path,
    sandbox: Sandbox,
    run_cli: RunCli,
    token_in_env: str,
) -> None:
    spec = spec_for(tmp_path, keys=1)
    (tmp_path / "spec.yaml.lock").write_text(
        f"batchrun_lock: 1\nmodels:\n  acme/painter: {{version: {UNKNOWN_VERSION}}}\n"
    )
    code, _, err = run_cli("run", str(spec), "--base-url", sandbox.base_url)
    assert code == 2
    assert err.splitlines()[0] == (
        f"{spec}:4:12: jobs[0].model: the API at {sandbox.base_url} has no version"
        f" acme/painter:{UNKNOWN_VERSION}; check its spelling (and spec.yaml.lock, which pins"
        " it), and the base URL: a proxy serves the API under a path, like https://host/replicate"
    )
    assert creates_sent(sandbox) == 0
