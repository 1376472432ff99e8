"""The reading commands print, byte for byte, what they printed before they streamed.

`status`, `export`, `verify`, `plan` and `report` once held every key's whole record; they now
read a run folder into a `KeyTable` of a few columns and read records back one at a time. The
outputs below were written by the code before that change, over the folder
tests/streaming_fixture.py builds (retries across journals, failures, the sandbox beside a real
API, a changed file, a key the spec no longer plans...);
`python tests/readout/test_streaming_outputs.py` writes them again, for a change that is meant.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))  # run as a script too (below), to write the outputs again
from streaming_fixture import build  # noqa: E402

GOLDEN = TESTS / "data" / "streaming" / "outputs.json"
COMMANDS = {
    "status": ["status", "{spec}"],
    "status-all": ["status", "{spec}", "--all"],
    "status-run-dir": ["status", "{run}"],
    "status-json": ["status", "{spec}", "--json"],
    "status-json-all": ["status", "{spec}", "--json", "--all"],
    "status-csv": ["status", "{spec}", "--csv", "-"],
    "status-csv-all": ["status", "{spec}", "--csv", "-", "--all"],
    "export-jsonl": ["export", "{spec}", "--format", "jsonl", "--to", "-"],
    "export-jsonl-all": ["export", "{spec}", "--format", "jsonl", "--to", "-", "--all"],
    "export-csv": ["export", "{spec}", "--format", "csv", "--to", "-"],
    "export-hf": ["export", "{spec}", "--format", "hf", "--to", "{root}/hf"],
    "export-hf-all": ["export", "{spec}", "--format", "hf", "--to", "{root}/hf-all", "--all"],
    "verify": ["verify", "{spec}"],
    "verify-json": ["verify", "{spec}", "--json", "--allow-sandbox"],
    "plan": ["plan", "{spec}"],
    "plan-json": ["plan", "{spec}", "--json"],
}
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
# The card holds the export's time, so its sha256 in the export record changes with it.
_CARD_SUM = re.compile(r'("file": "README.md", "bytes": \d+, "sha256": )"[0-9a-f]{64}"')


def outputs(root: Path) -> dict[str, str]:
    """Every command's exit code, stdout and stderr (and any folder it writes) over the fixture
    built in `root`, with `root` and the export's own timestamps made neutral."""
    from batchrun.cli import main
    from batchrun.report.build import build_report
    from batchrun.spec.load import load_spec

    spec = build(root)
    run = load_spec(spec).output
    fill = {"spec": str(spec), "run": str(run), "root": str(root)}
    found: dict[str, str] = {}
    here = os.getcwd()
    os.chdir(root)
    try:
        for name, argv in COMMANDS.items():
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main([arg.format(**fill) for arg in argv])
            found[name] = f"exit {code}\n--- stdout\n{out.getvalue()}--- stderr\n{err.getvalue()}"
        for export in ("hf", "hf-all"):
            for path in sorted((root / export).rglob("*")):
                if path.is_file() and path.suffix in (".md", ".jsonl"):
                    text = path.read_text(encoding="utf-8")
                    text = _CARD_SUM.sub(r'\1"SUM"', _STAMP.sub("WHEN", text))
                    found[f"{export}/{path.relative_to(root / export)}"] = text
        when = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
        for everything in (False, True):
            page = build_report(run, now=when, everything=everything, embed_limit=1 << 20)
            found[f"report{'-all' if everything else ''}"] = page
    finally:
        os.chdir(here)
    return {name: text.replace(str(root), "ROOT") for name, text in found.items()}


def test_outputs_are_as_before(tmp_path: Path) -> None:
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    found = outputs(tmp_path)
    assert sorted(found) == sorted(expected)
    for name, text in expected.items():
        assert found[name] == text, name


@pytest.mark.parametrize("name", ["status-json", "export-jsonl-all", "verify-json"])
def test_the_fixture_holds_what_it_says(tmp_path: Path, name: str) -> None:
    """The fixture meets the cases it is for (else the comparison above proves little)."""
    text = outputs(tmp_path)[name]
    body = text.split("--- stdout\n", 1)[1].split("--- stderr\n", 1)[0]
    if name == "status-json":
        data = json.loads(body)
        assert data["counts"]["failed"] == 2
        assert data["counts"]["processing"] == 1
        assert data["other_api"] == 2
        assert data["not_in_spec"] == 1
        assert data["states"]["download"] == 2
        assert data["possible_duplicates"] == 1
        assert len(data["manifests"]) == 2
    elif name == "export-jsonl-all":
        rows = [json.loads(line) for line in body.splitlines()]
        assert "extra.a" in rows[-1]
        assert rows[-1]["key"] == "00000000deadbeef"
    else:
        kinds = {problem["kind"] for problem in json.loads(body)["problems"]}
        assert {"failed", "in_flight", "not_started", "file", "not_downloaded"} <= kinds


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as name:
        GOLDEN.write_text(json.dumps(outputs(Path(name)), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {GOLDEN}")
