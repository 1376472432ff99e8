"""Server text is data: a hostile API's error reaches the manifest whole (the token redacted) and
the terminal without escape sequences, cut short."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from hostile import Request, answer, hostile

from batchrun.cli import main
from batchrun.humanize import printable
from batchrun.manifest.reader import load_records

pytestmark = pytest.mark.timeout(60)
TOKEN = "r8_TextCanary0123456789abcdefghijklm"
NASTY = "\x1b[2J\x1b]0;pwned\x07boom\rcarriage\x1b[31m red" + " x" * 600_000 + f" {TOKEN}"


def failed(request: Request, conn: socket.socket) -> None:
    body = {
        "id": "p1",
        "status": "failed",
        "input": {},
        "output": None,
        "error": NASTY,
        "created_at": "2026-01-01T00:00:00Z",
    }
    answer(conn, 201 if request.method == "POST" else 200, json.dumps(body).encode())


def test_a_hostile_error_is_stored_whole_and_shown_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text("batchrun: 1\njobs:\n  - model: acme/flux\n    input: {prompt: x}\n")
    with hostile(failed) as server:
        code = main(["run", str(spec), "--base-url", server.url, "--quiet"])
        _, err = capsys.readouterr()
        assert code == 1
        again = main(["run", str(spec), "--base-url", server.url, "--retry-failed"])
        _, summary = capsys.readouterr()
    assert again == 1
    (shown,) = [line for line in summary.splitlines() if "failed: " in line]
    assert shown.endswith(": " + printable(NASTY.replace(TOKEN, "***")))
    assert "\x1b" not in summary
    _, records = load_records(tmp_path / "runs" / "spec")
    (record,) = records.values()
    # The whole text stays in the manifest, the token replaced before it was ever parsed.
    assert record.error == NASTY.replace(TOKEN, "***")
    assert main(["status", str(tmp_path / "runs" / "spec")]) == 1  # some failed
    out, _ = capsys.readouterr()
    (line,) = [line for line in out.splitlines() if "failed: " in line]
    assert line.endswith(": " + printable(NASTY.replace(TOKEN, "***")))
    assert "\x1b" not in out
    assert "\r" not in out
    assert len(line) < 600
    assert TOKEN not in out + err


def test_printable_drops_escapes_and_controls_and_cuts() -> None:
    assert printable("a\x1b[31mred\x1b[0m") == "ared"
    assert printable("x\x1b]0;title\x07y") == "xy"
    assert printable("x\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\y") == "xlinky"
    assert printable("one\rtwo\nthree\x08\x7f\x9b") == "one two three "
    assert printable("abc\u202edef") == "abc def"
    assert printable("x" * 10, limit=4) == "xxxx… (10 characters in all)"
    assert printable("ok: plain text, ünïcode") == "ok: plain text, ünïcode"
