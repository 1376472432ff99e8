"""The docs are the contract: each test here fails when a doc and the code disagree."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

from batchrun.exitcodes import ExitCode
from batchrun.manifest import records, writer

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_the_spec_reference_is_written_from_the_current_schema() -> None:
    done = subprocess.run(
        [sys.executable, str(DOCS / "make_spec_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_exit_code_is_documented_with_its_number_and_name() -> None:
    text = (DOCS / "exit-codes.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", text, re.M))
    assert rows == {(str(code.value), code.name) for code in ExitCode}


def test_every_manifest_field_is_documented() -> None:
    text = (DOCS / "manifest.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_0-9]+)`", text))
    record = {f.name for f in dataclasses.fields(records.Record)} | {records.WRITTEN}
    header = set(writer.new_header(spec_path=Path("s.yaml"), spec_sha256="0", name="s", shard=None))
    assert record - documented == set()
    assert header - documented == set()


def test_every_status_is_documented() -> None:
    text = (DOCS / "manifest.md").read_text(encoding="utf-8")
    table = text.split("### Statuses", 1)[1]
    documented = set(re.findall(r"`([a-z]+)`", table.split("\n\n", 2)[1]))
    assert set(records.ALL_STATUSES) <= documented


def test_no_source_comment_points_at_a_document_outside_the_repository() -> None:
    # The contract the code refers to lives in docs/; DESIGN.md was the starting brief, not shipped.
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "batchrun").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "DESIGN.md" in line
    ]
    assert offenders == []


def test_the_architecture_tree_lists_the_package_as_it_is() -> None:
    done = subprocess.run(
        [sys.executable, str(DOCS / "make_architecture_tree.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_limit_and_rule_security_md_names_is_where_it_says() -> None:
    # "`api/client.py` `MAX_ANSWER_BYTES`": a module moved or a constant renamed would leave
    # the threat model pointing at nothing.
    text = (ROOT / "docs" / "SECURITY.md").read_text()
    pairs = re.findall(r"`([a-z_/]+\.py)` `([A-Za-z_][\w.]*)`", text)
    assert len(pairs) >= 20  # the pattern still finds them
    stale = [
        f"{path} {name}"
        for path, name in pairs
        if not (ROOT / "batchrun" / path).is_file()
        or name.rsplit(".", 1)[-1] not in (ROOT / "batchrun" / path).read_text()
    ]
    assert stale == []
