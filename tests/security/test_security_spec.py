"""Hostile specs: what a pull request's spec can make batchrun read, send or compute, bounded."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from hostile import hostile
from runs import Git, RunCli

from batchrun.api.endpoint import resolve_endpoint
from batchrun.cli import main
from batchrun.errors import SpecError
from batchrun.spec.load import load_spec

pytestmark = pytest.mark.timeout(60)
TOKEN = "r8_" + "a" * 37


def write(folder: Path, body: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(body)
    return path


def issues(path: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return [str(issue) for issue in caught.value.issues]


HEAD = "batchrun: 1\njobs:\n  - model: acme/flux\n"


def test_the_scan_for_pasted_tokens_is_linear(tmp_path: Path) -> None:
    # 20,000 pasted tokens in a 1 MB spec took 28 s when each was placed by a scan of every
    # value; now each is a bisection. A quadratic scan takes minutes here, not this bound.
    lines = [f"        - {TOKEN}" for _ in range(20_000)]
    body = HEAD + "    input: {prompt: '${p}'}\n    matrix:\n      p:\n" + "\n".join(lines) + "\n"
    spec = write(tmp_path, body)
    started = time.monotonic()
    found = issues(spec)
    assert time.monotonic() - started < 10
    assert len(found) == 20_000
    assert found[0] == (
        f"{spec}:7:11: jobs[0].matrix.p[0]: looks like an API token; put it in the environment "
        "(REPLICATE_API_TOKEN or the variable named by token_env) instead"
    )
    assert all(TOKEN not in issue for issue in found)


@pytest.mark.parametrize(
    ("depth", "message"),
    [
        (65, "jobs[0].input.prompt" + "[0]" * 61 + ": nested deeper than 64 levels"),
        (400, "jobs[0].input.prompt" + "[0]" * 61 + ": nested deeper than 64 levels"),
        # libyaml's own limit comes first here; either way, a spec error, not a crash.
        (5000, "not valid YAML: exceeded maximum nesting depth (while increasing flow level"),
    ],
)
def test_a_deeply_nested_spec_is_a_spec_error(tmp_path: Path, depth: int, message: str) -> None:
    body = HEAD + "    input:\n      prompt: " + "[" * depth + "1" + "]" * depth + "\n"
    found = issues(write(tmp_path, body))
    assert len(found) == 1
    assert message in found[0]


def test_nesting_within_the_limit_loads(tmp_path: Path) -> None:
    body = HEAD + "    input:\n      prompt: x\n      deep: " + "[" * 50 + "1" + "]" * 50 + "\n"
    assert load_spec(write(tmp_path, body)).jobs[0].input["prompt"] == "x"


EVIL = (
    "batchrun: 1\nbase_url: {url}\ntoken_env: {env}\n"
    "jobs:\n  - model: acme/flux\n    input: {{prompt: x}}\n"
)


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_not_for_replicate")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_for_replicate_only")


@pytest.mark.usefixtures("secrets")
def test_a_spec_alone_cannot_send_a_secret_elsewhere(tmp_path: Path, run_cli: RunCli) -> None:
    with hostile(lambda request, conn: None) as server:
        spec = write(tmp_path, EVIL.format(url=server.url, env="GITHUB_TOKEN"))
        code, _, err = run_cli("run", str(spec))
        assert server.requests == []
    assert code == 2
    assert err == (
        f"batchrun: the spec asks for the API at {server.url}; a spec alone does not choose where "
        f"the token goes: pass --base-url {server.url} (or --allow-spec-base-url) to use it; the "
        "spec names token_env GITHUB_TOKEN, which is not meant for a Replicate API (its name "
        "would have REPLICATE in it and end in TOKEN): pass --token-env GITHUB_TOKEN to send "
        f"that variable's value to {server.url}\n"
    )


@pytest.mark.usefixtures("secrets")
def test_the_user_choosing_the_host_does_not_choose_the_secret(
    tmp_path: Path, run_cli: RunCli
) -> None:
    with hostile(lambda request, conn: None) as server:
        spec = write(tmp_path, EVIL.format(url="http://elsewhere.test", env="GITHUB_TOKEN"))
        code, _, err = run_cli("lock", str(spec), "--base-url", server.url)
        assert server.requests == []
    assert code == 2
    assert err.startswith("batchrun: the spec names token_env GITHUB_TOKEN, which is not meant")


@pytest.mark.usefixtures("secrets")
def test_validate_and_plan_show_the_api_and_the_token_variable(
    tmp_path: Path, run_cli: RunCli
) -> None:
    spec = write(tmp_path, EVIL.format(url="http://evil.test", env="STAGING_REPLICATE_TOKEN"))
    code, out, _ = run_cli("validate", str(spec))
    assert code == 0
    assert out.splitlines() == [
        f"{spec}: ok (1 prediction in 1 job); API http://evil.test (the spec's base_url), "
        "token from $STAGING_REPLICATE_TOKEN (the spec's token_env)",
        "  run refuses until allowed: the spec asks for the API at http://evil.test; a spec "
        "alone does not choose where the token goes: pass --base-url http://evil.test (or "
        "--allow-spec-base-url) to use it",
    ]
    code, out, _ = run_cli("plan", str(spec))
    assert code == 0
    assert (
        "api: http://evil.test (the spec's base_url), token from $STAGING_REPLICATE_TOKEN "
        "(the spec's token_env)"
    ) in out.splitlines()


def test_the_environment_beats_the_spec_and_the_flag_beats_both() -> None:
    env = {"REPLICATE_BASE_URL": "https://env.test/v1"}
    found = resolve_endpoint(spec_base_url="http://spec.test", spec_token_env=None, env=env)
    assert (found.base_url, found.base_from, found.refused) == (
        "https://env.test",
        "$REPLICATE_BASE_URL",
        None,
    )
    found = resolve_endpoint(
        spec_base_url="http://spec.test",
        spec_token_env="AWS_SECRET_ACCESS_KEY",
        env=env,
        base_url="https://cli.test",
        token_env="AWS_SECRET_ACCESS_KEY",
    )
    assert (found.base_url, found.token_env, found.refused) == (
        "https://cli.test",
        "AWS_SECRET_ACCESS_KEY",
        None,
    )
    allowed = resolve_endpoint(
        spec_base_url="http://spec.test/v1",
        spec_token_env="REPLICATE_PROXY_TOKEN",
        env={},
        allow_spec_base_url=True,
    )
    assert (allowed.base_url, allowed.token_env, allowed.refused) == (
        "http://spec.test",
        "REPLICATE_PROXY_TOKEN",
        None,
    )
    replicate = resolve_endpoint(
        spec_base_url="https://api.replicate.com/v1", spec_token_env=None, env={}
    )
    assert (replicate.token_env, replicate.refused) == ("REPLICATE_API_TOKEN", None)


def outside_case(tmp_path: Path, body: str) -> tuple[Path, Path]:
    secret = tmp_path / "secret.txt"
    secret.write_text("the ssh key\n")
    folder = tmp_path / "repo"
    folder.mkdir()
    return write(folder, body), secret


@pytest.mark.parametrize(
    ("axis", "where", "written", "allow"),
    [
        ("{lines: ../secret.txt}", "6:18: jobs[0].matrix.v.lines", "../secret.txt", "SECRET"),
        ("{lines: SECRET}", "6:18: jobs[0].matrix.v.lines", "SECRET", "SECRET"),
        ("{glob: '../secret*'}", "6:17: jobs[0].matrix.v.glob", "..", "TMP"),
        ("{glob: '~/.ssh/id_*'}", "6:17: jobs[0].matrix.v.glob", "~/.ssh", "HOME/.ssh"),
    ],
)
def test_value_files_outside_the_spec_folder_need_the_command_line(
    tmp_path: Path, axis: str, where: str, written: str, allow: str
) -> None:
    spec, secret = outside_case(tmp_path, "")
    names = {"SECRET": str(secret), "TMP": str(tmp_path), "HOME": str(Path.home())}
    for name, value in names.items():
        axis, written, allow = (t.replace(name, value) for t in (axis, written, allow))
    write(spec.parent, HEAD + f"    input: {{prompt: '${{v}}'}}\n    matrix:\n      v: {axis}\n")
    assert issues(spec) == [
        f"{spec}:{where}: '{written}' is outside the spec's folder; batchrun reads it only when "
        f"the command line allows it: --allow-outside {allow}"
    ]


def test_a_file_input_outside_and_a_committed_link_to_it_are_refused(tmp_path: Path) -> None:
    spec, secret = outside_case(tmp_path, "")
    (spec.parent / "innocent.txt").symlink_to(secret)
    write(
        spec.parent,
        HEAD
        + f"    input: {{a: {{file: {secret}}}, b: {{file: innocent.txt}}, c: {{file: ~/x}}}}\n",
    )
    found = issues(spec)
    assert [issue.split(": ", 2)[1] for issue in found] == [
        "jobs[0].input.a.file",
        "jobs[0].input.b.file",
        "jobs[0].input.c.file",
    ]
    assert found[1].endswith(
        "'innocent.txt' is outside the spec's folder; batchrun reads it only when the command "
        f"line allows it: --allow-outside {spec.parent / 'innocent.txt'}"
    )


def test_a_templated_file_outside_is_refused_row_by_row(tmp_path: Path, run_cli: RunCli) -> None:
    spec, secret = outside_case(tmp_path, "")
    body = HEAD + f"    input: {{image: {{file: '${{f}}'}}}}\n    matrix:\n      f: ['{secret}']\n"
    write(spec.parent, body)
    code, _, err = run_cli("validate", str(spec))
    assert code == 2
    assert f"'{secret}' is outside the spec's folder; batchrun reads it only when" in err
    code, _, err = run_cli("validate", str(spec), "--allow-outside", str(tmp_path))
    assert (code, err) == (0, "")


def test_output_outside_the_spec_folder_needs_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, _ = outside_case(tmp_path, HEAD + "    input: {prompt: x}\noutput: /etc\n")
    (found,) = issues(spec)
    assert found == (
        f"{spec}:5:9: output: '/etc' is outside the spec's folder; batchrun writes into it only "
        "when the command line allows it: --allow-outside /etc"
    )


@pytest.mark.usefixtures("secrets")
def test_plan_lists_what_the_command_line_allowed_outside(tmp_path: Path, run_cli: RunCli) -> None:
    spec, secret = outside_case(tmp_path, "")
    body = HEAD + f"    input: {{p: '${{v}}'}}\n    matrix:\n      v: {{lines: {secret}}}\n"
    write(spec.parent, body)
    code, out, err = run_cli("plan", str(spec), "--allow-outside", str(secret))
    assert (code, err) == (0, "")
    assert f"outside the spec's folder (allowed): {secret}" in out.splitlines()


def test_a_huge_matrix_is_refused_before_a_row_is_walked(tmp_path: Path, run_cli: RunCli) -> None:
    body = (
        HEAD + "    input: {prompt: '${a} ${b}'}\n    matrix:\n"
        "      a: {range: [0, 1000000]}\n      b: {range: [0, 1000000]}\n"
    )
    spec = write(tmp_path, body)
    started = time.monotonic()
    code, _, err = run_cli("plan", str(spec))
    assert time.monotonic() - started < 5
    assert code == 2
    assert err == (
        f"{spec}:3:5: jobs[0]: the matrix expands to up to 1,000,000,000,000 "
        "predictions, more than the limit of 10,000,000; pass --max-predictions "
        "1000000000000 to plan them all\n"
        "batchrun: 1 error in the spec; nothing was sent\n"
    )
    small = write(tmp_path, body.replace("1000000]", "50]"), "small.yaml")
    code, _, err = run_cli("validate", str(small), "--max-predictions", "2000")
    assert code == 2
    assert "more than the limit of 2,000; pass --max-predictions 2500 to plan them all" in err
    code, out, _ = run_cli("validate", str(small), "--max-predictions", "2500")
    assert code == 0
    assert out.startswith(f"{small}: ok (2,500 predictions in 1 job)")


def test_plan_diff_gives_the_revision_the_same_allowances(tmp_path: Path, run_cli: RunCli) -> None:
    repo = tmp_path / "repo"
    (repo / "shared").mkdir(parents=True)
    (repo / "shared" / "styles.txt").write_text("ink\noil\n")
    body = (
        HEAD + "    input: {prompt: '${s}'}\n    matrix:\n      s: {lines: ../shared/styles.txt}\n"
    )
    (repo / "specs").mkdir()
    spec = write(repo / "specs", body)
    for command in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "one"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *command],
            check=True,
        )
    (repo / "shared" / "styles.txt").write_text("ink\nchalk\n")
    code, _, err = run_cli("plan", str(spec), "--diff", "HEAD")
    assert code == 2
    assert "'../shared/styles.txt' is outside the spec's folder" in err
    allow = str(repo / "shared")
    code, out, err = run_cli("plan", str(spec), "--diff", "HEAD", "--allow-outside", allow)
    assert (code, err) == (0, "")
    assert "job flux: 1 added, 0 changed, 1 removed, 1 unchanged" in out


NETRC = "machine api.example.com login me password hunter2\n"


def test_a_spec_linked_to_a_secrets_file_is_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `validate specs/*.yaml`, the CI recipe, with a pull request's specs/evil.yaml -> ~/.netrc.
    (tmp_path / "home").mkdir()
    secrets = tmp_path / "home" / ".netrc"
    secrets.write_text(NETRC)
    (tmp_path / "specs").mkdir()
    evil = tmp_path / "specs" / "evil.yaml"
    evil.symlink_to(secrets)
    assert main(["validate", str(evil)]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert err.splitlines()[0] == (
        f"{evil}:1:1: this spec is a link to {secrets}, outside its folder; batchrun reads it"
        f" only when the command line allows it: --allow-outside {secrets}"
    )
    # A link beside its target (spec.yaml -> v2.yaml) is an ordinary spec.
    write(tmp_path / "specs", HEAD + "    input: {prompt: hi}\n", "v2.yaml")
    (tmp_path / "specs" / "spec.yaml").symlink_to("v2.yaml")
    assert main(["validate", str(tmp_path / "specs" / "spec.yaml")]) == 0


def test_a_lock_linked_to_a_secrets_file_is_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "netrc"
    secrets.write_text("batchrun_lock: 1\nmodels: [\n" + NETRC)
    (tmp_path / "specs").mkdir()
    spec = write(tmp_path / "specs", HEAD + "    input: {prompt: hi}\n")
    (tmp_path / "specs" / "spec.yaml.lock").symlink_to(secrets)
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    assert main(["run", str(spec), "--base-url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert (
        "spec.yaml.lock:1:1: it is a link to a file outside the spec's folder; batchrun does not"
        " read it; run `batchrun lock` again"
    ) in err


def test_a_broken_lock_is_described_without_quoting_its_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write(tmp_path, HEAD + "    input: {prompt: hi}\n")
    (tmp_path / "spec.yaml.lock").write_text("batchrun_lock: 1\nmodels:\n  password: hunter2: x\n")
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    assert main(["run", str(spec), "--base-url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert (
        "spec.yaml.lock:1:1: not valid YAML: mapping values are not allowed here (line 3);"
        " run `batchrun lock` again"
    ) in err


def test_an_empty_allow_outside_allows_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--allow-outside "$DATA"` with DATA unset used to allow the current folder.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.txt").write_text("a\n")
    (tmp_path / "specs").mkdir()
    spec = write(
        tmp_path / "specs",
        HEAD + "    input: {prompt: '${p}'}\n    matrix:\n      p: {lines: ../data/p.txt}\n",
    )
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(spec), "--allow-outside", ""]) == 2
    err = capsys.readouterr().err
    assert (
        "--allow-outside needs a path; an empty one (an unset shell variable?) allows nothing"
        in err
    )
    assert main(["validate", str(spec), "--allow-outside", "."]) == 0


def test_plan_diff_copies_only_what_the_spec_may_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, git: Git
) -> None:
    import batchrun.spec.revision

    # A small stand-in for the limit: the rule under test, at a size a test writes fast.
    monkeypatch.setattr(batchrun.spec.revision, "MAX_REVISION_BYTES", 1 << 20)
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_bytes(b"x" * (2 << 20))  # beside the specs, not read
    spec = write(repo / "specs", HEAD + "    input: {prompt: hi}\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    assert main(["plan", str(spec), "--diff", "HEAD"]) == 0
    capsys.readouterr()
    # The same data inside the spec's folder is more than a plan copies: a usage error.
    (repo / "specs" / "big.bin").write_bytes(b"x" * (2 << 20))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "two")
    assert main(["plan", str(spec), "--diff", "HEAD"]) == 2
    assert "add up to more than 1,048,576 bytes" in capsys.readouterr().err


def test_plan_diff_does_not_read_a_spec_that_was_a_link_to_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], git: Git
) -> None:
    secrets = tmp_path / "netrc"
    secrets.write_text(NETRC)
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    spec = repo / "specs" / "spec.yaml"
    spec.symlink_to(secrets)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a link")
    spec.unlink()
    write(repo / "specs", HEAD + "    input: {prompt: hi}\n")
    # A base that does not load compares as empty, with a note saying why: never its lines.
    assert main(["plan", str(spec), "--diff", "HEAD"]) == 0
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err
    assert "HEAD:specs/spec.yaml:1:1: this spec is a link to" in out
