"""Which predictions an `hf` dataset takes, and why each other one stays out (on its card).

Every row is judged and checked from the table before anything is written; those that go in are
kept by job, with the kinds of their files."""

from __future__ import annotations

import posixpath
import re
from array import array
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from batchrun import safefs
from batchrun.errors import ManifestError
from batchrun.manifest.keytable import JUDGED_FLAGS, KeyTable
from batchrun.manifest.reader import KeyState
from batchrun.manifest.records import UNKNOWN_API, Api, Record, Status
from batchrun.manifest.state import State, key_state
from batchrun.readout.export.card import Card

# Why a planned prediction is not in a dataset, besides its status when it failed.
NOT_STARTED = "not started"
STILL_IN_FLIGHT = "in flight"
FILES_CHANGED = "files missing or changed"


def api_of(api: Api | None) -> tuple[str, bool | None]:
    """The API a record says it ran on, and whether that was the sandbox (None: not known, for
    a record written before batchrun kept it: shown as "unknown", never guessed)."""
    if api is None:
        return UNKNOWN_API, None
    return api.url, api.sandbox


def left_out_reason(recorded: KeyState | Record, run_dir: Path) -> str | None:
    """Why a recorded prediction stays out of a dataset; None when it goes in.

    `key_state`'s rule: only a succeeded prediction whose files are all as recorded (size and
    sha256) is exported, so a file changed after the run never passes for the model's output.
    """
    # Judged as the kind of API that made it: a sandbox result's files are checked too (the
    # card and `verify` say it is the sandbox's).
    state = key_state(recorded, run_dir, sandbox=bool(recorded.sandbox))
    if state is State.IN_FLIGHT:
        return STILL_IN_FLIGHT
    if state is State.FAILED:
        return str(recorded.status)
    if state is State.DOWNLOAD:
        return FILES_CHANGED
    return None


# What `hf` names files after: the 16 hex characters of a key (planner/keys.py), or at least
# nothing that could be a path. A manifest someone edited may say anything.
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _files_inside(key: str, recorded: KeyState, run_dir: Path) -> None:
    """A manifest someone edited may name /home/me/.ssh/id_rsa as an output file: a dataset
    (often uploaded) takes only regular files inside the run folder (docs/SECURITY.md)."""
    if recorded.status != Status.SUCCEEDED or recorded.missing:
        return  # left out of the dataset anyway
    if not _KEY_NAME.fullmatch(key):
        # The key names the dataset's files: `../../../outside/x` would leave `--to`.
        raise ManifestError(
            f"{run_dir}: the manifest names the key {key[:80]!r}, which is not a key"
            " batchrun makes; nothing was exported"
        )
    for path, _, _ in recorded.files:
        source = run_dir / path
        if not safefs.is_inside(source, run_dir) or not source.is_file():
            raise ManifestError(
                f"{run_dir}: the manifest names {path!r} for key {key}, "
                "which is not a file inside the run folder; nothing was exported"
            )


def sort_out(
    table: KeyTable, rows: Sequence[int], run_dir: Path, card: Card
) -> dict[str, tuple[array[int], Counter[str]]]:
    """One pass over the rows, from the table (a line is read back only for the files of a key
    beyond those it keeps): each checked (`_files_inside`: a ManifestError before anything is
    written), counted on the card, and, if it goes in, its row and the kinds of its files kept
    under its job."""
    card.missing = [(key, job, NOT_STARTED) for key, job in card.not_started]
    key_of, job_of, gone_keys = table.rows.key_of, table.job_of, card.gone
    status, flags, api, job, files = table.status, table.flags, table.api, table.job, table.files
    # Counted by the table's numbers for an API and a job, in the order rows first show them,
    # and named at the end (one API, one job a number: `KeyTable.apis`, `jobs`).
    apis: Counter[int] = Counter()
    by_job: dict[int, tuple[array[int], Counter[str]]] = {}
    sandbox = [bool(made and made.sandbox) for made in table.apis.values]
    # A key without files is judged by its status, its flags and its API alone (`key_state`:
    # nothing else of it is read), so by one KeyState of its kind, asked once.
    fileless: dict[tuple[int, int, int], tuple[KeyState, str | None]] = {}
    # Rows whose key is not the 16 hex digits batchrun makes, which `_KEY_NAME` takes: only
    # theirs need the name checked, and only a key named on the card is made as text.
    odd = table.rows.odd_keys()
    here = here_gone = 0
    for row in rows:
        if files[row]:
            key = key_of(row)
            recorded = table.key_state(key, row)  # a succeeded key's files with it
            reason = left_out_reason(recorded, run_dir)
            _files_inside(key, recorded, run_dir)
        else:
            kind = (status[row], flags[row] & JUDGED_FLAGS, api[row])
            known = fileless.get(kind)
            if known is None:
                recorded = table.key_state(key_of(row), row)
                known = fileless[kind] = (recorded, left_out_reason(recorded, run_dir))
            recorded, reason = known
            if odd and row in odd:  # no file to check: the key's name alone
                _files_inside(key_of(row), recorded, run_dir)
        # Most rows go in unnamed: their key is made as text only for the card, or to look
        # among those the spec no longer plans.
        named = reason is not None or sandbox[api[row]]
        key = key_of(row) if named or gone_keys else ""
        gone = key in gone_keys
        if reason is not None:
            card.left_out[reason] += 1
            if not gone:
                card.missing.append((key, job_of(row), reason))
            continue
        if gone:
            here_gone += 1
        else:
            here += 1
        apis[api[row]] += 1
        if sandbox[api[row]]:
            card.sandbox.append((key, job_of(row), api_of(table.api_of(row))[0]))
        kept = by_job.get(job[row])
        if kept is None:
            kept = by_job[job[row]] = (array("I"), Counter())
        kept[0].append(row)
        if recorded.files:
            kept[1].update(posixpath.splitext(path)[1].lower() for path, _, _ in recorded.files)
    card.here += here
    card.here_gone += here_gone
    for place, count in apis.items():
        card.apis[api_of(table.apis.values[place])] += count
    return {table.jobs.values[place]: kept for place, kept in by_job.items()}
