"""The dataset card of an `hf` export: what `write_hf` counted, as YAML metadata and Markdown."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from batchrun.humanize import printable
from batchrun.manifest.records import UNKNOWN_API
from batchrun.readout.export import layout
from batchrun.readout.export.layout import EXPORT_RECORD
from batchrun.readout.export.origin import Provenance

# What the card says of what a record does not name (its API, before records kept it) or an
# export does not know (how many predictions a spec that no longer loads planned).
UNKNOWN = UNKNOWN_API
# A value from a manifest or an API is cut to this many characters in the card: a version id
# (64) or a URL fits; a page of text pasted into an edited manifest does not.
CARD_TEXT_LIMIT = 200
# PyYAML folds lines longer than this; a card's values are cut far shorter, so none is folded.
YAML_WIDTH = 4096


@dataclass
class Card:
    """What the dataset card says: given by the caller, then counted by `write_hf`."""

    name: str
    provenance: Provenance
    planned: int | None = None  # how many predictions the spec plans; None: not known
    why_unplanned: str | None = None  # why that is not known
    not_started: Sequence[tuple[str, str]] = ()  # (key, job) planned and never recorded
    gone: frozenset[str] = frozenset()  # keys exported that the spec no longer plans (--all)
    # Counted while writing:
    here: int = 0  # planned predictions in the dataset
    here_gone: int = 0  # predictions in it the spec no longer plans
    left_out: Counter[str] = field(default_factory=Counter)  # reason → recorded, not exported
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (key, job, reason)
    apis: Counter[tuple[str, bool | None]] = field(default_factory=Counter)  # (url, sandbox)
    sandbox: list[tuple[str, str, str]] = field(default_factory=list)  # (key, job, url)

    @property
    def missing_reasons(self) -> Counter[str]:
        """Planned predictions not here, by why: not started, failed, in flight..."""
        return Counter(reason for _, _, reason in self.missing)

    def shortfall(self) -> str | None:
        """ "20 of the 100 planned predictions are here; missing: 80 not started", or None when
        none is missing (or the plan is not known)."""
        reasons = self.missing_reasons
        if self.planned is None or not reasons:
            return None
        why = ", ".join(f"{n:,} {reason}" for reason, n in reasons.most_common())
        return f"{self.here:,} of the {self.planned:,} planned predictions are here; missing: {why}"


@dataclass
class HfJob:
    """One job's part of an `hf` export."""

    job: str
    kind: str  # imagefolder, audiofolder or json
    rows: int = 0
    predictions: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    targets: set[str] = field(default_factory=set)


def card_value(value: object) -> str:
    """Any value that goes into a dataset card, as one line of plain text: control characters
    (newlines too, so nothing can end the metadata block or start a heading) as spaces, cut to
    `CARD_TEXT_LIMIT` characters. Every value from a spec, a manifest or an API passes here."""
    return printable(str(value), CARD_TEXT_LIMIT).strip()


# Characters that mean something to Markdown (or to the HTML it may hold) within a line.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#|!~&])")


def card_markdown(value: object) -> str:
    """`card_value` for the card's Markdown text: every Markdown and HTML character escaped."""
    return _MARKDOWN.sub(r"\\\1", card_value(value))


def _plain(value: Any) -> Any:
    """A metadata structure with every text in it through `card_value` (YAML quotes the rest)."""
    if isinstance(value, str):
        return card_value(value)
    if isinstance(value, Mapping):
        return {card_value(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def card_metadata(jobs: Sequence[HfJob], card: Card) -> dict[str, Any]:
    """The card's YAML metadata: Hugging Face's fields (license, configs), then batchrun's."""
    meta: dict[str, Any] = {}
    if card.provenance.license:
        meta["license"] = card.provenance.license
    meta["pretty_name"] = card.name
    # `datasets` picks one loader for a whole folder (by the first config's files): when every
    # job is images (or sounds) it is that folder loader; otherwise every config names its
    # JSON Lines file and loads as `json`, an image job's rows naming their files.
    folders = _uniform_folder_loader(jobs)
    configs = []
    for index, job in enumerate(jobs):
        config: dict[str, Any] = {"config_name": job.job}
        if index == 0:
            config["default"] = True
        pattern = "**" if folders else layout.data_file(job.kind)
        config["data_files"] = [
            {"split": "train", "path": f"{layout.folder_name(job.job)}/{pattern}"}
        ]
        configs.append(config)
    meta["configs"] = configs
    meta["batchrun"] = {
        **card.provenance.to_json(),
        "api": [
            {"url": url, "sandbox": UNKNOWN if sandbox is None else sandbox, "predictions": n}
            for (url, sandbox), n in card.apis.items()
        ],
        "models": [
            {"job": job.job, "targets": sorted(job.targets), "versions": dict(job.versions)}
            for job in jobs
        ],
        "predictions": {
            "planned": card.planned if card.planned is not None else UNKNOWN,
            "here": card.here,
            "missing": dict(card.missing_reasons),
            **({"not_in_spec": card.here_gone} if card.here_gone else {}),
        },
        "verify": EXPORT_RECORD,
    }
    plain: dict[str, Any] = _plain(meta)
    return plain


def _uniform_folder_loader(jobs: Sequence[HfJob]) -> str | None:
    loaders = {layout.loader(job.kind) for job in jobs}
    loader = loaders.pop() if len(loaders) == 1 else None
    return loader if loader in ("imagefolder", "audiofolder") else None


def dataset_card(jobs: Iterable[HfJob], card: Card) -> str:
    """The README.md of an `hf` export: metadata for `datasets` and the Hub, then what the data
    is, how much of the plan it holds, and where it came from."""
    jobs = list(jobs)
    meta = yaml.safe_dump(
        card_metadata(jobs, card), sort_keys=False, allow_unicode=True, width=YAML_WIDTH
    )
    lines = ["---", meta.rstrip("\n"), "---", "", f"# {card_markdown(card.name)}", ""]
    spec = card.provenance.spec
    lines.append(
        f"Predictions made by [batchrun](https://pypi.org/project/batchrun/) "
        f"{card_markdown(card.provenance.batchrun_version)}"
        + (f" from the spec {card_markdown(spec)}." if spec else ".")
    )
    folders = _uniform_folder_loader(jobs)
    lines += [
        "",
        "| job | loads as | predictions | rows | target | versions |",
        "|---|---|---:|---:|---|---|",
    ]
    for job in jobs:
        versions = ", ".join(
            f"{card_markdown(v[:12])} ({n})" for v, n in job.versions.most_common()
        )
        targets = ", ".join(card_markdown(t) for t in sorted(job.targets))
        loads = folders or "json"
        lines.append(
            f"| {card_markdown(job.job)} | {loads} | {job.predictions:,} | {job.rows:,} "
            f"| {targets} | {versions or '—'} |"
        )
    lines += ["", *_completeness(card), "", *_origin(card), ""]
    lines += [
        'Load one job with `datasets.load_dataset("PATH", "JOB")`, or a folder directly with',
        '`load_dataset("imagefolder", data_dir="PATH/JOB")` (`"json"` for a text job).',
    ]
    if not folders and any(job.kind != "json" for job in jobs):
        lines += [
            "Jobs of different kinds share this folder, so each loads as JSON, an image job's",
            "rows naming their files in `file_name`; `imagefolder` with `data_dir` decodes them.",
        ]
    lines += [
        "",
        f"`batchrun verify PATH` checks that every file is as {EXPORT_RECORD} records it.",
        "",
    ]
    return "\n".join(lines)


def _completeness(card: Card) -> list[str]:
    """How much of the plan is here: never "all" unless every planned prediction is."""
    lines = ["## Completeness", ""]
    reasons = card.missing_reasons
    if card.planned is None:
        why = f" ({card_markdown(card.why_unplanned)})" if card.why_unplanned else ""
        lines.append(
            f"{card.here:,} predictions are here. How many the spec plans is not known{why}, "
            "so this card cannot say whether any are missing."
        )
    elif not reasons:
        lines.append(f"All {card.planned:,} planned predictions succeeded and are here.")
    else:
        lines.append(f"{card.shortfall()}.")
    if card.here_gone:
        lines.append(
            f"Also here: {card.here_gone:,} predictions the spec no longer plans (`--all`)."
        )
    made_up = len(card.sandbox)
    if made_up:
        lines.append(
            f"**{made_up:,} of these predictions were made by the sandbox**, batchrun's emulator: "
            "made-up outputs, not a model's."
        )
    return lines


def _origin(card: Card) -> list[str]:
    """Where the data came from, in words (the metadata above holds the same, for machines)."""
    made = card.provenance
    lines = ["## Provenance", ""]
    if made.spec:
        sha = f" (sha256 {card_markdown(made.spec_sha256)})" if made.spec_sha256 else ""
        lines.append(f"- spec: {card_markdown(made.spec)}{sha}")
    if made.git:
        dirty = ", with uncommitted changes" if made.git.dirty else ""
        lines.append(f"- git commit: {card_markdown(made.git.commit)}{dirty}")
    if made.lock:
        lines.append(f"- lock: {card_markdown(made.lock['path'])}")
    for (url, sandbox), n in card.apis.most_common():
        if sandbox is None:
            lines.append(f"- API: not recorded (records written before batchrun kept it): {n:,}")
        else:
            kind = "the sandbox: made-up outputs" if sandbox else "a real API"
            lines.append(f"- API: {card_markdown(url)} ({kind}): {n:,} predictions")
    lines.append(f"- license: {card_markdown(made.license) if made.license else 'not stated'}")
    lines.append(
        f"- exported {card_markdown(made.exported_at)} by batchrun "
        f"{card_markdown(made.batchrun_version)}"
    )
    return lines
