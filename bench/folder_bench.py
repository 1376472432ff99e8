"""A no-op `run`, `status` and `verify` of a finished folder of many files: how long each takes.

    python bench/folder_bench.py                 # 50,000 keys, one PNG file each
    python bench/folder_bench.py --keys 5000     # smaller, to try it
    python bench/folder_bench.py --keep /tmp/f50k --only run status   # build once, keep it

A synthetic run folder: a spec of N image predictions, a manifest with each of them succeeded
and its file on disk (the same small PNG under N names: 1.2 kB each), as if the API at the
base URL had made them. A stub API on loopback answers the one request a no-op `run` sends
(whether the API is the sandbox: a real API's answer, without the sandbox's header), as a
reachable API would; nothing listening there would add the retries of a refused connection.
Then, each a fresh process timed from the outside (`--only` some of them, in its order):

    status-first    `batchrun status SPEC`, no `.batchrun-files.jsonl` yet: every file hashed
    status          again: the files' stats are as the index recorded, none is read
    status-deep     `status --deep`: every file hashed, whatever the index says
    run             `batchrun run SPEC`: nothing to do, no file read
    verify          `batchrun verify SPEC`

Each step finds the folder as the steps before it left it (and, with `--keep`, the bench's
earlier runs): `status-first` is first only on a new folder. The stub API of a kept folder
listens on the port its journal names.

Goal (issue 22): the no-op `run` and `status` of 50,000 files in at most 1.5 s.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from kept import add_keep_and_only, bench_folder, built, mark_built

from batchrun.api.endpoint import normalize_base_url
from batchrun.manifest.records import Api, FileRecord, Record
from batchrun.manifest.writer import new_header
from batchrun.planner.expand import iter_plan
from batchrun.spec.load import load_spec

BASE_URL = "http://127.0.0.1:9"  # the discard port: a no-op run must not need an API
SPEC = """\
batchrun: 1
base_url: {base}
jobs:
  - model: acme/painter
    input: {{prompt: "a picture ${{i}}", width: 64, height: 64}}
    matrix: {{i: {{range: [0, {n}]}}}}
"""
PNG = bytes.fromhex(  # a 1 × 1 PNG, padded to a typical small image's size by a text chunk
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000050001d50d0a2d0000000049454e44ae426082"
)
GOAL_S = 1.5
# Each step as the command line takes it: {spec} and {api} are filled in.
STEPS: dict[str, list[str]] = {
    "status-first": ["status", "{spec}"],
    "status": ["status", "{spec}"],
    "status-deep": ["status", "{spec}", "--deep"],
    "run": ["run", "{spec}", "--base-url", "{api}"],
    "verify": ["verify", "{spec}", "--allow-sandbox"],
}


def build(folder: Path, keys: int, api: str = BASE_URL) -> Path:
    """The spec and its run folder: a manifest of `keys` succeeded keys, their files in place,
    as a run on the API at `api` leaves it (its header names that API)."""
    import hashlib

    spec_path = folder / "spec.yaml"
    spec_path.write_text(SPEC.format(base=BASE_URL, n=keys), encoding="utf-8")
    spec = load_spec(spec_path)
    run_dir = spec.output
    (run_dir / "painter").mkdir(parents=True)
    data = PNG + b"\0" * 1200
    digest = hashlib.sha256(data).hexdigest()
    header = new_header(
        spec_path=spec.path,
        spec_sha256=spec.sha256,
        name=spec.name,
        shard=None,
        api=Api(url=normalize_base_url(api), sandbox=False),
    )
    stamp = "2026-01-01T00:00:00.000Z"
    with (run_dir / "manifest.jsonl").open("w", encoding="utf-8") as out:
        out.write(json.dumps(header, separators=(",", ":")) + "\n")
        for number, planned in enumerate(iter_plan(spec)):
            path = f"painter/{planned.key}-0.png"
            (run_dir / path).write_bytes(data)
            url = f"https://files.example/{number}.png"
            record = Record.planned(planned, "succeeded").replace(
                prediction_id=f"{number:026x}",
                output=[url],
                files=(FileRecord(url=url, path=path, sha256=digest, bytes=len(data)),),
                created_at=stamp,
                completed_at=stamp,
                attempts=1,
                files_template=spec.files,
            )
            out.write(json.dumps(record.to_json(), separators=(",", ":")) + "\n")
    return spec_path


class _StubApi(http.server.BaseHTTPRequestHandler):
    """Any request: 401, as a real API answers a token it does not know (no sandbox header)."""

    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        body = b'{"detail":"Unauthenticated"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def stub_api(port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A stub API on a loopback port (0: a free one), serving in a thread, and its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _StubApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def recorded_port(folder: Path) -> int:
    """The port of the API a built folder's journal names (its stub listened there)."""
    run_dir = load_spec(folder / "spec.yaml").output
    with (run_dir / "manifest.jsonl").open(encoding="utf-8") as journal:
        header = json.loads(journal.readline())
    port = urlsplit(header["api"]["url"]).port
    assert port is not None
    return port


def timed(*argv: str) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and exit code of one `batchrun ARGV...`
    process: on a shared machine the CPU time is the steadier figure."""
    env = {**os.environ, "REPLICATE_API_TOKEN": "r8_bench_not_a_secret"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "batchrun", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        check=False,
        text=True,
    )
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):
        raise SystemExit(f"batchrun {' '.join(argv)}: exit {done.returncode}: {done.stderr}")
    return seconds, cpu, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=50_000, help="keys, one file each")
    add_keep_and_only(parser, list(STEPS))
    parser.add_argument("--json", type=Path, help="where to write the figures")
    args = parser.parse_args()
    with bench_folder(args.keep, "folder-") as folder:
        fresh = not built(folder, args.keys)
        server, api = stub_api(0 if fresh else recorded_port(folder))
        if fresh:
            build(folder, args.keys, api)
            mark_built(folder, args.keys)
            # The index trusts only files changed over 2 s before it was written (racy entries).
            time.sleep(2.5)
        fill = {"spec": str(folder / "spec.yaml"), "api": api}
        steps = args.only or list(STEPS)
        load = os.getloadavg()[0]
        figures: dict[str, float | int] = {"keys": args.keys}
        print("wall s (CPU s) of each step:")
        print(f"| keys | {' | '.join(steps)} | load |")
        print(f"|---|{'---|' * len(steps)}---|")
        cells = []
        for step in steps:
            seconds, cpu, code = timed(*(arg.format(**fill) for arg in STEPS[step]))
            figures[f"{step} s"] = round(seconds, 2)
            figures[f"{step} cpu s"] = round(cpu, 2)
            cells.append(f"{seconds:.2f} ({cpu:.2f})" + ("" if code == 0 else f" exit {code}"))
        figures["load_before"] = round(load, 2)
        figures["run requests"] = _StubApi.requests
        print(f"| {args.keys:,} | {' | '.join(cells)} | {load:.2f} |")
        print(f"requests the no-op run sent: {_StubApi.requests}")
    server.shutdown()
    out = args.json or Path(__file__).parent / "results" / "folder_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
