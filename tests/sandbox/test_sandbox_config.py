"""Sandbox settings: rates, validation messages, runtime updates."""

from __future__ import annotations

import pytest

from batchrun.errors import UsageError
from batchrun.sandbox.config import RateLimit, SandboxConfig, parse_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("600/min", RateLimit(600, 60, 10)),
        ("10/s", RateLimit(10, 1, 10)),
        ("100/h", RateLimit(100, 3600, 1)),
        ("2.5 / sec", RateLimit(2.5, 1, 3)),
        ("3000/minute", RateLimit(3000, 60, 50)),
    ],
)
def test_parse_rate(text: str, expected: RateLimit) -> None:
    assert parse_rate(text) == expected


def test_parse_rate_takes_a_burst() -> None:
    assert parse_rate("600/min", burst=100).burst == 100


@pytest.mark.parametrize("text", ["fast", "0/s", "10/day", "/s", "-1/s"])
def test_parse_rate_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_rate(text)
    assert str(raised.value) == f"rate_limit must look like 600/min, 10/s or 100/h, got {text!r}"


def test_defaults() -> None:
    config = SandboxConfig()
    assert (config.latency, config.file_ttl, config.honor_wait, config.rate) == (
        1.0,
        3600.0,
        True,
        None,
    )
    assert "black-forest-labs" in config.official_owners


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(UsageError) as raised:
        SandboxConfig(failure_rate=2, latency=-1, honor_wait="yes", rate_limit="soon")
    assert str(raised.value) == (
        "invalid sandbox settings: failure_rate must be a number from 0 to 1, got 2; "
        "latency must be a number of seconds of at least 0, got -1; "
        "honor_wait must be true or false, got 'yes'; "
        "rate_limit must look like 600/min, 10/s or 100/h, got 'soon'"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"error_status": 200}, "error_status must be an HTTP error status (400-599), got 200"),
        ({"page_size": 0}, "page_size must be a whole number of at least 1, got 0"),
        ({"rate_limit_burst": 0}, "rate_limit_burst must be a whole number of at least 1, got 0"),
        (
            {"download_bytes_per_second": 0},
            "download_bytes_per_second must be a positive number or null, got 0",
        ),
        ({"urls_host": ""}, "urls_host must be a non-empty string or null, got ''"),
        ({"tokens": "abc"}, "tokens must be a list of strings, got 'abc'"),
        ({"seed": 1.5}, "seed must be a whole number, got 1.5"),
    ],
)
def test_meaning_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as raised:
        SandboxConfig().updated(**changes)
    assert str(raised.value) == f"invalid sandbox settings: {message}"


def test_updated_takes_json_values() -> None:
    config = SandboxConfig().updated(error_methods=["get", "post"], tokens=["a"], latency=2)
    assert config.error_methods == frozenset({"GET", "POST"})
    assert config.tokens == frozenset({"a"})
    assert config.latency == 2


def test_updated_refuses_unknown_settings() -> None:
    with pytest.raises(UsageError, match=r"^unknown sandbox setting 'latancy'; known: latency, "):
        SandboxConfig().updated(latancy=1)


def test_a_rate_limit_is_parsed_once() -> None:
    config = SandboxConfig(rate_limit="20/s", rate_limit_burst=5)
    assert config.rate == RateLimit(20, 1, 5)
    assert config.updated(rate_limit=None).rate is None


def test_to_json_lists_every_setting_as_json() -> None:
    shown = SandboxConfig(tokens=frozenset({"b", "a"})).to_json()
    assert shown["tokens"] == ["a", "b"]
    assert shown["error_methods"] == ["GET"]
    assert "rate" not in shown
    assert SandboxConfig().updated(**shown) == SandboxConfig(tokens=frozenset({"a", "b"}))
