"""Regenerate docs/report.png: the report of a sandbox run of specs/sweep.yaml, in Chromium.

    python docs/make_report_screenshot.py [--keep DIR]

It runs the sweep against the built-in sandbox (over loopback, no token, no cost), with a small
share of simulated failures so the picture shows a failed cell too, writes the run's
report.html and takes a headless screenshot of its top. Needs /usr/bin/chromium (Debian's
`chromium` package). `--keep DIR` leaves the run folder and its report in DIR/runs/sweep.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from batchrun.engine.runner import RunOptions, RunSummary, run
from batchrun.report.build import build_report
from batchrun.sandbox import Sandbox, SandboxConfig
from batchrun.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "sweep.yaml"
OUTPUT = ROOT / "docs" / "report.png"
CHROMIUM = "/usr/bin/chromium"
WINDOW = "1280,1180"  # the summary and the first section's whole grid
# A few seconds of simulated work each (so the timings read like a run), and a failure or two:
# which predictions fail depends on the order of creates, so it varies from run to run.
SANDBOX = SandboxConfig(latency=1.5, jitter=1.0, failure_rate=0.08, seed=3)


def main(argv: list[str] | None = None) -> int:
    """Run the sweep, write its report, screenshot it into docs/report.png."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", metavar="DIR", help="keep the run folder here")
    args = parser.parse_args(argv)
    home = Path.cwd()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep).resolve() if args.keep else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        # Run from the folder that holds the run, so the page names it as a user would see it.
        os.chdir(folder)
        try:
            summary = _run_and_shoot(Path("runs") / "sweep", Path(scratch) / "profile")
        finally:
            os.chdir(home)
    tally = summary.tally
    print(f"{OUTPUT}: {tally.succeeded} succeeded, {tally.failed} failed")
    return 0


def _run_and_shoot(run_dir: Path, profile: Path) -> RunSummary:
    with Sandbox(SANDBOX) as sandbox:
        options = RunOptions(base_url=sandbox.base_url, token="sandbox", out=run_dir)
        summary = run(load_spec(SPEC), options)
    page = run_dir / "report.html"
    page.write_text(build_report(run_dir), encoding="utf-8")
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            f"--window-size={WINDOW}",
            f"--screenshot={OUTPUT}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return summary


if __name__ == "__main__":
    sys.exit(main())
