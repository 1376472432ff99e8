"""Issue 10: nothing is paid for before everything that can be checked was checked.

Each test is one mistake from the issue, made as a new user would, run over a socket against
the sandbox; it counts the creates the sandbox received (0, or 1 where a create is the probe).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from runs import TOKEN, RunCli, wait_for, write_spec

from batchrun.cli import main
from batchrun.cost import SchemaCount
from batchrun.engine.preflight import PreflightResult, record, recorded
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec


def creates(sandbox: Sandbox) -> int:
    return int(sandbox.state.snapshot()["creates"])


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)


def test_a_field_the_files_template_cannot_fill_sends_nothing(
    tmp_path: Path,
    sandbox: Sandbox,
    run_cli: RunCli,
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
        code, _, err = run_cli(command, str(spec))
        assert (code, err.splitlines()[0]) == (2, message)
    code, _, err = run_cli("run", str(spec), "--base-url", sandbox.base_url)
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
    run_cli: RunCli,
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
    code, _, err = run_cli("validate", str(spec))
    assert code == 2
    assert err.count("this template names the files of the row") == 2
    code, _, err = run_cli("run", str(spec), "--base-url", sandbox.base_url)
    assert code == 2
    assert "{subject: a red fox, seed: 2} and of the row {subject: a red fox, seed: 1}" in err
    assert creates(sandbox) == 0


def test_every_duplicate_csv_row_is_reported_in_one_pass_at_its_line(
    tmp_path: Path, run_cli: RunCli
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
    code, _, err = run_cli("validate", str(spec))
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


def creates_received(sandbox: Sandbox, expected: int) -> int:
    """The create requests the sandbox received, once it has counted `expected` of them (it
    counts a request after answering it: a moment after the client has the answer)."""
    wait_for(lambda: create_requests(sandbox) >= expected, f"{expected} create requests")
    return create_requests(sandbox)


def create_requests(sandbox: Sandbox) -> int:
    """Create requests the sandbox received, refused or not (a POST to no route included:
    these tests send no other POST)."""
    requests = sandbox.state.snapshot()["requests"]
    return sum(n for route, n in requests.items() if route.startswith("POST"))


NOTHING_SENT = "batchrun: 1 error in the spec; nothing was sent"
SWEEP = """
batchrun: 1
jobs:
  - model: {model}
    input: {{prompt: "p${{i}}"{extra}}}
    matrix: {{i: {{range: [0, 20]}}}}
"""


def test_a_misspelled_model_is_found_before_any_create(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
) -> None:
    sandbox = make_sandbox(only_models=["black-forest-labs/flux-schnell"])
    spec = write_spec(tmp_path, SWEEP.format(model="black-forest-labs/flux-schnel", extra=""))
    message = (
        f"{spec}:3:12: jobs[0].model: the API at {sandbox.base_url} has no model"
        " black-forest-labs/flux-schnel; check its spelling, and the base URL: a proxy serves"
        " the API under a path, like https://host/replicate"
    )
    code, _, err = run_cli("run", str(spec), "--base-url", sandbox.base_url)
    assert (code, err.splitlines()) == (2, [message, NOTHING_SENT])
    code, _, err = run_cli("validate", "--online", "--base-url", sandbox.base_url, str(spec))
    assert (code, err.splitlines()) == (2, [message, f"{spec}: 1 error"])
    code, _, err = run_cli("lock", str(spec), "--base-url", sandbox.base_url)
    assert (code, err.splitlines()) == (2, [message, NOTHING_SENT])
    assert create_requests(sandbox) == 0


def test_without_a_models_endpoint_one_create_probes_the_target(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
) -> None:
    # A proxy: no models endpoint, no list of predictions, and this model is not served.
    sandbox = make_sandbox(
        only_models=["black-forest-labs/flux-schnell"], models_endpoint=False, list_endpoint=False
    )
    spec = write_spec(tmp_path, SWEEP.format(model="black-forest-labs/flux-schnel", extra=""))
    code, _, err = run_cli("run", str(spec), "--base-url", sandbox.base_url)
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == (
        "batchrun: cannot tell whether the model black-forest-labs/flux-schnel exists: the API"
        f" at {sandbox.base_url} answered 404 (no model black-forest-labs/flux-schnel here, or"
        " no models endpoint); the run goes on"
    )
    stopped = (
        f"POST {sandbox.base_url}/v1/models/black-forest-labs/flux-schnel/predictions: 404"
        " Not found: Model black-forest-labs/flux-schnel not found; no model"
        f" black-forest-labs/flux-schnel at {sandbox.base_url}, or no predictions endpoint"
        " there; check the name in the spec, and the base URL (a proxy serves the API under a"
        " path, like https://host/replicate)"
    )
    assert f"  stopped job 'flux-schnel': {stopped}" in lines
    assert "  20 not started (stopped); run again to continue" in lines
    assert creates_received(sandbox, 1) == 1
    # `lock` on such a proxy: nothing to pin, and no failure.
    code, out, _ = run_cli("lock", str(spec), "--base-url", sandbox.base_url)
    assert code == 0
    assert "unpinned: the API answered 404 (no such model here, or no models endpoint)" in out


def test_a_base_url_without_the_proxy_prefix_costs_one_create(
    tmp_path: Path,
    sandbox: Sandbox,
    run_cli: RunCli,
) -> None:
    spec = write_spec(tmp_path, SWEEP.format(model="acme/painter", extra=""))
    wrong = sandbox.base_url + "/replicate"
    code, _, err = run_cli("run", str(spec), "--base-url", wrong)
    assert code == 1
    assert "  20 not started (stopped); run again to continue" in err.splitlines()
    assert f"no model acme/painter at {wrong}, or no predictions endpoint there" in err
    assert creates_received(sandbox, 1) == 1


def test_a_wrong_token_costs_nothing_and_names_its_variable(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = make_sandbox(tokens=["hk-right"], models_endpoint=False, list_endpoint=False)
    spec = write_spec(
        tmp_path,
        SWEEP.format(model="acme/painter", extra="").replace(
            "batchrun: 1\n", "batchrun: 1\ntoken_env: PROXY_TOKEN\n"
        ),
    )
    monkeypatch.setenv("PROXY_TOKEN", "hk-wrong")
    # A spec may name PROXY_TOKEN, but only the command line sends it (issue 13).
    argv = ["run", str(spec), "--base-url", sandbox.base_url, "--token-env", "PROXY_TOKEN"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 3
    assert err.rstrip().endswith("; check the API token in $PROXY_TOKEN")
    assert "hk-wrong" not in err
    # Even without a models endpoint, the proxy checks the token first: the pre-flight's
    # question meets the 401, and no create is sent.
    assert create_requests(sandbox) == 0
    monkeypatch.setenv("PROXY_TOKEN", "hk-right")
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "may have run twice" not in err
    assert int(sandbox.state.snapshot()["creates"]) == 20
    assert main(["status", str(spec)]) == 0
    assert "possible duplicates" not in capsys.readouterr().out


def test_a_misspelled_input_is_found_with_a_did_you_mean(
    tmp_path: Path,
    sandbox: Sandbox,
    run_cli: RunCli,
) -> None:
    extra = ', aspect_ration: "1:1", num_inference_steps: "${i}", output_format: gif'
    spec = write_spec(tmp_path, SWEEP.format(model="acme/strict-painter", extra=extra))
    code, _, err = run_cli("run", str(spec), "--base-url", sandbox.base_url)
    assert code == 2
    assert err.splitlines() == [
        f"{spec}:4:45: jobs[0].input.aspect_ration: the model acme/strict-painter has no input"
        " 'aspect_ration'; did you mean 'aspect_ratio'? (Replicate ignores inputs a model does"
        " not declare, so this one would be paid for and have no effect)",
        f"{spec}:4:73: jobs[0].input.num_inference_steps: the model acme/strict-painter refuses"
        " this value: 0 is less than the minimum 1; in the row {i: 0}",
        f"{spec}:4:73: jobs[0].input.num_inference_steps: the model acme/strict-painter refuses"
        " this value: 5 is more than the maximum 4; in the row {i: 5} and 14 more",
        f"{spec}:4:96: jobs[0].input.output_format: the model acme/strict-painter refuses"
        " this value: 'gif' is not one of 'webp', 'jpg', 'png'",
        "batchrun: 4 errors in the spec; nothing was sent",
    ]
    assert create_requests(sandbox) == 0
    code, _, err = run_cli("plan", "--online", "--base-url", sandbox.base_url, str(spec))
    assert code == 2
    assert "did you mean 'aspect_ratio'?" in err
    code, _, _ = run_cli("plan", str(spec))
    assert code == 0  # without --online, plan sends nothing
    assert create_requests(sandbox) == 0


def test_the_same_field_refused_three_times_stops_the_job(
    tmp_path: Path,
    make_sandbox: Callable[..., Sandbox],
    run_cli: RunCli,
) -> None:
    sandbox = make_sandbox(models_endpoint=False)  # no schema to check against
    spec = write_spec(tmp_path, SWEEP.format(model="acme/painter", extra=", num_outputs: 9"))
    code, _, err = run_cli("run", str(spec), "--base-url", sandbox.base_url)
    assert code == 1
    assert creates_received(sandbox, 3) == 3
    assert "  20 not started (stopped); run again to continue" in err.splitlines()
    assert "  stopped job 'painter': POST " in err


def test_a_resume_does_not_ask_the_api_again(
    tmp_path: Path,
    sandbox: Sandbox,
    run_cli: RunCli,
) -> None:
    spec = write_spec(tmp_path, SWEEP.format(model="acme/painter", extra=""))
    argv = ["run", str(spec), "--base-url", sandbox.base_url, "--limit", "5"]
    assert run_cli(*argv)[0] == 0
    asked = sandbox.state.snapshot()["requests"]["GET /v1/models/{owner}/{name}"]
    assert asked == 1
    assert run_cli(*argv)[0] == 0  # the same selection again: nothing new to check
    assert sandbox.state.snapshot()["requests"]["GET /v1/models/{owner}/{name}"] == asked
    # The whole plan: its 15 other inputs were never checked, so the API is asked once more.
    assert run_cli(*argv[:-2])[0] == 0
    assert sandbox.state.snapshot()["requests"]["GET /v1/models/{owner}/{name}"] == asked + 1
    assert int(sandbox.state.snapshot()["creates"]) == 20
    # A pre-flight of the whole plan covers any selection of it.
    assert run_cli(*argv)[0] == 0
    assert sandbox.state.snapshot()["requests"]["GET /v1/models/{owner}/{name}"] == asked + 1

    record = load_spec(spec).output / "preflight.json"
    data = json.loads(record.read_text())
    assert data["image_counts"] == {
        "acme/painter": {"published": True, "input": "num_outputs", "default": 1}
    }


def test_a_record_without_the_schemas_counts_is_asked_again(tmp_path: Path) -> None:
    """The budget reserves for the images a model makes by default: a record an older batchrun
    wrote, which says nothing of num_outputs, is no reason to skip the pre-flight."""
    found = PreflightResult(confirmed={"flux"}, counts={"a/b": SchemaCount(default=4)})
    record(tmp_path, "print", ["flux"], found)
    assert recorded(tmp_path, {"print"}, ["flux"]) == {"flux"}
    data = json.loads((tmp_path / "preflight.json").read_text())
    assert data["image_counts"] == {
        "a/b": {"published": True, "input": "num_outputs", "default": 4}
    }
    del data["image_counts"]
    (tmp_path / "preflight.json").write_text(json.dumps(data))
    assert recorded(tmp_path, {"print"}, ["flux"]) is None
    # A later record keeps what an earlier one said of models this pre-flight did not ask about.
    record(tmp_path, "other", ["flux"], PreflightResult(counts={"c/d": SchemaCount()}))
    record(tmp_path, "other", ["flux"], PreflightResult(counts={"a/b": SchemaCount(default=2)}))
    assert set(json.loads((tmp_path / "preflight.json").read_text())["image_counts"]) == {
        "a/b",
        "c/d",
    }
