"""Where a prediction's output files go: its job's `files` template (or the spec's), filled safely.

    namer = FileNamer("${job}/${img.stem}-${output}${ext}")
    namer.path_for(job=..., key=..., index=0, url=..., repeat=0, vars=row, output="image")

Every piece substituted into the template (the job, the key, a matrix value, the extension from a
server's URL) is made safe first: no separators, no `..`, nothing absolute, no control
characters, bounded length. The template's own literal `/` make folders.

Besides mapping fields (`${row.name}` when the row has a column `name`), a path-like value (one
from `{glob:}`, or any text with a `/` or an extension) has path fields: `${img.name}`
(`photo.png`), `${img.stem}` (`photo`) and `${img.suffix}` (`.png`).

`${output}` names a file by its place in the model's output: the key of a mapping output
(`image`, `mask`; `images-0` inside a list), or the position in a list output (`0`, `1`).

The planner fills the template for every planned prediction before anything is sent (the
extension and the output's shape are not known yet), so a row it cannot name is a spec error,
not a surprise after paying; the runner fills it again with the real values.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from batchrun.errors import DownloadError
from batchrun.output_files import data_uri_media, is_data_uri, walk
from batchrun.spec.describe import show
from batchrun.spec.load import Spec
from batchrun.spec.template import (
    MissingField,
    MissingVariable,
    Ref,
    RenderError,
    Template,
    as_text,
)

_UNSAFE = re.compile(r"[^\w.\-+=,@ ]+")
_SPACES = re.compile(r"\s+")
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
# A substituted piece longer than this is cut (keeping a hash): names stay readable in a listing.
_PIECE_LIMIT = 80
# Most file systems refuse a name longer than 255 bytes; keep a margin for `.part`.
_COMPONENT_LIMIT = 200

# Extensions for data URIs, whose "name" is only their media type.
_MEDIA_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "video/mp4": ".mp4",
    "text/plain": ".txt",
    "application/json": ".json",
}

# The fields a path-like value has in the files template.
PATH_FIELDS: dict[str, Callable[[PurePosixPath], str]] = {
    "name": lambda path: path.name,
    "stem": lambda path: path.stem,
    "suffix": lambda path: path.suffix,
}
# What batchrun fills in itself when it names a file; never a matrix variable.
NAMING_BUILTINS = frozenset({"job", "key", "index", "ext", "repeat", "output"})


class NamingError(DownloadError):
    """The files template cannot name a file: a value the row lacks, or an unusable path."""


def extension(url: str) -> str:
    """The file extension a URL names (`.png`), or "" when it names none that is safe."""
    if is_data_uri(url):
        return _MEDIA_EXTENSIONS.get(data_uri_media(url), "")
    # PurePosixPath's name and suffix, read from the text: pathlib interns every part it
    # parses, and a URL's are new for each file, so each left an entry behind in the
    # interpreter's table of interned strings, which a long run then rebuilt again and again
    # (a new table of 1.9 MB beside the old one, a peak of the run's resident set).
    parts = [part for part in unquote(urlsplit(url).path).split("/") if part not in ("", ".")]
    name = parts[-1] if parts else ""
    dot = name.rfind(".")
    suffix = name[dot:].lower() if 0 < dot < len(name) - 1 else ""
    return suffix if _EXTENSION.match(suffix) else ""


def safe_piece(value: Any) -> str:
    """One substituted value made safe to be part of a file name."""
    text = value if isinstance(value, str) else _text(value)
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _UNSAFE.sub("_", text)
    text = _SPACES.sub("_", text).strip("._ ")
    if not text:
        return "_"
    if len(text) > _PIECE_LIMIT:
        # Truncated names must stay distinct: keep a hash of the whole value.
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        text = f"{text[: _PIECE_LIMIT - 9]}~{digest}"
    return text


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return as_text(value)
    return str(value)


def is_path_like(value: str) -> bool:
    """Whether a text value reads as a file path: it has a `/` or an extension."""
    return "/" in value or bool(_EXTENSION.match(PurePosixPath(value).suffix))


class NotAPath(RenderError):
    """A path field (`${subject.name}`) on text that is not a path."""

    def __init__(self, ref: Ref, field: str, value: str) -> None:
        self.ref = ref
        super().__init__(
            f"{ref.text}: '{field}' is a path field, but {show(value)} is not a path"
            " (a value from {glob:}, or text with a '/' or an extension)"
        )


def lookup(ref: Ref, vars: Mapping[str, Any]) -> Any:
    """What `ref` names in a row, with path fields on path-like text; RenderError if nothing."""
    if not ref.fields:
        return ref.lookup(vars)
    head = Ref(ref.name, ref.fields[:-1], ref.text)
    value = head.lookup(vars)
    field = ref.fields[-1]
    if isinstance(value, str) and field in PATH_FIELDS:
        if is_path_like(value):
            return PATH_FIELDS[field](PurePosixPath(value))
        raise NotAPath(ref, field, value)
    if isinstance(value, dict) and field in value:
        return value[field]
    if isinstance(value, list) and field.isdigit() and int(field) < len(value):
        return value[int(field)]
    raise MissingField(ref, field, value)


class JobNamers:
    """Each job's FileNamer: the job's own `files` template, else the spec's (one per template)."""

    def __init__(self, default: str, own: Mapping[str, str] | None = None) -> None:
        self.default = FileNamer(default)
        made = {default: self.default}
        self.own = {
            job: made.setdefault(template, FileNamer(template))
            for job, template in (own or {}).items()
        }

    @classmethod
    def of_spec(cls, spec: Spec) -> JobNamers:
        """The namers of a spec's jobs."""
        own = {job.id: job.files for job in spec.jobs if job.files is not None}
        return cls(spec.files, own)

    def __call__(self, job: str) -> FileNamer:
        """The namer of a job (a job the spec no longer has: the spec's template)."""
        return self.own.get(job, self.default)


class FileNamer:
    """Maps (prediction, output file) to a safe path relative to the run folder."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._template = Template.compile(template)
        self.variables = self._template.variables

    def path_for(
        self,
        *,
        job: str,
        key: str,
        index: int,
        url: str,
        repeat: int,
        vars: Mapping[str, Any],
        output: str | None = None,
    ) -> str:
        """The relative posix path for one output file; NamingError if the template cannot
        name it (a variable or field the row lacks) or the path would be unsafe."""
        try:
            return self.render(
                job=job, key=key, index=index, url=url, repeat=repeat, vars=vars, output=output
            )
        except RenderError as error:
            raise NamingError(f"the files template cannot name this file: {error}") from None

    def render(
        self,
        *,
        job: str,
        key: str,
        index: int,
        url: str,
        repeat: int,
        vars: Mapping[str, Any],
        output: str | None = None,
    ) -> str:
        """What `path_for` gives, but RenderError (not DownloadError) for what the row lacks."""
        builtins = {
            "job": job,
            "key": key,
            "index": str(index),
            "ext": extension(url),
            "repeat": str(repeat),
            "output": str(index) if output is None else output,
        }
        pieces: list[str] = []
        for part in self._template.parts:
            if isinstance(part, str):
                pieces.append(part)
            elif part.name in builtins and not part.fields:
                text = builtins[part.name]
                pieces.append(text if part.name == "ext" else safe_piece(text))
            else:
                pieces.append(safe_piece(lookup(part, vars)))
        return checked_relative_path("".join(pieces))


# Distinct values whose safe piece the planner keeps: rows repeat their values (a thousand
# subjects times a thousand seeds), and making a piece safe costs more than the rest of a row.
_MEMO_LIMIT = 100_000


def planning_renderer(namer: FileNamer, job: str) -> Callable[[str, int, Mapping[str, Any]], str]:
    """What `namer.render` gives for output 0 of a row, before any output exists (no `${ext}`),
    made fast for the planner: a function of (key, repeat, row); RenderError or NamingError."""
    steps: list[tuple[int, Any]] = []
    constants = {"job": safe_piece(job), "index": "0", "ext": "", "output": "0"}
    for part in namer._template.parts:
        if isinstance(part, str):
            steps.append((0, part))
        elif part.name in constants and not part.fields:
            steps.append((0, constants[part.name]))
        elif part.name == "key" and not part.fields:
            steps.append((1, None))  # a key is hex: safe as it is
        elif part.name == "repeat" and not part.fields:
            steps.append((2, None))
        elif not part.fields:
            steps.append((3, part))
        else:
            steps.append((4, part))
    memo: dict[tuple[type, Any], str] = {}
    # The literals are the same for every row, and a safe piece has no separator, no `..` and
    # nothing unprintable: after one full check, only a path's length can still go wrong.
    checked = False

    def render(key: str, repeat: int, vars: Mapping[str, Any]) -> str:
        pieces: list[str] = []
        for kind, item in steps:
            if kind == 0:
                pieces.append(item)
            elif kind == 1:
                pieces.append(key)
            elif kind == 2:
                pieces.append(str(repeat))
            else:
                if kind == 3:
                    try:
                        value = vars[item.name]
                    except KeyError:
                        raise MissingVariable(item) from None
                else:
                    value = lookup(item, vars)
                try:
                    known = memo.get((value.__class__, value))
                except TypeError:  # a mapping or a list: not kept
                    pieces.append(safe_piece(value))
                    continue
                if known is None:
                    known = safe_piece(value)
                    if len(memo) < _MEMO_LIMIT:
                        memo[(value.__class__, value)] = known
                pieces.append(known)
        nonlocal checked
        path = "".join(pieces)
        if checked and len(path) > 0 and len(path) * 4 <= _COMPONENT_LIMIT:
            return path  # even four bytes a character cannot make a component too long
        path = checked_relative_path(path)
        checked = True
        return path

    return render


def output_names(output: Any) -> dict[str, str]:
    """For each file URL of an output, its `${output}` name: a mapping's keys joined with list
    positions (`image`, `images-0`), or the position in a list (`0`); the first place wins."""
    names: dict[str, str] = {}
    for place, value in walk(output):
        if isinstance(value, str):
            names.setdefault(value, "-".join(place) or "0")
    return names


def checked_relative_path(path: str) -> str:
    """`path` if it is a relative path inside the run folder with sane components."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if path.startswith("/") or not parts:
        raise NamingError(f"the files template gives an unusable path {path!r}")
    for part in parts:
        if part == ".." or "\\" in part or "\x00" in part:
            raise NamingError(f"the files template gives an unsafe path {path!r}")
        if len(part.encode()) > _COMPONENT_LIMIT:
            raise NamingError(f"the files template gives a name too long for a disk: {part!r}")
    return "/".join(parts)
