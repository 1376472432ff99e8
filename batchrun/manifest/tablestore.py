"""The table to and from the table kept on disk (whose file format is `tablecache.py`'s)."""

from __future__ import annotations

import itertools
import json
import os
from array import array
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from batchrun.manifest import tablecache
from batchrun.manifest.keytable import NO_STATE, KeyTable
from batchrun.manifest.records import ALL_STATUSES, Api
from batchrun.manifest.tablevalues import UNSET, WIDEST, Interned, Values
from batchrun.manifest.widevalues import Wide

# The table's columns a cache keeps, with their typecodes (`state` is set by each walk).
_ROW_COLUMNS = (
    ("source", "H"),
    ("offset", "q"),
    ("length", "I"),
    ("written", "q"),
    ("status", "B"),
    ("flags", "B"),
    ("job", "I"),
    ("api", "I"),
    ("version", "I"),
    ("template", "I"),
    ("files", "I"),
    ("bytes", "q"),
    ("missing", "I"),
    ("spent", "d"),
    ("predict_time", "d"),
    ("input_tokens", "d"),
    ("output_tokens", "d"),
    ("created", "q"),
    ("completed", "q"),
)
_KEY_COLUMNS = (("numbers", "Q"), ("_sorted", "Q"), ("_rows", "I"), ("_order", "I"))
_CHECK_COLUMNS = (("check_rows", "I"), ("check_sizes", "q"))
_TYPECODES = dict(_ROW_COLUMNS + _KEY_COLUMNS + _CHECK_COLUMNS)


def to_cache(
    run_dir: Path,
    table: KeyTable,
    paths: list[Path],
    handles: list[BinaryIO],
    pieces: list[_Pieces],
    variables: bool,
) -> None:
    """Keep the table on disk for the next reader (see `manifest/tablecache.py`), with the
    digest of each journal's bytes it was parsed from (`pieces`), and its `variables` if it
    has them."""
    try:
        marks = [
            tablecache.mark(path, handle, end, lines, digest)
            for path, handle, (end, lines), digest in zip(
                paths, handles, table.resume_at, pieces, strict=True
            )
        ]
    except OSError:
        return
    rows = table.rows
    arrays = {name: getattr(table, name) for name, _ in _ROW_COLUMNS}
    arrays.update({name: getattr(rows, name) for name, _ in _KEY_COLUMNS})
    meta = {
        "headers": table.headers,
        "jobs": table.jobs.values,
        "apis": [None if api is None else [api.url, api.sandbox] for api in table.apis.values],
        "versions": table.versions.values,
        "templates": table.templates.values,
        "odd": rows._odd,
        "odd_rows": [[row, key] for row, key in rows._odd_key.items()],
        # The kept files in columns, a file a place: one list of each is parsed at C speed.
        "check_paths": [path for files in table.checks.values() for path, _, _ in files],
        "check_shas": [sha256 for files in table.checks.values() for _, _, sha256 in files],
    }
    arrays["check_rows"] = array("I", (row for row, files in table.checks.items() for _ in files))
    arrays["check_sizes"] = array(
        "q", (size for files in table.checks.values() for _, size, _ in files)
    )
    if variables:
        arrays.update(_variables_to_cache(table))
    tablecache.write(run_dir, meta, marks, arrays)


_Pieces = tuple[tuple[int, str], ...]  # a journal's digest (`tablecache.JournalMark.pieces`)


def from_cache(
    run_dir: Path,
    paths: list[Path],
    handles: list[BinaryIO],
    files_kept: int | None,
    prove: bool,
    variables: bool,
) -> tuple[KeyTable, list[_Pieces]] | None:
    """The table the cache holds, if it describes these journals (as far as they were read
    then: `prove`, every byte hashed again) and every number in it is within its bounds (with
    its `variables`, if asked), with each journal's digest; None otherwise."""
    journals = sum(os.fstat(handle.fileno()).st_size for handle in handles)
    most = journals * tablecache.CACHE_PER_JOURNAL_BYTE + tablecache.CACHE_SLACK
    cached = tablecache.read(run_dir, _TYPECODES, most, others=variables)
    if cached is None or len(cached.journals) != len(paths):
        return None
    matches = tablecache.proved if prove else tablecache.still
    for known, path, handle in zip(cached.journals, paths, handles, strict=True):
        if not known.end or not matches(known, path, handle):
            return None
    try:
        table = _cached_table(cached, paths, files_kept)
        if table is not None and variables and not _cached_variables(table, cached.arrays):
            return None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError):
        return None
    return None if table is None else (table, [known.pieces for known in cached.journals])


def _cached_table(
    cached: tablecache.Cached, paths: list[Path], files_kept: int | None
) -> KeyTable | None:
    meta, arrays = cached.meta, cached.arrays
    table = KeyTable(paths=paths, files_kept=files_kept)
    count = len(arrays["status"])
    if any(len(arrays[name]) != count for name, _ in _ROW_COLUMNS):
        return None
    jobs = _strings(meta["jobs"], none=False)
    versions = _strings(meta["versions"], none=True)
    templates = _strings(meta["templates"], none=True)
    apis = [_api(item) for item in meta["apis"]]
    headers = meta["headers"]
    if not (jobs and versions and templates and apis and isinstance(headers, list)):
        return None
    if not all(isinstance(header, dict) for header in headers):
        return None
    bounds = {
        "status": len(ALL_STATUSES),
        "job": len(jobs),
        "api": len(apis),
        "version": len(versions),
        "template": len(templates),
        "source": len(paths),
    }
    if count and any(max(arrays[name]) >= bound for name, bound in bounds.items()):
        return None
    if count and min(arrays["offset"]) < 0:
        return None
    for name, _ in _ROW_COLUMNS:
        setattr(table, name, arrays[name])
    table.state = array("B", [NO_STATE]) * count
    table.jobs, table.versions, table.templates = (
        Interned.of(jobs),
        Interned.of(versions),
        Interned.of(templates),
    )
    table.apis = Interned.of(apis)
    table._apis_at = {
        (api.url, api.sandbox): place for place, api in enumerate(apis) if api is not None
    }
    table.headers = headers
    if not table.rows.restore(arrays, meta["odd"], meta["odd_rows"], count):
        return None
    checks = _cached_checks(meta, arrays, count, files_kept)
    if checks is None:
        return None
    table.checks = checks
    table.resume_at = [(known.end, known.lines) for known in cached.journals]
    return table


# The table's variables in the cache: their JSON (names, and each value not in an array) as the
# bytes of one array, read only by a reader that wants them; then the arrays below, by number.
# A `Wide` variable's values are not in it (nor anywhere): its digests, numbers and whether
# each is one are arrays, so the JSON holds at most WIDE_VALUES values of each variable.
_VARIABLES = "variables"
_WIDE = "wide"  # a `Wide` variable's entry in the JSON: [name, "wide", whether it has mappings]


def _variables_to_cache(table: KeyTable) -> dict[str, array[Any]]:
    """A table's variables (`load_table(variables=True)`) as arrays of the cache: the names of
    each row's variables (`columns`), and per variable (the repeat last) the place of each
    row's value and its values (an array of int64, a list in the JSON, or a `Wide`'s
    arrays)."""
    arrays: dict[str, array[Any]] = {"columns": table.columns}
    listed: list[list[Any]] = []
    shapes: dict[int, list[tuple[str, ...]]] = {}  # of the variables with mapping values
    for number, (name, values) in enumerate([*table.variables.items(), (None, table.repeat)]):
        arrays[f"places:{number}"] = values.places
        if values.shapes is not None:
            shapes[number] = values.shapes.values
            arrays[f"shapes:{number}"] = values.shape_places
        raws = values.raws
        if isinstance(raws, Wide):
            arrays[f"digests:{number}"] = raws.digests
            arrays[f"numbers:{number}"] = raws.numbers
            arrays[f"numeric:{number}"] = raws.numeric
            listed.append([name, _WIDE, raws.mapping])
        elif isinstance(raws, array):
            arrays[f"raws:{number}"] = raws
            listed.append([name, None])
        else:
            listed.append([name, [None, *raws[1:]]])  # place 0 is UNSET
    found = {"names": table.names.values, "variables": listed, "shapes": list(shapes.items())}
    arrays[_VARIABLES] = array("B", json.dumps(found, separators=(",", ":")).encode())
    return arrays


def _cached_variables(table: KeyTable, arrays: Mapping[str, array[Any]]) -> bool:
    """Take the variables a cache kept into `table` (loaded from it); False when it kept none
    or they are not what `_variables_to_cache` writes (and nothing is taken)."""
    found = arrays.get(_VARIABLES)
    if found is None:
        return False
    data = json.loads(found.tobytes())
    count = len(table.status)
    names = [tuple(item) for item in data["names"]]
    if not all(type(name) is str for item in names for name in item):
        return False
    columns = arrays["columns"]
    if not names or names[0] != () or columns.typecode != "I" or len(columns) != count:
        return False
    if count and max(columns) >= len(names):
        return False
    listed = data["variables"]
    made: list[tuple[str | None, Values]] = []
    for number, (name, raws, *rest) in enumerate(listed):
        values = Values(keep_all=name is None)  # the repeat: integers, kept
        places = arrays[f"places:{number}"]
        if places.typecode not in WIDEST or len(places) != count:
            return False
        if raws == _WIDE:
            raws = _cached_wide(arrays, number, *rest)
            if raws is None:
                return False
        elif raws is None:
            raws = arrays[f"raws:{number}"]
            if raws.typecode != "q":
                return False
        elif type(raws) is list:
            raws = [UNSET, *raws[1:]]
        else:
            return False
        if not len(raws) or (count and max(places) >= len(raws)):
            return False
        values.raws, values.places, values._at = raws, places, None
        made.append((name, values))
    for number, shapes in data["shapes"]:
        if not _cached_shapes(made[number][1], shapes, arrays[f"shapes:{number}"], count):
            return False
    variables = {name: values for name, values in made[:-1] if type(name) is str}
    if not made or made[-1][0] is not None or len(variables) != len(made) - 1:
        return False
    if not all(name in variables for item in names for name in item):
        return False
    table.variables, table.repeat = variables, made[-1][1]
    table.names, table.columns, table._named = Interned.of(names), columns, len(names)
    return True


def _cached_shapes(values: Values, shapes: Any, places: array[int], count: int) -> bool:
    """Take a variable's `shapes` (its mappings' fields) as `_variables_to_cache` wrote them;
    False when they are not that."""
    fields = [tuple(item) for item in shapes]
    if not fields or fields[0] != () or not all(type(f) is str for item in fields for f in item):
        return False
    if places.typecode not in WIDEST or len(places) != count:
        return False
    if count and max(places) >= len(fields):
        return False
    values.shapes, values.shape_places = Interned.of(fields), places
    return True


def _cached_wide(arrays: Mapping[str, array[Any]], number: int, mapping: Any) -> Wide | None:
    """A `Wide` variable's arrays as `_variables_to_cache` wrote them; None when they are not."""
    wide = Wide()
    wide.digests = arrays[f"digests:{number}"]
    wide.numbers = arrays[f"numbers:{number}"]
    wide.numeric = arrays[f"numeric:{number}"]
    wide.mapping = mapping
    kinds = (wide.digests.typecode, wide.numbers.typecode, wide.numeric.typecode)
    if kinds != ("q", "d", "B") or type(mapping) is not bool:
        return None
    if not len(wide.digests) == len(wide.numbers) == len(wide.numeric):
        return None
    return wide


def _strings(values: Any, *, none: bool) -> list[Any]:
    """A cache's interned strings (`none`: None allowed too); [] when they are not."""
    if not isinstance(values, list) or not values:
        return []
    if all(type(value) is str or (none and value is None) for value in values):
        return values
    return []


def _api(item: Any) -> Api | None:
    if item is None:
        return None
    url, sandbox = item
    if type(url) is not str or type(sandbox) is not bool:
        raise TypeError("an API of the wrong shape")
    return Api(url, sandbox)


def _cached_checks(
    meta: dict[str, Any], arrays: dict[str, array[Any]], count: int, files_kept: int | None
) -> dict[int, tuple[tuple[str, int, str], ...]] | None:
    """The kept files of a cache, row → its (path, size, sha256)s; None when they are not
    what `to_cache` writes."""
    rows, sizes = arrays["check_rows"], arrays["check_sizes"]
    paths, shas = meta["check_paths"], meta["check_shas"]
    if not (isinstance(paths, list) and isinstance(shas, list)):
        return None
    if not len(rows) == len(sizes) == len(paths) == len(shas):
        return None
    if rows and (max(rows) >= count or set(map(type, paths)) | set(map(type, shas)) != {str}):
        return None
    files = zip(paths, sizes, shas, strict=True)
    if len(set(rows)) == len(rows):  # one file a key, the common case: built at C speed
        checks = dict(zip(rows, zip(files), strict=True))
    else:
        checks = {}
        for row, file in zip(rows, files, strict=True):
            checks[row] = (*checks.get(row, ()), file)
    if files_kept is not None and len(checks) > files_kept:
        checks = dict(itertools.islice(checks.items(), files_kept))
    return checks
