"""The official `replicate` client (1.0.7), unchanged, against the sandbox over real sockets.

The client joins its base URL with absolute paths (`/v1/predictions`), so the sandbox's base URL
(no /v1) is what it takes. It turns only `https:` URLs into `FileOutput`s, so the tests that
read outputs through it serve the files over TLS from a second origin, with a throwaway
certificate that the client trusts through SSL_CERT_FILE (httpx reads it).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import replicate
from replicate.exceptions import ModelError, ReplicateError
from replicate.helpers import FileOutput

from batchrun.sandbox import Sandbox
from batchrun.sandbox.images import PNG_SIGNATURE
from batchrun.sandbox.models import derived_version_id


def official_client(sandbox: Sandbox) -> replicate.Client:
    client = replicate.Client(api_token="r8_sandbox", base_url=sandbox.base_url)
    client.poll_interval = 0.01
    return client


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a TLS certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "1",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_sandbox(
    make_sandbox: Callable[..., Sandbox],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> Sandbox:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    return make_sandbox(files_tls=certificate)


def test_run_returns_file_outputs_that_read_the_png(tls_sandbox: Sandbox) -> None:
    output = official_client(tls_sandbox).run(
        "black-forest-labs/flux-schnell", input={"prompt": "a red fox", "num_outputs": 2}
    )
    assert isinstance(output, list)
    assert len(output) == 2
    assert all(isinstance(item, FileOutput) for item in output)
    assert output[0].url.startswith(f"{tls_sandbox.files_base_url}/delivery/")
    images = [item.read() for item in output]
    assert all(image.startswith(PNG_SIGNATURE) for image in images)
    assert images[0] != images[1]
    # The official client sends its token to the file host too (batchrun must not).
    assert tls_sandbox.state.snapshot()["delivery_authorized"] == 2


@pytest.mark.anyio
async def test_async_run_returns_file_outputs(tls_sandbox: Sandbox) -> None:
    output = await official_client(tls_sandbox).async_run(
        "acme/painter", input={"prompt": "an old lighthouse", "seed": 4}
    )
    assert isinstance(output, list)
    [item] = output
    assert isinstance(item, FileOutput)
    assert (await item.aread()).startswith(PNG_SIGNATURE)


def test_run_on_plain_http_returns_url_strings(sandbox: Sandbox) -> None:
    output = official_client(sandbox).run("acme/painter", input={"prompt": "a fox"})
    assert isinstance(output, list)
    [url] = output
    assert isinstance(url, str)
    assert url.startswith(f"{sandbox.base_url}/delivery/")


def test_run_a_language_model_returns_tokens(sandbox: Sandbox) -> None:
    output = official_client(sandbox).run(
        "meta/meta-llama-3-8b-instruct", input={"prompt": "Write about the sea"}
    )
    assert isinstance(output, list)
    assert "write about the sea" in "".join(output)


def test_run_with_a_version_fetches_it_and_streams_tokens(sandbox: Sandbox) -> None:
    version = derived_version_id("acme/tiny-llm", 0)
    client = official_client(sandbox)
    client.models.get("acme/tiny-llm")
    # The version's schema says its output is a token iterator, so run() yields tokens.
    output = client.run(f"acme/tiny-llm:{version}", input={"prompt": "hello there"})
    assert "hello there" in "".join(output)


def test_run_raises_model_error_for_a_failed_prediction(sandbox: Sandbox) -> None:
    with pytest.raises(ModelError, match=r"^GPU on fire$"):
        official_client(sandbox).run(
            "acme/painter", input={"sandbox_status": "failed", "sandbox_error": "GPU on fire"}
        )


def test_predictions_create_get_wait_and_cancel(sandbox: Sandbox) -> None:
    client = official_client(sandbox)
    prediction = client.predictions.create(model="acme/painter", input={"prompt": "a fox"})
    assert prediction.status == "starting"
    prediction.wait()
    assert prediction.status == "succeeded"
    assert client.predictions.get(prediction.id).output == prediction.output
    slow = client.predictions.create(model="acme/painter", input={"sandbox_latency": 60})
    canceled = client.predictions.cancel(slow.id)
    assert canceled.status == "canceled"
    listed = client.predictions.list()
    assert [p.id for p in listed.results] == [slow.id, prediction.id]


def test_predictions_create_by_version_and_deployment(sandbox: Sandbox) -> None:
    client = official_client(sandbox)
    version = derived_version_id("acme/painter", 0)
    client.models.get("acme/painter")
    by_version = client.predictions.create(version=version, input={}, wait=True)
    assert (by_version.status, by_version.version) == ("succeeded", version)
    by_deployment = client.deployments.predictions.create("acme/painter-prod", input={})
    assert by_deployment.model == "acme/painter-prod"


def test_models_get_and_versions(sandbox: Sandbox) -> None:
    client = official_client(sandbox)
    model = client.models.get("acme/painter")
    assert model.latest_version is not None
    assert model.latest_version.id == derived_version_id("acme/painter", 0)
    sandbox.bump_version("acme", "painter")
    versions = client.models.get("acme/painter").versions.list()
    assert [v.id for v in versions.results] == [
        derived_version_id("acme/painter", 1),
        derived_version_id("acme/painter", 0),
    ]


def test_files_create_and_get(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "input.png"
    path.write_bytes(PNG_SIGNATURE + b"not really an image")
    client = official_client(sandbox)
    uploaded = client.files.create(path, metadata={"purpose": "test"})
    assert (uploaded.name, uploaded.content_type, uploaded.size) == ("input.png", "image/png", 27)
    assert client.files.get(uploaded.id).metadata == {"purpose": "test"}


def test_invalid_input_raises_replicate_error_with_the_detail(sandbox: Sandbox) -> None:
    with pytest.raises(ReplicateError) as raised:
        official_client(sandbox).predictions.create(model="acme/painter", input={"num_outputs": 9})
    assert raised.value.status == 422
    assert raised.value.title == "Input validation failed"
    assert raised.value.detail == "- input.num_outputs: Must be less than or equal to 4\n"
