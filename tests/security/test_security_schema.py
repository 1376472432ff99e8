"""A hostile API's published schema, through `validate --online` over loopback: nothing it names
is fetched, nothing in it hangs or floods the terminal, and its escapes never reach it raw.

The hostile server answers `GET /v1/models/acme/x` with a model whose latest version publishes
the schema under test; it records every request, so a test can see nothing else was asked.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile import Hostile, Request, answer, hostile
from runs import TOKEN, write_spec

from batchrun.cli import main
from batchrun.engine.patterns import Unsafe, compile_pattern

pytestmark = pytest.mark.timeout(60)


def model_answer(inputs: dict[str, Any], **schemas: Any) -> bytes:
    schema = {
        "openapi": "3.0.2",
        "components": {
            "schemas": {"Input": {"type": "object", "properties": inputs}, **schemas},
        },
    }
    return json.dumps(
        {
            "owner": "acme",
            "name": "x",
            "latest_version": {"id": "v" * 64, "openapi_schema": schema},
        }
    ).encode()


@pytest.fixture
def api() -> Iterator[dict[str, Any]]:
    """A hostile API; set `api["model"]` to the model answer's bytes."""
    state: dict[str, Any] = {"model": b"{}"}

    def handler(request: Request, conn: socket.socket) -> None:
        if request.target.startswith("/v1/models/acme/x"):
            answer(conn, 200, state["model"])
        else:
            answer(conn, 404, b'{"detail": "not here"}')

    with hostile(handler) as server:
        state["server"] = server
        yield state


def validate_online(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    input: str = '{prompt: "${p}"}',
    values: str = "[a fox]",
) -> tuple[int, str]:
    spec = write_spec(
        tmp_path,
        f"""
        batchrun: 1
        jobs:
          - model: acme/x
            input: {input}
            matrix:
              p: {values}
        """,
    )
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    server: Hostile = api["server"]
    code = main(["validate", "--online", str(spec), "--base-url", server.url])
    out, err = capsys.readouterr()
    return code, out + err


def asked(api: dict[str, Any]) -> list[str]:
    return [request.target for request in api["server"].requests]


def test_a_remote_ref_is_never_fetched(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The ref points back at the hostile server itself: a fetch would show in its requests.
    url = f"{api['server'].url}/latest/meta-data/iam"
    api["model"] = model_answer({"prompt": {"$ref": url}})
    code, shown = validate_online(tmp_path, api, capsys, monkeypatch)
    assert code == 0
    assert asked(api) == ["/v1/models/acme/x"]
    assert (
        f"the input schema of the model acme/x cannot be checked safely: it refers to '{url}'"
        " outside itself, which batchrun never fetches; the inputs of job 'x' were not checked"
    ) in shown


def test_a_file_ref_is_refused_not_read(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"enum": ["hunter2"]}')
    api["model"] = model_answer({"prompt": {"$ref": secret.as_uri()}})
    code, shown = validate_online(tmp_path, api, capsys, monkeypatch)
    assert code == 0
    assert "hunter2" not in shown
    assert "which batchrun never fetches" in shown


@pytest.mark.parametrize(
    ("schemas", "why"),
    [
        (
            {"S0": {"$ref": "#/components/schemas/S1"}, "S1": {"$ref": "#/components/schemas/S0"}},
            "loop",
        ),
        (
            {f"S{i}": {"$ref": f"#/components/schemas/S{i + 1}"} for i in range(400)}
            | {"S400": {"type": "string"}},
            "chain on for more than 16 steps",
        ),
        (
            {f"S{i}": {"$ref": f"#/components/schemas/S{i + 1}"} for i in range(10_000)},
            "more than 500 $refs",
        ),
    ],
    ids=["cycle", "long-chain", "10000-refs"],
)
def test_ref_cycles_and_chains_are_a_note_not_a_recursion_error(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    schemas: dict[str, Any],
    why: str,
) -> None:
    api["model"] = model_answer({"prompt": {"$ref": "#/components/schemas/S0"}}, **schemas)
    code, shown = validate_online(tmp_path, api, capsys, monkeypatch)
    assert code == 0
    assert "cannot be checked safely" in shown
    assert why in shown
    assert "RecursionError" not in shown
    assert "internal error" not in shown


def test_a_backtracking_pattern_does_not_hang_the_check(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With Python's re this takes longer than the age of the universe; here it is linear.
    api["model"] = model_answer({"prompt": {"type": "string", "pattern": r"^(\w+\s?)*$"}})
    began = time.monotonic()
    code, shown = validate_online(
        tmp_path, api, capsys, monkeypatch, values="['" + "a" * 40 + "!']"
    )
    assert time.monotonic() - began < 10
    assert code == 2
    assert "does not match the pattern '^(\\\\w+\\\\s?)*$'" in shown


def test_a_pattern_an_automaton_cannot_run_is_skipped_with_a_note(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api["model"] = model_answer({"prompt": {"type": "string", "pattern": r"^(a+)+\1$"}})
    code, shown = validate_online(tmp_path, api, capsys, monkeypatch)
    assert code == 0
    assert (
        "the pattern '^(a+)+\\\\1$' in the input schema of the model acme/x was not checked:"
        " groupref (not possible without backtracking)"
    ) in shown


def test_a_million_value_enum_neither_floods_nor_is_checked(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enum = [f"v{i}" for i in range(1_000_000)]
    api["model"] = model_answer({"prompt": {"enum": enum}})
    code, shown = validate_online(tmp_path, api, capsys, monkeypatch)
    assert code == 0
    assert len(shown) < 2_000
    assert "an enum in it has more than 1,000 values" in shown


def test_a_long_enum_under_the_bound_is_quoted_short(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api["model"] = model_answer({"prompt": {"enum": [f"v{i}" for i in range(900)]}})
    code, shown = validate_online(tmp_path, api, capsys, monkeypatch)
    assert code == 2
    assert "'a fox' is not one of 'v0', 'v1', 'v2'" in shown
    assert "'v9' and 890 more" in shown
    assert len(shown) < 2_000


def test_a_schema_of_100000_inputs_is_not_listed(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api["model"] = model_answer({f"in{i}": {"type": "string"} for i in range(100_000)})
    code, shown = validate_online(tmp_path, api, capsys, monkeypatch)
    assert code == 0
    assert len(shown) < 2_000
    assert "it holds more than 50,000 values" in shown


def test_input_names_listed_in_a_hint_are_cut_short(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api["model"] = model_answer({f"zz{i:04}": {"type": "string"} for i in range(5_000)})
    code, shown = validate_online(tmp_path, api, capsys, monkeypatch)
    assert code == 2
    assert "its inputs are zz0000, zz0001" in shown
    assert "zz0019 and 4,980 more" in shown
    assert len(shown) < 2_000


def test_escapes_in_schema_names_and_messages_never_reach_the_terminal(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    title = "\x1b]0;pwned\x07"
    api["model"] = model_answer(
        {
            "prompt\x1b[2J": {"type": "string"},  # the did-you-mean suggestion
            "seed": {"type": "integer", "const": 3, "title": title},
            "mode": {"enum": [f"a\x1b[31m{title}"]},
        }
    )
    code, shown = validate_online(
        tmp_path, api, capsys, monkeypatch, input='{prompt: "${p}", seed: 4, mode: b}'
    )
    assert code == 2
    assert "did you mean 'prompt'?" in shown
    assert "\x1b" not in shown
    assert "\x07" not in shown


def test_the_automaton_refuses_what_needs_backtracking_up_front() -> None:
    for pattern in (r"(?=a)", r"(?i)a", r"(?>a)", r"a++", r"(x{100}){100}"):
        with pytest.raises(Unsafe):
            compile_pattern(pattern)
    assert compile_pattern(r"^[a-z]+(-[a-z]+)*$").search("flux-schnell")


def test_the_automaton_answers_as_re_does() -> None:
    patterns = [
        r"^(\w+\s?)*$",
        r"^[a-z]+(-[a-z]+)*$",
        r"a|b",
        r"^\d{2,4}$",
        r"x*?y",
        r"\bfoo\b",
        r"^#[0-9a-fA-F]{6}\Z",
        r"[^abc]+",
        r"(ab|a)(c|bcd)(d*)",
        r".",
        r"^$",
        r"a{0,3}b?$",
        r"\BB",
        r"^(a|aa)*$",
        r"\s\S\d\D\W",
    ]
    texts = [
        "",
        "a",
        "ab",
        "a b",
        "foo",
        " foo!",
        "12",
        "1234",
        "12345",
        "#a0B1c2",
        "\n",
        "a\n",
        "abcd",
        "aab",
        "x_y",
        "B",
        "aB",
        "- 1x!",
        "aaaaaaaaaa!",
    ]
    for pattern in patterns:
        compiled = compile_pattern(pattern)
        for text in texts:
            assert compiled.search(text) == (re.search(pattern, text) is not None), (pattern, text)


def test_a_value_too_long_for_a_pattern_is_skipped_with_a_note(
    tmp_path: Path,
    api: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api["model"] = model_answer({"prompt": {"type": "string", "pattern": "^[a-z ]*$"}})
    began = time.monotonic()
    code, shown = validate_online(
        tmp_path, api, capsys, monkeypatch, values="['" + "a" * 200_000 + "']"
    )
    assert time.monotonic() - began < 20
    assert code == 0
    assert (
        "the pattern '^[a-z ]*$' in the input schema of the model acme/x was not checked:"
        " a value of 200,000 characters is too long for it"
    ) in shown


def test_the_validator_itself_never_retrieves_a_reference(api: dict[str, Any]) -> None:
    # Behind the up-front refusal, a second wall: the registry's retrieve refuses everything.
    import referencing.exceptions

    from batchrun.engine.modelschema import FieldChecker

    url = f"{api['server'].url}/schema.json"
    fields = FieldChecker({"schemas": {"Input": {"properties": {"p": {"$ref": url}}}}})
    with pytest.raises(referencing.exceptions.Unresolvable):
        fields.check("p", "x")
    assert asked(api) == []
