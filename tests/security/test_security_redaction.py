"""Redaction happens at the sinks, on decoded text: what batchrun acts on (an id, an output URL)
is kept as the server sent it, and what it writes or shows (the terminal, the manifest, the CSV,
the report, an export and its card, `results()`, exceptions) never holds the token, however it
arrived (plainly, JSON-escaped, or in a manifest someone wrote by hand)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from hostile import Request, answer, hostile

import batchrun
from batchrun.cli import main
from batchrun.errors import ServerError, refresh_secrets
from batchrun.manifest.reader import load_records
from batchrun.manifest.records import Record
from batchrun.manifest.table import load_index
from batchrun.manifest.writer import ManifestWriter, new_header
from batchrun.report.cells import ERROR_CHARS
from batchrun.sandbox import Sandbox

pytestmark = pytest.mark.timeout(60)
TOKEN = "r8_SinkCanary0123456789abcdefghijk"
ESCAPED = "".join(f"\\u{ord(c):04x}" for c in TOKEN)  # how a server may write it in JSON
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
SPEC = "batchrun: 1\nname: s\njobs:\n  - id: flux\n    model: acme/flux\n    input: {prompt: x}\n"


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)
    refresh_secrets()


def prediction(**fields: Any) -> dict[str, Any]:
    return {
        "id": "p1",
        "status": "succeeded",
        "input": {"prompt": "x"},
        "output": None,
        "created_at": "2026-01-01T00:00:00Z",
        **fields,
    }


def api_answering(body: bytes) -> Any:
    def handler(request: Request, conn: socket.socket) -> None:
        answer(conn, 201 if request.method == "POST" else 200, body)

    return handler


def test_an_output_url_holding_the_token_is_fetched_as_sent_and_stored_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "Redacting" on arrival rewrote the URL to one the host does not serve (548 of 1,000
    # downloads failed so with a short token); the host here serves only the URL it gave.
    def files(request: Request, conn: socket.socket) -> None:
        found = request.target == f"/out-{TOKEN}.png"
        answer(conn, 200 if found else 404, PNG if found else b"no", "image/png")

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    with hostile(files) as host:
        body = json.dumps(prediction(output=f"{host.url}/out-{TOKEN}.png"))
        with hostile(api_answering(body.replace(TOKEN, ESCAPED).encode())) as api:
            code = main(["run", str(spec), "--base-url", api.url, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    run = tmp_path / "runs" / "s"
    manifest = (run / "manifest.jsonl").read_text()
    assert TOKEN not in manifest + out + err
    _, records = load_records(run)
    (record,) = records.values()
    assert record.output == f"{host.url}/out-***.png"
    (file,) = record.files
    assert (run / file.path).read_bytes() == PNG


def test_a_prediction_whose_id_holds_the_token_is_refused_not_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Stored redacted, the id would name no prediction on a resume: batchrun does not use it.
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    body = json.dumps(prediction(id=f"p-{TOKEN}")).encode()
    with hostile(api_answering(body)) as api:
        code = main(["run", str(spec), "--base-url", api.url, "--quiet"])
    out, err = capsys.readouterr()
    assert code != 0
    assert "the prediction id in the response holds the API token" in err
    manifest = (tmp_path / "runs" / "s" / "manifest.jsonl").read_text()
    assert TOKEN not in manifest + out + err
    assert "***" not in manifest  # refused, not stored redacted


def test_a_version_holding_the_token_is_never_pinned_in_the_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # SPEC.lock is committed: stored redacted, the pin would name no version either.
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    model = {"owner": "acme", "name": "flux", "latest_version": {"id": f"v{TOKEN}"}}
    with hostile(api_answering(json.dumps(model).encode())) as api:
        code = main(["lock", str(spec), "--base-url", api.url])
    out, err = capsys.readouterr()
    assert code != 0
    assert "the model's latest version in the response holds the API token" in err
    assert TOKEN not in out + err
    assert not (tmp_path / "spec.yaml.lock").exists()


def record(**changes: Any) -> Record:
    base = Record(
        key="k1",
        job="flux",
        target={"model": "acme/flux"},
        input={"prompt": "x"},
        vars={},
        repeat=0,
        status="succeeded",
        api=None,
    )
    return base.replace(**changes)


def test_the_manifest_line_is_redacted_and_the_record_in_memory_is_not(tmp_path: Path) -> None:
    header = new_header(spec_path=tmp_path / "s.yaml", spec_sha256="ab" * 32, name="s", shard=None)
    writer = ManifestWriter.open(tmp_path / "manifest.jsonl", header, load_index(tmp_path))
    kept = record(status="failed", error=f"bad token {TOKEN}", metrics={TOKEN: 1})
    writer.append(kept)
    writer.close()
    text = (tmp_path / "manifest.jsonl").read_text()
    assert TOKEN not in text
    assert '"error":"bad token ***"' in text
    assert '"***":1' in text
    assert kept.error == f"bad token {TOKEN}"  # what batchrun acts on is as it came


def test_a_short_token_leaves_the_manifest_as_it_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # REPLICATE_API_TOKEN=x is in every other id and URL by chance: nothing is "redacted".
    monkeypatch.setenv("REPLICATE_API_TOKEN", "x")
    header = new_header(spec_path=tmp_path / "s.yaml", spec_sha256="ab" * 32, name="s", shard=None)
    writer = ManifestWriter.open(tmp_path / "manifest.jsonl", header, load_index(tmp_path))
    writer.append(record(prediction_id="xyzx", output="http://files.test/x.png"))
    writer.close()
    _, records = load_records(tmp_path)
    assert (records["k1"].prediction_id, records["k1"].output) == (
        "xyzx",
        "http://files.test/x.png",
    )


def hand_edited_run(tmp_path: Path, sandbox: Sandbox) -> Path:
    """A run folder whose manifest quotes the token, plainly and JSON-escaped, as a manifest
    written by another tool (or edited by hand) may: no API answer on the way to redact it."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("{prompt: x}", "{prompt: '${p}'}\n    matrix: {p: [a, b]}"))
    run = tmp_path / "run"
    assert main(["run", str(spec), "--base-url", sandbox.base_url, "--out", str(run), "-q"]) == 0
    header, *lines = (run / "manifest.jsonl").read_text().splitlines()
    first, second = {json.loads(line)["key"]: json.loads(line) for line in lines}.values()
    first["metrics"] = {"note": f"said {TOKEN}"}
    first["output"] = [f"https://files.test/{TOKEN}/out.png"]
    # Cut by the report: the token straddles where it cuts.
    second.update(status="failed", error="x" * (ERROR_CHARS - 10) + TOKEN, files=[], output=None)
    edited = [json.dumps(first).replace(TOKEN, ESCAPED, 1), json.dumps(second)]
    (run / "manifest.jsonl").write_text("\n".join([header, *edited]) + "\n")
    return run


def test_every_sink_redacts_a_token_a_manifest_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sandbox: Sandbox
) -> None:
    run = hand_edited_run(tmp_path, sandbox)
    capsys.readouterr()
    shown: list[str] = []
    for argv in (
        ["status", str(run)],
        ["status", str(run), "--json"],
        ["status", str(run), "--csv", "-"],
        ["export", str(run), "--format", "jsonl", "--to", "-"],
        ["export", str(run), "--format", "csv", "--to", "-"],
        ["report", str(run), "--output", "-"],
    ):
        main(argv)
        out, err = capsys.readouterr()
        if argv[0] != "status" or "--csv" in argv:  # status shows no succeeded record's text
            assert "***" in out, argv  # the record is shown, redacted
        shown.append(out + err)
    assert main(["status", str(run), "--csv", str(tmp_path / "s.csv")]) == 1  # one failed
    assert main(["report", str(run)]) == 0
    assert main(["export", str(run), "--format", "hf", "--to", str(tmp_path / "hf")]) == 0
    written = [(tmp_path / "s.csv").read_text(), (run / "report.html").read_text()]
    written += [
        p.read_text() for p in (tmp_path / "hf").rglob("*") if p.suffix in (".md", ".jsonl")
    ]
    rows = list(batchrun.results(run))
    assert rows[0]["output"] == ["https://files.test/***/out.png"]
    verified = json.dumps(batchrun.verify(run, allow_sandbox=True).to_json())
    assert "failed" in verified
    for text in [*shown, *written, json.dumps(rows), verified]:
        assert TOKEN not in text
        assert TOKEN[:12] not in text  # not even the start of it, where a text is cut


def test_text_cut_for_the_terminal_leaves_no_start_of_the_token() -> None:
    from batchrun.humanize import MAX_SHOWN, printable

    shown = printable("x" * (MAX_SHOWN - 10) + TOKEN)
    assert TOKEN[:10] not in shown
    assert shown.startswith("x" * (MAX_SHOWN - 10) + "***")


def test_the_dataset_card_redacts_before_it_escapes() -> None:
    # Escaped for Markdown first, `r8_...` would be `r8\\_...`, which no search for the token finds.
    from batchrun.readout.export.card import card_markdown

    shown = card_markdown(f"version {TOKEN}")
    assert "r8" not in shown
    assert shown == "version \\*\\*\\*"


def test_an_exception_never_holds_the_token() -> None:
    error = ServerError(f"the server said {TOKEN}")
    assert TOKEN not in str(error) + repr(error)
    assert str(error) == "the server said ***"
