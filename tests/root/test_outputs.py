from __future__ import annotations

import sys
from pathlib import PurePosixPath

import pytest

from batchrun.errors import DownloadError
from batchrun.output_files import decode_data_uri, output_urls
from batchrun.planner.naming import (
    FileNamer,
    checked_relative_path,
    extension,
    output_names,
    safe_piece,
)


def test_urls_are_found_in_every_output_shape_in_order_once() -> None:
    output = {
        "images": ["https://a/1.png", "https://a/2.png"],
        "caption": "a fox",
        "score": 0.5,
        "nested": {"again": "https://a/1.png", "data": "data:text/plain;base64,aGk="},
        "other": "ftp://a/x",
    }
    assert output_urls(output) == [
        "https://a/1.png",
        "https://a/2.png",
        "data:text/plain;base64,aGk=",
    ]
    assert output_urls("https://a/only.webp") == ["https://a/only.webp"]
    assert output_urls(42) == []
    assert output_urls(None) == []


@pytest.mark.parametrize(
    ("url", "ext"),
    [
        ("https://replicate.delivery/xezq/abc/out-0.PNG", ".png"),
        ("https://h/a/b.tar.gz?sig=1", ".gz"),
        ("https://h/no-extension", ""),
        ("https://h/evil.p%2Fng", ""),
        ("https://h/x.verylongextension", ""),
        ("data:image/webp;base64,AAAA", ".webp"),
        ("data:application/x-unknown;base64,AAAA", ""),
    ],
)
def test_extensions_come_only_from_safe_suffixes(url: str, ext: str) -> None:
    assert extension(url) == ext


@pytest.mark.parametrize(
    "path",
    ["/a/b.png", "/a/b.png/", "/a/b.png/.", "//a//b.PNG", "/.png", "/a/..", "/a.", "/", "",
     "/a/.b.jpg", "/a/b..png", "/x/y.tar.gz//", "/a/./b.webp/./", "/%2E%2E/c.gif"],
)  # fmt: skip
def test_an_extension_is_the_suffix_pathlib_reads_and_interns_nothing(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Interned, each URL's new parts left a dead entry in the interpreter's table of interned
    # strings, which a long run rebuilt again and again (issue 22).
    interned: list[str] = []

    def recording(text: str) -> str:
        interned.append(text)
        return text

    monkeypatch.setattr(sys, "intern", recording)
    found = extension(f"https://h{path}?x=1")
    monkeypatch.undo()
    suffix = PurePosixPath(PurePosixPath(path.replace("%2E", ".")).name).suffix.lower()
    assert found == (suffix if suffix in (".png", ".jpg", ".gz", ".webp", ".gif") else "")
    assert interned == []


@pytest.mark.parametrize(
    ("value", "piece"),
    [
        ("a red fox", "a_red_fox"),
        ("../../etc/passwd", "etc_passwd"),
        ("/abs/path", "abs_path"),
        ("..", "_"),
        ("", "_"),
        ("tab\there\x00nul", "tabherenul"),
        (7, "7"),
        (True, "true"),
        (None, "null"),
        ("café", "café"),
    ],
)
def test_pieces_are_made_safe(value: object, piece: str) -> None:
    assert safe_piece(value) == piece


def test_long_pieces_are_truncated_but_stay_distinct() -> None:
    a, b = safe_piece("x" * 300 + "a"), safe_piece("x" * 300 + "b")
    assert len(a) == 80
    assert a != b


def test_the_default_template_names_files_by_job_key_index_and_extension() -> None:
    namer = FileNamer("${job}/${key}-${index}${ext}")
    path = namer.path_for(
        job="flux", key="0123abcd0123abcd", index=1, url="https://h/out-1.png", repeat=0, vars={}
    )
    assert path == "flux/0123abcd0123abcd-1.png"


def test_matrix_values_in_names_cannot_escape_the_run_folder() -> None:
    namer = FileNamer("${subject}/${row.name}/${key}${ext}")
    path = namer.path_for(
        job="j",
        key="k",
        index=0,
        url="https://h/x.png",
        repeat=0,
        vars={"subject": "../../../etc", "row": {"name": "/root/.ssh"}},
    )
    assert path == "etc/root_.ssh/k.png"


@pytest.mark.parametrize("bad", ["/etc/passwd", "a/../../b", "", "a\\..\\b"])
def test_unsafe_paths_are_refused(bad: str) -> None:
    with pytest.raises(DownloadError):
        checked_relative_path(bad)


def test_data_uris_decode() -> None:
    assert decode_data_uri("data:text/plain;base64,aGVsbG8=") == b"hello"
    assert decode_data_uri("data:,hello%20world") == b"hello world"
    with pytest.raises(DownloadError, match="malformed"):
        decode_data_uri("data:nocomma")


def test_path_fields_of_path_like_values() -> None:
    namer = FileNamer("${img.stem}/${img.name}-${img.suffix}-${row.name}${ext}")
    path = namer.path_for(
        job="j",
        key="k",
        index=0,
        url="https://h/x.webp",
        repeat=0,
        vars={"img": "inputs/cat 1.png", "row": {"name": "a.b"}},
    )
    assert path == "cat_1/cat_1.png-png-a.b.webp"


def test_a_path_field_on_plain_text_is_refused_clearly() -> None:
    namer = FileNamer("${subject.name}${ext}")
    with pytest.raises(DownloadError) as caught:
        namer.path_for(job="j", key="k", index=0, url="", repeat=0, vars={"subject": "a fox"})
    assert str(caught.value) == (
        "the files template cannot name this file: ${subject.name}: 'name' is a path field,"
        " but 'a fox' is not a path (a value from {glob:}, or text with a '/' or an extension)"
    )


def test_mapping_outputs_keep_their_keys_in_file_names() -> None:
    output = {"image": "https://h/1.png", "mask": "https://h/2.png", "more": ["https://h/3"]}
    assert output_names(output) == {
        "https://h/1.png": "image",
        "https://h/2.png": "mask",
        "https://h/3": "more-0",
    }
    assert output_names(["https://h/a", "https://h/b"]) == {"https://h/a": "0", "https://h/b": "1"}
    assert output_names("https://h/a") == {"https://h/a": "0"}
    namer = FileNamer("${key}-${output}${ext}")
    path = namer.path_for(
        job="j", key="k", index=1, url="https://h/2.png", repeat=0, vars={}, output="mask"
    )
    assert path == "k-mask.png"
