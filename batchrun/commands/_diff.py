"""`plan --diff REV` shown three ways: for a terminal, as JSON Lines, and as a PR comment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from batchrun.humanize import counted, human_seconds
from batchrun.manifest.timing import JobTiming, Recorded
from batchrun.planner.columns import flat_vars
from batchrun.planner.diff import ADDED, REMOVED, JobDiff, PlanDiff
from batchrun.planner.expand import PlannedPrediction
from batchrun.spec.describe import looks_like_token, show_row
from batchrun.spec.revision import SpecAtRevision

# A terminal shows this many added (and as many removed) predictions per job; `--json` and
# `--markdown` list the rest. Beyond a screenful nobody reads a list line by line.
TEXT_LINES_PER_JOB = 40
# A GitHub comment holds at most 65,536 characters; 150 rows per list of a few jobs stays well
# inside it, and a reviewer who needs more runs `plan --diff REV --json`.
MARKDOWN_ROWS_PER_LIST = 150
# A table cell longer than this is cut with "…": a prompt of a paragraph would make the
# comment's tables unreadable.
MARKDOWN_CELL_WIDTH = 80

_SIGN = {ADDED: "+", REMOVED: "-"}


def diff_lines(diff: PlanDiff, recorded: Recorded) -> Iterator[dict[str, Any]]:
    """One JSON object per added or removed prediction, for `plan --diff REV --json`;
    `recorded`: whether the run folder's manifest holds it (a removed one's results stay)."""
    for change, planned in diff.changes():
        yield {"change": change, **planned.to_json(), "recorded": planned.key in recorded.keys}


def render_diff(diff: PlanDiff, old: SpecAtRevision, shown: str, recorded: Recorded) -> str:
    """The diff for a terminal: per job its counts, expected time, and what changed."""
    lines = [_title(old, shown)]
    if old.spec is None:
        lines.append(f"(the spec is not in {old.revision}: every prediction is added)")
    for job in diff.jobs:
        lines.append("")
        expected = _expected(job, recorded.timings.get(job.id))
        lines.append(f"job {job.id}: {_counts(job, recorded)}{expected}")
        for change, planned_list in ((ADDED, job.added), (REMOVED, job.removed)):
            for planned in planned_list[:TEXT_LINES_PER_JOB]:
                mark = "  (recorded)" if planned.key in recorded.keys else ""
                lines.append(f"  {_SIGN[change]} {planned.key}  {_vars_text(planned)}{mark}")
            more = len(planned_list) - TEXT_LINES_PER_JOB
            if more > 0:
                lines.append(f"  {_SIGN[change]} … and {more:,} more {change} (--json lists all)")
    lines.append("")
    lines.append(
        f"total: {diff.added:,} added, {diff.removed:,} removed, {diff.unchanged:,} unchanged"
    )
    return "\n".join(lines)


def render_markdown(diff: PlanDiff, old: SpecAtRevision, shown: str, recorded: Recorded) -> str:
    """The diff as a pull-request comment: a table of counts, then each list folded away."""
    lines = [f"### batchrun plan: `{shown}` against `{old.revision}` ({old.commit[:12]})", ""]
    if old.spec is None:
        lines += [f"The spec is not in `{old.revision}`: every prediction is added.", ""]
    lines += [
        "| job | added | removed | unchanged | predict time to expect |",
        "|---|---:|---:|---:|---|",
    ]
    for job in diff.jobs:
        timing = recorded.timings.get(job.id)
        expect = _time_cell(job, timing)
        lines.append(
            f"| `{job.id}` | {len(job.added):,} | {len(job.removed):,} | {job.unchanged:,} "
            f"| {expect} |"
        )
    lines.append(
        f"| **total** | **{diff.added:,}** | **{diff.removed:,}** | **{diff.unchanged:,}** | |"
    )
    for job in diff.jobs:
        for change, planned_list in ((ADDED, job.added), (REMOVED, job.removed)):
            if planned_list:
                lines += ["", *_folded(job.id, change, planned_list, recorded.keys)]
    return "\n".join(lines) + "\n"


def _title(old: SpecAtRevision, shown: str) -> str:
    return f"{shown} against {old.revision} ({old.commit[:12]})"


def _counts(job: JobDiff, recorded: Recorded) -> str:
    ran = sum(planned.key in recorded.keys for planned in job.removed)
    kept = f" ({ran:,} of them recorded: their results stay in the run folder)" if ran else ""
    return (
        f"{len(job.added):,} added, {len(job.removed):,} removed{kept}, {job.unchanged:,} unchanged"
    )


def _expected(job: JobDiff, timing: JobTiming | None) -> str:
    if timing is None or not job.added:
        return ""
    return (
        f"; about {human_seconds(timing.expected(len(job.added)))} of predict time to add "
        f"({human_seconds(timing.mean)} each, "
        f"the mean of {counted(timing.samples, 'recorded run')})"
    )


def _time_cell(job: JobDiff, timing: JobTiming | None) -> str:
    if not job.added:
        return "—"
    if timing is None:
        return "no recorded runs"
    return f"{human_seconds(timing.expected(len(job.added)))} ({human_seconds(timing.mean)} each)"


def _vars_text(planned: PlannedPrediction) -> str:
    return show_row(planned.vars) if planned.vars else "(no variables)"


def _folded(
    job_id: str, change: str, planned_list: list[PlannedPrediction], keys: frozenset[str]
) -> list[str]:
    shown = planned_list[:MARKDOWN_ROWS_PER_LIST]
    ran = sum(planned.key in keys for planned in planned_list)
    columns: dict[str, None] = {}
    rows = []
    for planned in shown:
        flat = flat_vars(planned.vars)
        columns.update(dict.fromkeys(flat))
        rows.append((planned.key, flat))
    lines = [
        f"<details><summary><code>{job_id}</code>: {counted(len(planned_list), 'prediction')} "
        f"{change}{f' ({ran:,} recorded)' if ran else ''}</summary>",
        "",
        "| key | " + " | ".join(_cell(name) for name in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for key, flat in rows:
        cells = " | ".join(_cell(flat[name]) if name in flat else "" for name in columns)
        mark = " ✓" if key in keys else ""
        lines.append(f"| `{key}`{mark} | {cells} |")
    if ran:
        lines += ["", "✓: recorded in the run folder; its results stay there."]
    more = len(planned_list) - len(shown)
    if more > 0:
        lines += ["", f"… and {more:,} more: `batchrun plan SPEC --diff REV --json` lists all."]
    lines += ["", "</details>"]
    return lines


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if looks_like_token(text):  # a spec with a token is refused; a value file is one more guard
        text = "***"
    text = " ".join(text.split())
    if len(text) > MARKDOWN_CELL_WIDTH:
        text = text[: MARKDOWN_CELL_WIDTH - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
