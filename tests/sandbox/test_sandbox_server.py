"""The sandbox on loopback: start, stop, held connections, second origin, runtime settings."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from batchrun.errors import UsageError
from batchrun.sandbox import Sandbox, SandboxConfig

AUTH = {"Authorization": "Bearer r8_test"}


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition another thread will make true; fail if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.002)


def test_start_listens_on_a_free_port_and_stop_closes_it(http: httpx.Client) -> None:
    sandbox = Sandbox(SandboxConfig(latency=0)).start()
    port = sandbox.port
    assert sandbox.base_url == f"http://127.0.0.1:{port}"
    assert sandbox.files_base_url == sandbox.base_url
    answer = http.get(f"{sandbox.base_url}/v1/models/acme/painter", headers=AUTH)
    assert answer.status_code == 200
    sandbox.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def test_a_created_prediction_finishes_after_its_latency(sandbox: Sandbox) -> None:
    with httpx.Client(base_url=sandbox.base_url, headers=AUTH) as client:
        created = client.post("/v1/models/acme/painter/predictions", json={"input": {}})
        assert created.status_code == 202
        assert created.json()["status"] == "starting"
        done = client.post(
            "/v1/models/acme/painter/predictions", json={"input": {}}, headers={"Prefer": "wait"}
        )
    assert done.status_code == 201
    assert done.json()["status"] == "succeeded"


def test_stop_is_quick_while_requests_are_held(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(latency=30)
    answers: list[int] = []

    def hold() -> None:
        with httpx.Client(base_url=sandbox.base_url, headers=AUTH, timeout=10) as client:
            answer = client.post(
                "/v1/models/acme/painter/predictions",
                json={"input": {}},
                headers={"Prefer": "wait=60"},
            )
            answers.append(answer.status_code)

    threads = [threading.Thread(target=hold) for _ in range(5)]
    for thread in threads:
        thread.start()
    wait_until(lambda: sandbox.state.stats.held == 5)
    began = time.perf_counter()
    sandbox.stop()
    for thread in threads:
        thread.join()
    assert time.perf_counter() - began < 1.0
    assert answers == [202] * 5


def test_a_port_in_use_is_a_usage_error(sandbox: Sandbox) -> None:
    with pytest.raises(UsageError, match=rf"^cannot listen on 127\.0\.0\.1:{sandbox.port}: "):
        Sandbox(port=sandbox.port).start()


def test_second_origin_serves_files_from_another_port(
    http: httpx.Client, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(second_origin=True)
    assert sandbox.files_base_url != sandbox.base_url
    with httpx.Client(base_url=sandbox.base_url, headers=AUTH) as client:
        done = client.post(
            "/v1/models/acme/painter/predictions", json={"input": {}}, headers={"Prefer": "wait"}
        ).json()
    [url] = done["output"]
    assert url.startswith(f"{sandbox.files_base_url}/delivery/{done['id']}/")
    image = http.get(url)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"


def test_configure_changes_settings_at_runtime(http: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(list_endpoint=False)
    answer = http.get(f"{sandbox.base_url}/v1/predictions", headers=AUTH)
    assert answer.status_code == 404
    with pytest.raises(UsageError) as raised:
        sandbox.configure(latency=-1)
    assert str(raised.value) == (
        "invalid sandbox settings: latency must be a number of seconds of at least 0, got -1"
    )


def test_bump_version_changes_the_latest_version(http: httpx.Client, sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}/v1/models/acme/painter"
    before = http.get(url, headers=AUTH).json()["latest_version"]["id"]
    bumped = sandbox.bump_version("acme", "painter")
    after = http.get(url, headers=AUTH).json()["latest_version"]["id"]
    assert bumped == after != before
