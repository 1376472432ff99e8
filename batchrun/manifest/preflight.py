"""`RUN/preflight.json`: what a passed pre-flight found, kept for the next run and for `plan`.

The pre-flight (`batchrun.engine.preflight`) writes it; a run that resumes with the same
fingerprint reads which jobs it confirmed instead of asking again, and `plan`, offline, reads
what each model's published schema says of its image count (`num_outputs` or `num_images`:
`batchrun.cost.SchemaCount`), so its estimate counts the images a model makes by default
(docs/cost.md).

    counts = schema_counts(spec, run_dir)   # job id → SchemaCount, or None: nothing recorded
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batchrun import safefs
from batchrun.cost import SchemaCount
from batchrun.errors import secrets_in_use
from batchrun.spec.load import Spec

RECORD_NAME = "preflight.json"
RECORD_FORMAT = 1
# Bytes of a record read at most: it holds a note and a count per model of a spec, which is at
# most 16 MiB itself (spec/load.py); a run folder's file is untrusted (/dev/zero behind a link).
MAX_RECORD_BYTES = 16 << 20
# The record's key for what each model's schema says of its image count, by target as the spec
# writes it (`owner/name`, `owner/name:VERSION`, `deployment owner/name`).
COUNTS_KEY = "image_counts"


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The recorded pre-flight, or None when there is none (or it cannot be read)."""
    try:
        # A regular file only: a FIFO planted there must not stall `plan` or `run`.
        data = json.loads(safefs.read_regular(run_dir / RECORD_NAME, MAX_RECORD_BYTES, run_dir))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_record(run_dir: Path, data: Mapping[str, Any]) -> None:
    """Keep a passed pre-flight's answer (written whole, or not at all)."""
    # safefs's one atomic write: a temporary named as every other (`.NAME.<hex>.tmp`, so one a
    # kill -9 left behind is cleaned like the rest), never a link followed.
    safefs.ensure_folder(run_dir, None)
    # A sink (docs/SECURITY.md): its notes may quote a server that echoed the token.
    text = json.dumps(secrets_in_use().value(data), indent=1)
    safefs.write_atomically(run_dir / RECORD_NAME, text + "\n", run_dir)


def recorded_counts(data: Mapping[str, Any] | None) -> dict[str, SchemaCount]:
    """By target, what the record says each model's schema says of its image count."""
    found = data.get(COUNTS_KEY) if data is not None else None
    if not isinstance(found, Mapping):
        return {}
    counts = {target: SchemaCount.from_json(value) for target, value in found.items()}
    return {target: count for target, count in counts.items() if count is not None}


def counts_json(counts: Mapping[str, SchemaCount]) -> dict[str, Any]:
    """The record's form of `counts` (by target)."""
    return {target: count.to_json() for target, count in sorted(counts.items())}


def schema_counts(
    spec: Spec, run_dir: Path, found: Mapping[str, SchemaCount] | None = None
) -> dict[str, SchemaCount | None]:
    """Per job, what its model's schema says of its image count: from `found` (a pre-flight just
    made) where it has the job's target, else from the run folder's record; None: unknown."""
    counts = recorded_counts(read_record(run_dir))
    counts.update(found or {})
    return {job.id: counts.get(str(job.target)) for job in spec.jobs}
