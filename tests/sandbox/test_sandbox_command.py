"""`batchrun sandbox`: serves in the foreground, prints one banner line, exits 0 on Ctrl-C."""

from __future__ import annotations

import concurrent.futures
import re
import signal
import subprocess
import sys

import httpx
import pytest
from runs import sigint_at_start, wait_for

from batchrun.cli import build_parser, options_from
from batchrun.commands.sandbox import settings_from
from batchrun.errors import UsageError
from batchrun.frontend.options.sandbox import SandboxArgs
from batchrun.sandbox import Sandbox

BANNER = re.compile(
    r"^batchrun sandbox: a Replicate-compatible API at (http://127\.0\.0\.1:\d+); point batchrun "
    r"at it with --base-url \1 and any token; Ctrl-C stops it$"
)


def parse(*argv: str) -> SandboxArgs:
    args = options_from(build_parser().parse_args(["sandbox", *argv]))
    assert isinstance(args, SandboxArgs)
    return args


def test_settings_from_the_command_line() -> None:
    args = parse(
        "--latency", "0.2", "--failure-rate", "0.1", "--error-rate", "0.05",
        "--rate-limit", "60/min", "--no-wait", "--file-ttl", "30",
    )  # fmt: skip
    assert settings_from(args) == {
        "latency": 0.2,
        "failure_rate": 0.1,
        "error_rate": 0.05,
        "rate_limit": "60/min",
        "file_ttl": 30.0,
        "honor_wait": False,
    }
    assert settings_from(parse()) == {}


def test_options_the_parser_may_grow_reach_their_settings() -> None:
    args = SandboxArgs(
        jitter=0.1,
        seed=4,
        reset_rate=0.2,
        set=('error_methods=["GET", "POST"]', "urls_host=https://api.replicate.com"),
    )
    assert settings_from(args) == {
        "jitter": 0.1,
        "seed": 4,
        "reset_rate": 0.2,
        "error_methods": ["GET", "POST"],
        "urls_host": "https://api.replicate.com",
    }
    with pytest.raises(UsageError) as raised:
        settings_from(SandboxArgs(set=("latency",)))
    assert str(raised.value) == "--set takes NAME=VALUE, got 'latency'"


def serving(sigint: signal.Handlers, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """`batchrun sandbox --port 0 EXTRA...` in a child started with SIGINT as `sigint` says;
    the child and its base URL, once its banner says it serves."""
    command = [sys.executable, "-m", "batchrun", "sandbox", "--port", "0", *extra]
    p = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_at_start(sigint),
    )
    assert p.stdout is not None
    match = BANNER.match(p.stdout.readline().rstrip("\n"))
    assert match, "no banner"
    return p, match.group(1)


def predict(base: str) -> str:
    """One create with `Prefer: wait`, held until the prediction ends; its status."""
    answer = httpx.post(
        f"{base}/v1/models/acme/painter/predictions",
        json={"input": {}},
        headers={"Authorization": "Bearer anything", "Prefer": "wait"},
    )
    status: str = answer.json()["status"]
    return status


def stopped_cleanly(p: subprocess.Popen[str]) -> None:
    assert p.wait(timeout=10) == 0
    assert p.stderr is not None
    assert p.stderr.read() == ""


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serves_until_interrupted_and_exits_0(stop: signal.Signals) -> None:
    p, base = serving(signal.SIG_DFL, "--latency", "0.01", "--rate-limit", "5/s")
    with p:
        config = httpx.get(f"{base}/_sandbox/config").json()
        assert (config["latency"], config["rate_limit"]) == (0.01, "5/s")
        assert predict(base) == "succeeded"
        p.send_signal(stop)
        stopped_cleanly(p)


def test_started_with_sigint_ignored_it_goes_on_through_ctrl_c() -> None:
    # A shell without job control starts `batchrun sandbox &` with SIGINT ignored: a Ctrl-C at
    # the terminal is for the foreground job. A prediction held across the SIGINT still ends
    # (a sandbox that stopped would release it unfinished, or drop it), then SIGTERM stops it.
    p, base = serving(signal.SIG_IGN, "--latency", "0.5")
    with p:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            held = pool.submit(predict, base)
            wait_for(lambda: httpx.get(f"{base}/_sandbox/stats").json()["max_held"] == 1, "a hold")
            p.send_signal(signal.SIGINT)
            assert held.result(timeout=10) == "succeeded"
        assert predict(base) == "succeeded"
        assert p.poll() is None
        p.send_signal(signal.SIGTERM)
        stopped_cleanly(p)


def test_a_bad_setting_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batchrun", "sandbox", "--port", "0", "--failure-rate", "3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "batchrun: invalid sandbox settings: failure_rate must be a number from 0 to 1, got 3.0\n"
    )


def test_a_port_in_use_is_a_usage_error(sandbox: Sandbox) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batchrun", "sandbox", "--port", str(sandbox.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"batchrun: cannot listen on 127.0.0.1:{sandbox.port}: Address already in use\n"
    )
