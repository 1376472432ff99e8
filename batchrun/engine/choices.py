"""The options of a run, declared once: the engine's fields, `run`'s flags and Python keywords.

`RunChoices` is the one record of what a person may choose about a run. Everything else is
derived from it:

- `batchrun run`'s flags (`cli._add_run` adds one per field, from its `Flag`: a bool is a
  switch, `--no-NAME` when it defaults to True; an `int | None` takes a whole number of at least
  1; any other field takes text that its `parse` turns into the field's value);
- the Python API's keywords (`batchrun.run(spec, limit=3)`): the same names, given as text where
  the flag takes text (`shard="2/8"`, `rate="600/min"`);
- the engine's `RunOptions`, which is a `RunChoices` plus what no person chooses;
- the survey's scope: `engine/survey.py` reads the fields it needs from the same record.

To add a run option: one field below, `option(default, help=..., ...)`, and the engine code that
reads it. Type checkers need the keyword spelled in `batchrun.RunKeywords` as well (a typed
dict cannot be derived from a dataclass); tests/commands/test_cli_options.py fails until it
is there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from batchrun.errors import UsageError

if TYPE_CHECKING:
    from batchrun.spec.rate import Rate

# The parsers are imported when a value is parsed: the command line imports this module to
# build its parser, and `batchrun --help` should not load the spec layer (jsonschema) for it.

ShardRate = Literal["shared", "whole"]


@dataclass(frozen=True)
class Flag:
    """How a run option appears on the command line, and how its text becomes its value."""

    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    # The given value (text on the command line, text or a value in Python) to the field's.
    parse: Callable[[Any], Any] | None = None


def option(default: Any, *, help: str, **flag: Any) -> Any:
    """A field of `RunChoices` with its flag (see `Flag`)."""
    return field(default=default, metadata={"flag": Flag(help=help, **flag)})


def flag_of(item: Field[Any]) -> Flag:
    """The flag a field of `RunChoices` declares."""
    found: Flag = item.metadata["flag"]
    return found


def _path(value: str | PathLike[str]) -> Path:
    return Path(value)


def _rate(value: str | Rate) -> Rate:
    from batchrun.spec.rate import Rate

    if isinstance(value, Rate):
        return value
    try:
        return Rate.parse(value)
    except ValueError as error:
        raise UsageError(f"--rate: {error}") from None


def _budget(value: str | float) -> float:
    try:
        usd = float(value)
    except ValueError:
        usd = math.nan
    if not (usd > 0 and math.isfinite(usd)):
        raise UsageError(f"--budget: expected a number of USD above 0, got {value!r}")
    return usd


def _timeout(value: str | float) -> float:
    from batchrun.cost import parse_duration

    try:
        return parse_duration(float(value) if _is_decimal(value) else value)
    except ValueError as error:
        raise UsageError(f"--timeout: {error}") from None


def _is_decimal(value: object) -> bool:
    return isinstance(value, str) and value.replace(".", "", 1).isdigit()


def _shard(value: str | tuple[int, int]) -> tuple[int, int]:
    from batchrun.planner.expand import parse_shard

    return parse_shard(value) if isinstance(value, str) else value


# The run options that choose which part of the plan a run acts on: `plan` takes them too
# (the same flags), to show exactly that part (batchrun/planner/sample.py applies them).
SELECTION = ("shard", "sample", "limit")


@dataclass(frozen=True, kw_only=True)
class RunChoices:
    """What a person chooses about a run; None means the spec's setting (or batchrun's default)."""

    out: Path | None = option(
        None, metavar="DIR", parse=_path, help="run folder (default: the spec's output)"
    )
    concurrency: int | None = option(None, metavar="N", help="predictions in flight")
    rate: Rate | None = option(
        None, metavar="R", parse=_rate, help="create requests per time, e.g. 600/min or 10/s"
    )
    budget: float | None = option(
        None,
        metavar="USD",
        parse=_budget,
        help="the most this run folder may spend, all runs together (estimated from the spec's"
        " prices; replaces its budget)",
    )
    timeout: float | None = option(
        None,
        metavar="DURATION",
        parse=_timeout,
        help="cancel a prediction running longer, e.g. 90s or 5m (replaces the spec's timeouts)",
    )
    limit: int | None = option(
        None, metavar="N", help="only the first N planned (of the shard and sample, if given)"
    )
    retry_failed: bool = option(False, help="run failed predictions again")
    rerun_stale: bool = option(
        False, help="run again what succeeded by a version other than the one SPEC.lock now pins"
    )
    download: bool = option(True, help="record output URLs, fetch nothing")
    deep: bool = option(
        False,
        help="hash every recorded file again, even those whose size, mtime and inode "
        "say they did not change",
    )
    shard: tuple[int, int] | None = option(
        None, metavar="I/N", parse=_shard, help="only shard I of N (1-based)"
    )
    # "shared": shards share the account's rate (each gets rate / N); "whole": each gets all of it
    shard_rate: ShardRate = option(
        "shared",
        choices=("shared", "whole"),
        help="shards on one account share the rate, each taking 1/N of it (default); 'whole' "
        "gives each shard all of it (shards on different accounts)",
    )
    sample: int | None = option(
        None,
        metavar="N",
        help="only N predictions spread over the plan, every matrix value among them once N is "
        "at least the longest axis; the same N every time, and within those of a larger N",
    )

    @classmethod
    def parsed(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """The fields' values for options as given (flag text or Python keywords); a name that
        is no run option is a TypeError, as an unknown keyword argument is."""
        known = {item.name: item for item in fields(RunChoices)}
        values: dict[str, Any] = {}
        for name, value in given.items():
            if name not in known:
                raise TypeError(f"unexpected keyword argument {name!r}")
            parse = flag_of(known[name]).parse
            values[name] = parse(value) if parse is not None and value is not None else value
        return values
