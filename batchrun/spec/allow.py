"""What the command line allows a spec beyond its own folder (docs/SECURITY.md).

A spec may arrive in a pull request. Alone, it reads files and writes output only inside its own
folder (links followed, so a committed link to ~/.ssh is outside too), and plans no more than
MAX_PREDICTIONS; the user widens either with `--allow-outside PATH` or `--max-predictions N`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from batchrun.errors import UsageError
from batchrun.safefs import is_inside

# Planned predictions a spec may expand to, counted from its axes before a single row is walked:
# ten million take `plan` about 100 s and are already a large bill; a typo that multiplies two
# big axes (10^12 rows) must be refused at once instead of walked for days.
MAX_PREDICTIONS = 10_000_000


class Allowances(NamedTuple):
    """Paths outside the spec's folder the user allows, and the most predictions to plan."""

    outside: tuple[Path, ...] = ()
    max_predictions: int = MAX_PREDICTIONS

    @classmethod
    def of(cls, outside: tuple[str, ...] = (), max_predictions: int | None = None) -> Allowances:
        """From the command line's `--allow-outside` paths and `--max-predictions`."""
        if any(not path.strip() for path in outside):
            # `--allow-outside "$DATA"` with DATA unset: "" would mean the current folder,
            # which is rarely what was meant and may be everything (docs/SECURITY.md).
            raise UsageError(
                "--allow-outside needs a path; an empty one (an unset shell variable?) allows"
                " nothing. Write --allow-outside . to allow the current folder"
            )
        paths = tuple(Path(os.path.abspath(os.path.expanduser(p))) for p in outside)
        return cls(paths, max_predictions or MAX_PREDICTIONS)

    def permits(self, path: Path) -> bool:
        """Whether `path` (links followed) is one of the allowed paths or under one."""
        return any(is_inside(path, allowed) for allowed in self.outside)


def outside_message(written: str, path: Path, verb: str) -> str:
    """The one wording of a refused outside path."""
    return (
        f"'{written}' is outside the spec's folder; batchrun {verb} it only when the command "
        f"line allows it: --allow-outside {path}"
    )
