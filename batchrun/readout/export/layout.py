"""How an `hf` export is laid out: its record's name, a job's folder, data file and loader."""

from __future__ import annotations

from collections import Counter

# What `datasets` loads as pictures and sounds (its imagefolder and audiofolder extensions).
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tiff"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a"})

# The file of an `hf` export that `batchrun verify` checks it against: a header line (counts and
# provenance), then a line per file (its size and sha256), per planned prediction that is not
# here (and why), and per prediction here that the sandbox made.
EXPORT_RECORD = "batchrun-export.jsonl"
EXPORT_FORMAT = 1


def loader(kind: str) -> str:
    return kind if kind in ("imagefolder", "audiofolder") else "json"


def data_file(kind: str) -> str:
    return "data.jsonl" if kind == "json" else "metadata.jsonl"


def kind(extensions: Counter[str]) -> str:
    if not extensions:
        return "json"
    if set(extensions) <= IMAGE_EXTENSIONS:
        return "imagefolder"
    if set(extensions) <= AUDIO_EXTENSIONS:
        return "audiofolder"
    # Other files (video, text files, a mix): the rows name them in `file_name`, as plain text.
    return "files"


def folder_name(job: str) -> str:
    # The schema allows job ids of letters, digits, _ . - starting with a letter or digit, so
    # an id is a safe folder name; a manifest edited by hand is made safe here all the same.
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in job).lstrip(".")
    return safe or "job"
