"""`plan --diff REV` shown three ways: for a terminal, as JSON Lines, and as a PR comment.

Changed predictions (same job, variables and repeat; another input or target) show as
Terraform shows an update: `~`, each field that changed with its value before → after. A group
of predictions that changed alike (one template edit) shows its fields once, as the specs write
them, with its predictions folded under it. The pull-request comment stays within GitHub's
comment limit by showing fewer rows per list, and says how many it left out.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from batchrun.cost import ESTIMATED
from batchrun.humanize import counted, human_seconds
from batchrun.manifest.estimate import MoneyChange
from batchrun.manifest.timing import JobTiming, Recorded
from batchrun.planner.columns import flat_vars
from batchrun.planner.diff import (
    ABSENT,
    ADDED,
    CHANGED,
    REMOVED,
    Change,
    ChangeGroup,
    FieldChange,
    FieldPath,
    JobDiff,
    PlanDiff,
    value_at,
)
from batchrun.planner.expand import PlannedPrediction
from batchrun.planner.keys import jsonable
from batchrun.spec.describe import looks_like_token, show, show_row
from batchrun.spec.revision import SpecAtRevision

# A terminal shows this many added (and as many removed, and changed) predictions per job;
# `--json` and `--markdown` list the rest. Beyond a screenful nobody reads a list line by line.
TEXT_LINES_PER_JOB = 40
# A GitHub comment holds at most 65,536 characters. The comment keeps 5,000 of them for what a
# workflow adds around it (a heading, a link to the run, a cost line): within this budget it
# shows as many rows per list as fit, at most MARKDOWN_ROWS_PER_LIST.
MARKDOWN_BUDGET = 60_000
# Even within the budget, a list longer than this is read by `plan --diff REV --json`.
MARKDOWN_ROWS_PER_LIST = 150
# A table cell longer than this is cut with "…": a prompt of a paragraph would make the
# comment's tables unreadable.
MARKDOWN_CELL_WIDTH = 80

_SIGN = {ADDED: "+", REMOVED: "-", CHANGED: "~"}


def diff_lines(diff: PlanDiff, recorded: Recorded) -> Iterator[dict[str, Any]]:
    """One JSON object per change, for `plan --diff REV --json`; `recorded`: whether the run
    folder's manifest holds the key (a removed one's results stay there)."""
    keys = recorded.keys
    for job in diff.jobs:
        for group in job.changed:
            for change in group.changes:
                old, new = change.old, change.new
                yield {
                    "change": CHANGED,
                    "key": new.key,
                    "was": old.key,
                    "job": new.job,
                    "target": new.target.to_json(),
                    "before_target": old.target.to_json(),
                    "vars": new.vars,
                    "before": jsonable(old.input),
                    "input": jsonable(new.input),
                    "repeat": new.repeat,
                    "fields": [_path(path) for path in change.paths],
                    "recorded": new.key in keys,
                    "was_recorded": old.key in keys,
                }
        for change_name, planned_list in ((ADDED, job.added), (REMOVED, job.removed)):
            for planned in planned_list:
                yield {"change": change_name, **planned.to_json(), "recorded": planned.key in keys}


# --- for a terminal -----------------------------------------------------------------------


def render_diff(diff: PlanDiff, old: SpecAtRevision, shown: str, recorded: Recorded) -> str:
    """The diff for a terminal: per job its counts, expected time, and what changed."""
    lines = [_title(old, shown)]
    said = base_note(old, diff)
    if said:
        lines.append(f"({said})")
    for job in diff.jobs:
        lines.append("")
        expected = _expected(job, recorded.timings.get(job.id))
        lines.append(f"job {job.id}: {_counts(job, recorded)}{expected}")
        lines.extend(_text_changed(job, recorded.keys))
        for change, planned_list in ((ADDED, job.added), (REMOVED, job.removed)):
            for planned in planned_list[:TEXT_LINES_PER_JOB]:
                mark = "  (recorded)" if planned.key in recorded.keys else ""
                lines.append(f"  {_SIGN[change]} {planned.key}  {_vars_text(planned)}{mark}")
            more = len(planned_list) - TEXT_LINES_PER_JOB
            if more > 0:
                lines.append(f"  {_SIGN[change]} … and {more:,} more {change} (--json lists all)")
    lines.append("")
    lines.append(f"total: {_total(diff)}")
    return "\n".join(lines)


def base_note(old: SpecAtRevision, diff: PlanDiff) -> str | None:
    """One line on a base with nothing to compare: not there, or not loading."""
    problem = old.problem or diff.base_problem
    if problem:
        return (
            f"the spec at {old.revision} does not load, so every prediction counts as added: "
            f"{problem}"
        )
    if old.spec is None:
        return f"the spec is not in {old.revision}: every prediction is added"
    return None


def _text_changed(job: JobDiff, keys: frozenset[str]) -> Iterator[str]:
    left = TEXT_LINES_PER_JOB
    for group in job.changed:
        for number, written in enumerate(group.fields):
            suffix = f"  ({counted(len(group.changes), 'prediction')})" if number == 0 else ""
            yield f"  ~ {_field_text(written)}{suffix}"
        # Where the specs write a field alike, only each row's values show what changed.
        values = [written.path for written in group.fields if not written.rewritten]
        for change in group.changes[: max(left, 0)]:
            mark = "  (recorded)" if change.old.key in keys else ""
            yield f"      {change.new.key} (was {change.old.key})  {_vars_text(change.new)}{mark}"
            for path in values:
                yield f"        {_path(path)}: {_values(change, path, show)}"
        more = len(group.changes) - max(left, 0)
        if more > 0:
            yield f"      … and {more:,} more changed (--json lists all)"
        left -= len(group.changes)


def _field_text(change: FieldChange) -> str:
    if not change.rewritten:
        return (
            f"{_path(change.path)}: written alike ({_shown(change.before)}), but a file it "
            "names changed"
        )
    return f"{_path(change.path)}: {_shown(change.before)} → {_shown(change.after)}"


def _shown(value: Any) -> str:
    return "(none)" if value is ABSENT else show(value)


def _values(change: Change, path: FieldPath, how: Callable[[Any], str]) -> str:
    before, after = (_at(planned, path) for planned in (change.old, change.new))
    return f"{_or_none(before, how)} → {_or_none(after, how)}"


def _or_none(value: Any, how: Callable[[Any], str]) -> str:
    return "(none)" if value is ABSENT else how(value)


def _at(planned: PlannedPrediction, path: FieldPath) -> Any:
    if path == ("target",):
        return str(planned.target)
    return _short_files(value_at(planned.input, path[1:]))


def _short_files(value: Any) -> Any:
    """A local file's sha256 cut to its first 12 digits: enough to see it changed."""
    if isinstance(value, dict):
        if isinstance(value.get("file"), str) and isinstance(value.get("sha256"), str):
            return {**value, "sha256": value["sha256"][:12]}
        return {name: _short_files(item) for name, item in value.items()}
    return value


def _path(path: FieldPath) -> str:
    return ".".join(str(part) for part in path)


def _title(old: SpecAtRevision, shown: str) -> str:
    return f"{shown} against {old.revision} ({old.commit[:12]})"


def _total(diff: PlanDiff) -> str:
    return (
        f"{diff.added:,} added, {diff.changed:,} changed, {diff.removed:,} removed, "
        f"{diff.unchanged:,} unchanged"
    )


def _counts(job: JobDiff, recorded: Recorded) -> str:
    gone = [planned.key for planned in job.removed]
    gone += [change.old.key for group in job.changed for change in group.changes]
    ran = sum(key in recorded.keys for key in gone)
    kept = f" ({ran:,} of them recorded: their results stay in the run folder)" if ran else ""
    return (
        f"{len(job.added):,} added, {job.changed_count:,} changed, {len(job.removed):,} "
        f"removed{kept}, {job.unchanged:,} unchanged"
    )


def _expected(job: JobDiff, timing: JobTiming | None) -> str:
    if timing is None or not job.to_create:
        return ""
    return (
        f"; about {human_seconds(timing.expected(job.to_create))} of predict time to run "
        f"({human_seconds(timing.mean)} each, "
        f"the mean of {counted(timing.samples, 'recorded run')})"
    )


def _vars_text(planned: PlannedPrediction) -> str:
    return show_row(planned.vars) if planned.vars else "(no variables)"


# --- for a pull request ---------------------------------------------------------------------


def render_markdown(
    diff: PlanDiff,
    old: SpecAtRevision,
    shown: str,
    recorded: Recorded,
    money: Mapping[str, MoneyChange] | None = None,
) -> str:
    """The diff as a pull-request comment: a table of counts, then each list folded away,
    within MARKDOWN_BUDGET characters. With `money` (jobs with a price), a column says what
    the change adds and removes in money, estimated from the user's prices."""
    head = _markdown_head(diff, old, shown, recorded, money or {})
    total_rows = sum(job.changed_count + len(job.added) + len(job.removed) for job in diff.jobs)

    def fits(rows: int) -> tuple[str, int]:
        body, shown_rows = _markdown_lists(diff, recorded.keys, rows)
        left = total_rows - shown_rows
        tail = (
            [
                "",
                f"{left:,} of {total_rows:,} rows are not shown, to keep this comment within "
                "GitHub's limit: `batchrun plan SPEC --diff REV --json` lists every one.",
            ]
            if left
            else []
        )
        return "\n".join([*head, *body, *tail]) + "\n", left

    # The most rows per list that fit: text grows with rows, so a binary search finds it.
    low, high = 0, MARKDOWN_ROWS_PER_LIST
    best, _ = fits(0)
    while low <= high:
        middle = (low + high) // 2
        text, _ = fits(middle)
        if len(text) <= MARKDOWN_BUDGET:
            best, low = text, middle + 1
        else:
            high = middle - 1
    if len(best) > MARKDOWN_BUDGET:  # thousands of jobs: even their count table is too long
        cut = best[: MARKDOWN_BUDGET - 200].rsplit("\n", 1)[0]
        best = cut + "\n\n… cut here to stay within GitHub's limit: `--json` lists everything.\n"
    return best


def _markdown_head(
    diff: PlanDiff,
    old: SpecAtRevision,
    shown: str,
    recorded: Recorded,
    money: Mapping[str, MoneyChange],
) -> list[str]:
    lines = [f"### batchrun plan: `{shown}` against `{old.revision}` ({old.commit[:12]})", ""]
    said = base_note(old, diff)
    if said:
        lines += [_inline(said[0].upper() + said[1:]) + ".", ""]
    head = "| job | added | changed | removed | unchanged | predict time to expect |"
    rule = "|---|---:|---:|---:|---:|---|"
    if money:
        head += f" money ({ESTIMATED}) |"
        rule += "---|"
    lines += [head, rule]
    for job in diff.jobs:
        timing = recorded.timings.get(job.id)
        row = (
            f"| `{job.id}` | {len(job.added):,} | {job.changed_count:,} | {len(job.removed):,} "
            f"| {job.unchanged:,} | {_time_cell(job, timing)} |"
        )
        if money:
            change = money.get(job.id)
            row += f" {change.shown() if change else '—'} |"
        lines.append(row)
    total = (
        f"| **total** | **{diff.added:,}** | **{diff.changed:,}** | **{diff.removed:,}** "
        f"| **{diff.unchanged:,}** | |"
    )
    if money:
        whole = MoneyChange(
            added=sum(c.added for c in money.values()),
            removed=sum(c.removed for c in money.values()),
            unknown=any(c.unknown for c in money.values()),
            added_ceiling=sum(c.added_ceiling for c in money.values()),
        )
        total += f" **{whole.shown()}** |"
    lines.append(total)
    return lines


def _markdown_lists(diff: PlanDiff, keys: frozenset[str], rows: int) -> tuple[list[str], int]:
    """Every list with at most `rows` rows each; and how many rows that shows in all."""
    lines: list[str] = []
    shown = 0
    for job in diff.jobs:
        for group in job.changed:
            part, count = _changed_group(job.id, group, keys, rows)
            lines += ["", *part]
            shown += count
        for change, planned_list in ((ADDED, job.added), (REMOVED, job.removed)):
            if planned_list:
                part, count = _folded(job.id, change, planned_list, keys, rows)
                lines += ["", *part]
                shown += count
    return lines, shown


def _changed_group(
    job_id: str, group: ChangeGroup, keys: frozenset[str], rows: int
) -> tuple[list[str], int]:
    changes = group.changes
    lines = [f"**`{job_id}`: {counted(len(changes), 'prediction')} changed**", ""]
    for written in group.fields:
        before, after = _code(_md_value(written.before)), _code(_md_value(written.after))
        if written.rewritten:
            said = f"{before} → {after}"
        else:
            said = f"written alike ({before}), but a file it names changed"
        lines.append(f"- `~` {_code(_path(written.path))}: {said}")
    shown = changes[:rows]
    columns: dict[str, None] = {}
    for change in shown:
        columns.update(dict.fromkeys(flat_vars(change.new.vars)))
    fields = [written.path for written in group.fields]
    names = [*map(_cell, columns), *(f"{_cell(_path(path))}: before → after" for path in fields)]
    lines += [
        "",
        f"<details><summary>the {counted(len(changes), 'prediction')} of <code>{job_id}</code>"
        " changed like this</summary>",
        "",
        "| key | was | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for change in shown:
        flat = flat_vars(change.new.vars)
        cells = [_cell(flat[name]) if name in flat else "" for name in columns]
        cells += [_values(change, path, _cell) for path in fields]
        mark = " ✓" if change.old.key in keys else ""
        keys_cells = f"| `{change.new.key}` | `{change.old.key}`{mark} | "
        lines.append(keys_cells + " | ".join(cells) + " |")
    if any(change.old.key in keys for change in changes):
        lines += ["", "✓: the key before is recorded in the run folder; its results stay there."]
    more = len(changes) - len(shown)
    if more > 0:
        lines += ["", f"… and {more:,} more: `batchrun plan SPEC --diff REV --json` lists all."]
    lines += ["", "</details>"]
    return lines, len(shown)


def _folded(
    job_id: str,
    change: str,
    planned_list: list[PlannedPrediction],
    keys: frozenset[str],
    rows: int,
) -> tuple[list[str], int]:
    shown = planned_list[:rows]
    ran = sum(planned.key in keys for planned in planned_list)
    columns: dict[str, None] = {}
    table = []
    for planned in shown:
        # The variables that name the row, then what it sends.
        sent = flat_vars(jsonable(planned.input))
        flat = {**flat_vars(planned.vars), **{f"input.{name}": sent[name] for name in sent}}
        columns.update(dict.fromkeys(flat))
        table.append((planned.key, flat))
    lines = [
        f"<details><summary><code>{job_id}</code>: {counted(len(planned_list), 'prediction')} "
        f"{change}{f' ({ran:,} recorded)' if ran else ''}</summary>",
        "",
        "| key | " + " | ".join(_cell(name) for name in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for key, flat in table:
        cells = " | ".join(_cell(flat[name]) if name in flat else "" for name in columns)
        mark = " ✓" if key in keys else ""
        lines.append(f"| `{key}`{mark} | {cells} |")
    if ran:
        lines += ["", "✓: recorded in the run folder; its results stay there."]
    more = len(planned_list) - len(shown)
    if more > 0:
        lines += ["", f"… and {more:,} more: `batchrun plan SPEC --diff REV --json` lists all."]
    lines += ["", "</details>"]
    return lines, len(shown)


def _time_cell(job: JobDiff, timing: JobTiming | None) -> str:
    if not job.to_create:
        return "—"
    if timing is None:
        return "no recorded runs"
    expected = human_seconds(timing.expected(job.to_create))
    return f"{expected} ({human_seconds(timing.mean)} each)"


def _md_value(value: Any) -> str:
    if value is ABSENT:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "***" if looks_like_token(text) else text


def _code(text: str) -> str:
    # <code>, not backticks: a template may hold backticks, and a code span cannot escape them.
    return "<code>" + html.escape(" ".join(text.split()), quote=False) + "</code>"


def _inline(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=False)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if looks_like_token(text):  # a spec with a token is refused; a value file is one more guard
        text = "***"
    text = " ".join(text.split())
    if len(text) > MARKDOWN_CELL_WIDTH:
        text = text[: MARKDOWN_CELL_WIDTH - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
