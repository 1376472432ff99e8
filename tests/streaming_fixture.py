"""A run folder with every kind of record the reading commands count, for the test that their
outputs stay byte for byte what they were before they streamed
(tests/readout/test_streaming_outputs.py).

Two journals (the run's and a shard's), a key retried (its failed line superseded by a later
success, in the other journal too), failures for good, a key in flight, a `not_created` key,
results of the sandbox beside a real API's, a record without `api`, a possible duplicate, output
files (one changed on disk since, one never downloaded), costs, a key the spec no longer plans,
timestamps with and without a zone. Everything is fixed: the same folder every time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from batchrun.manifest.records import FileRecord, Record, Status
from batchrun.planner.expand import iter_plan
from batchrun.spec.load import load_spec

SPEC = """\
batchrun: 1
name: streamed
price: {per_second: 0.0014, per_image: 0.003}
files: "${job}/${key}-${index}${ext}"
jobs:
  - id: paint
    model: acme/painter
    input: {prompt: "a ${subject}, ${style}", seed: "${seed}"}
    matrix:
      subject: [fox, lighthouse]
      style: [ink, oil]
      seed: {range: [1, 4]}
  - id: chat
    model: meta/llama-chat
    input: {prompt: "question ${i}", max_tokens: 64}
    matrix: {i: {range: [0, 5]}}
"""
REAL = {"url": "https://api.replicate.com", "sandbox": False}
SANDBOX = {"url": "http://127.0.0.1:8765", "sandbox": True}


def _line(record: Record, written: int, api: dict[str, Any] | None = REAL) -> str:
    data = record.to_json()
    if api is not None:
        data["api"] = api
    else:
        data.pop("api", None)
    data["written_ns"] = written
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


def _header(spec_path: Path, shard: str | None) -> str:
    header = {
        "batchrun_manifest": 1,
        "spec": str(spec_path),
        "spec_sha256": "0" * 64,
        "name": "streamed",
        "shard": shard,
        "written_at": "2026-01-01T00:00:00.000Z",
        "batchrun_version": "0.0.0",
        "api": REAL,
    }
    return json.dumps(header, separators=(",", ":")) + "\n"


def build(folder: Path) -> Path:
    """The spec and its run folder under `folder`; returns the spec's path."""
    spec_path = folder / "spec.yaml"
    spec_path.write_text(SPEC, encoding="utf-8")
    spec = load_spec(spec_path)
    run = spec.output
    (run / "paint").mkdir(parents=True)
    main = [_header(spec_path, None)]
    shard = [_header(spec_path, "2/2")]
    later: list[str] = []
    written = 1_700_000_000_000_000_000
    for number, planned in enumerate(iter_plan(spec)):
        written += 1_000
        minute = f"{number % 60:02d}"
        record = Record.planned(planned, Status.SUCCEEDED).replace(
            prediction_id=f"p{number:04d}",
            version="v1",
            metrics={"predict_time": 0.5 + number / 8, "output_token_count": number},
            created_at=f"2026-01-01T10:{minute}:00.000Z",
            started_at=f"2026-01-01T10:{minute}:01.000Z",
            completed_at=f"2026-01-01T10:{minute}:0{number % 10}.250Z",
            attempts=1,
            cost=0.0014 * (0.5 + number / 8),
            price={"per_second": 0.0014},
            files_template=spec.files,
        )
        if planned.job == "paint":
            path = f"paint/{planned.key}-0.png"
            data = b"\x89PNG fake " + planned.key.encode() * 4
            (run / path).write_bytes(data)
            url = f"https://files.example/{number}.png"
            digest = hashlib.sha256(data).hexdigest()
            record = record.replace(output=[url], files=(FileRecord(url, path, digest, len(data)),))
        else:
            record = record.replace(output=["The ", "answer ", str(number)])
        api: dict[str, Any] | None = SANDBOX if number in (2, 13) else REAL
        out = shard if number % 4 == 3 else main
        if number == 0:  # retried: failed first (in the shard), then succeeded
            failed = record.replace(status=Status.FAILED, error="CUDA out of memory", output=None)
            shard.append(_line(failed.replace(files=()), written - 500))
            later.append(_line(record.replace(attempts=2, cost_before=0.0002), written + 10**9))
            continue
        if number in (5, 14):
            record = record.replace(status=Status.FAILED, error="NSFW content detected\nline two")
            record = record.replace(files=(), output=None)
        elif number == 6:
            record = record.replace(
                status=Status.PROCESSING, completed_at=None, files=(), cost=None
            )
        elif number == 7:
            record = record.replace(status=Status.ERROR, not_created=True, files=(), output=None)
        elif number == 8:  # its file changed on disk since
            (run / record.files[0].path).write_bytes(b"changed")
        elif number == 9:
            record = record.replace(missing=(record.files[0].url,), files=())
        elif number == 10:
            record = record.replace(possible_duplicate=True, created_at="2026-01-01T09:00:00")
            record = record.replace(completed_at="2026-01-01T09:00:05")
            api = None
        elif number == 15:
            record = record.replace(created_at="2026-01-01T11:59:00+02:00")
        out.append(_line(record, written, api))
    gone = Record(
        key="00000000deadbeef",
        job="paint",
        target={"model": "acme/painter"},
        input={"prompt": "a boat"},
        vars={"subject": "boat", "style": "ink", "seed": 1, "extra": {"a": 1}},
        repeat=0,
        status=Status.SUCCEEDED,
        output="gone",
        completed_at="2026-01-02T00:00:00.000Z",
        cost=0.5,
    )
    main.append(_line(gone, written + 5))
    (run / "manifest.jsonl").write_text("".join(main + later), encoding="utf-8")
    (run / "manifest.shard-2-of-2.jsonl").write_text("".join(shard), encoding="utf-8")
    return spec_path
