"""The models the seed specs name publish schemas shaped like Replicate's: the pre-flight
catches in the sandbox what it would catch on Replicate."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from runs import run_argv, write_spec

from batchrun.cli import main
from batchrun.sandbox import Sandbox


def test_flux_schnell_refuses_what_replicates_refuses(
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
          - model: black-forest-labs/flux-schnell
            input:
              prompt: a fox
              go_fast: true
              megapixels: "1"
              aspect_ratio: "16:9"
              output_format: jpg
              output_quality: 80
              num_inference_steps: 5
              width: 768
          - model: lucataco/flux-schnell-lora
            input: {prompt: a fox, hf_lora: alvdansen/frosting_lane_flux, lora_scale: 0.8}
        """,
    )
    command = run_argv(spec, sandbox, out=tmp_path / "run")
    assert main([*command, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "jobs[0].input.num_inference_steps:" in err
    assert "jobs[0].input.width: the model black-forest-labs/flux-schnell has no input 'width'" in (
        err
    )
    assert "jobs[1]" not in err
    assert sandbox.state.snapshot()["creates"] == 0


def test_flux_schnell_four_publishes_a_default_of_four_images_and_makes_them(
    api: httpx.Client,
) -> None:
    """sandbox/flux-schnell-four: flux-schnell's schema with num_outputs defaulting to 4, which
    an input without num_outputs gets (and is billed for), as a Cog model's default works."""
    model = api.get("/v1/models/sandbox/flux-schnell-four").json()
    properties = model["latest_version"]["openapi_schema"]["components"]["schemas"]["Input"][
        "properties"
    ]
    assert properties["num_outputs"] == {
        "type": "integer",
        "title": "Num Outputs",
        "minimum": 1,
        "maximum": 4,
        "default": 4,
        "x-order": 2,
    }
    for sent, images in (({}, 4), ({"num_outputs": 2}, 2)):
        created = api.post(
            "/v1/models/sandbox/flux-schnell-four/predictions",
            json={"input": {"prompt": "a fox", "sandbox_latency": 0, **sent}},
            headers={"Prefer": "wait"},
        ).json()
        assert created["status"] == "succeeded"
        assert len(created["output"]) == images
        assert created["metrics"]["image_count"] == images
