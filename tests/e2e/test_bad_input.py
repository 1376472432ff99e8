"""Bad input, tried as a new user would meet it: broken value files and specs, a hostile server.

- Specs and CSV/JSONL value files from hypothesis go through `batchrun validate` and `plan`:
  exit 0, or exit 2 with every error placed (`file:line:col: ...`); never a traceback.
- A spec that turns bad after a run refuses to run (exit 2) and leaves the manifest as it was.
- A hostile API on loopback (its own small HTTP server, real sockets) answers with output URLs
  that try to escape the run folder, non-http schemes, very long names, endless or huge bodies,
  and malformed JSON. Each gets a clear error and nothing already done is lost.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from runs import TOKEN, RunCli, assert_files_intact, records, run_spec, write_spec

from batchrun.api import client as client_module
from batchrun.api.retry import RetryPolicy
from batchrun.engine.runner import RunOptions, run
from batchrun.errors import ServerError
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

QUICK_RETRIES = RetryPolicy(attempts=3, backoff_base=0.01, backoff_cap=0.02)
PLACED = re.compile(r"^.+:\d+:\d+: \S")
# The last line: `run` and `plan` say nothing was sent; `validate` counts per spec file.
SUMMARY = re.compile(
    r"^(?:batchrun: ([\d,]+) errors? in the spec; nothing was sent|.+: ([\d,]+) errors?)$"
)


def assert_refused_clearly(code: int, err: str) -> None:
    """Exit 2, placed errors as many as the summary line counts, and nothing else."""
    assert code == 2, err
    assert "Traceback" not in err
    assert "internal error" not in err
    lines = err.removesuffix("\n").split("\n")
    summary = SUMMARY.match(lines[-1])
    assert summary, err
    count = int((summary.group(1) or summary.group(2)).replace(",", ""))
    assert PLACED.match(lines[0]), f"an error without a place: {lines[0]!r}"
    assert sum(bool(PLACED.match(line)) for line in lines[:-1]) == count, err


# --- value files and specs from hypothesis -------------------------------------------------

SPEC_WITH_FILES = """\
batchrun: 1
jobs:
  - model: acme/painter
    input: {prompt: "${row.prompt} / ${item.text}", seed: "${item.seed}"}
    matrix:
      row: {csv: rows.csv}
      item: {jsonl: items.jsonl}
"""

# Text a user's editor or a spreadsheet export may produce: quotes, separators, line ends of
# every kind, a BOM, control characters, tabs, non-ASCII letters and emoji.
awkward_text = st.lists(
    st.one_of(
        st.sampled_from([*',"\r\n\t\ufeff\x00\x0b;$}{\\', "prompt", "text", "${x}"]),
        st.characters(codec="utf-8"),
    ),
    max_size=30,
).map("".join)
plain_text = st.text(alphabet="abcxyz ,'-éü😀", min_size=1, max_size=12)


def csv_of(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([["prompt"], *rows])
    return out.getvalue().encode()


csv_files = st.one_of(
    # Well-formed CSV (quoted where it must be) holding plain or awkward text.
    st.lists(
        st.lists(plain_text | awkward_text, min_size=1, max_size=1), min_size=1, max_size=4
    ).map(csv_of),
    # Ragged rows, stray quotes: what hand-edited files look like.
    st.lists(st.lists(awkward_text, min_size=1, max_size=3), min_size=1, max_size=4).map(
        lambda rows: "\n".join(",".join(cells) for cells in [["prompt"], *rows]).encode()
    ),
    awkward_text.map(str.encode),
    st.binary(max_size=40),  # not text at all, or not UTF-8
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | awkward_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(awkward_text, inner, max_size=3),
    max_leaves=6,
)
items = st.fixed_dictionaries(
    {"text": plain_text | awkward_text, "seed": st.integers(-(2**70), 2**70)}
).map(json.dumps)
jsonl_files = st.one_of(
    st.lists(items, min_size=1, max_size=4).map(lambda lines: "\n".join(lines).encode()),
    st.lists(
        items | json_values.map(lambda value: json.dumps(value, allow_nan=True)) | awkward_text,
        max_size=4,
    ).map(lambda lines: "\n".join(lines).encode()),
    st.binary(max_size=40),
)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=csv_files, items=jsonl_files)
def test_value_files_of_any_shape_plan_or_are_refused_with_a_place(
    tmp_path_factory: pytest.TempPathFactory, rows: bytes, items: bytes, run_cli: RunCli
) -> None:
    folder = tmp_path_factory.mktemp("values")
    spec = folder / "spec.yaml"
    spec.write_text(SPEC_WITH_FILES)
    (folder / "rows.csv").write_bytes(rows)
    (folder / "items.jsonl").write_bytes(items)

    checked, _, why = run_cli("validate", str(spec))
    code, out, err = run_cli("plan", str(spec), "--json")
    event(f"plan exit {code}")
    if code == 0:
        assert checked == 0, why
        # Not splitlines(): a value may hold U+0085 or U+2028, which JSON leaves as they are.
        planned = [json.loads(line) for line in out.split("\n") if line]
        assert len({p["key"] for p in planned}) == len(planned) >= 1
        for p in planned:
            row, item = p["vars"]["row"], p["vars"]["item"]
            assert p["input"]["prompt"] == f"{row['prompt']} / {item['text']}"
    else:
        assert_refused_clearly(code, err)
        assert checked == 2
        assert err.splitlines()[0] in why  # validate finds what plan found, at the same place


def test_a_field_name_with_a_line_break_still_gives_one_line_per_error(
    tmp_path: Path, run_cli: RunCli
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_WITH_FILES)
    (tmp_path / "rows.csv").write_text("prompt\na\n")
    (tmp_path / "items.jsonl").write_text('{"text": "a", "seed": 0}\n{"two\\nlines": 1}\n')
    code, _, err = run_cli("validate", str(spec))
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 2, err  # the error, then `spec.yaml: 1 error`
    assert lines[0].startswith(f"{spec}:4:")


VALID_SPEC = [
    "batchrun: 1",
    "jobs:",
    "  - model: acme/painter",
    "    input: {prompt: 'a ${x}'}",
    "    matrix: {x: [1, 2]}",
]
MISTAKES = [
    "batchrun: 2",
    "jobs:",
    "  - model: acme",
    "  - version: 0123",
    "    input: {prompt: '${missing}'}",
    "    input: {prompt: 'p', api_token: 'r8_abcdefabcdefabcdefabcdefabcdefabcdefabcd'}",
    "    matrix: {x: {csv: nothere.csv}}",
    "    matrix: {x: []}",
    "    matrix: {x: [1, 1]}",
    "    repeat: -1",
    "    repeat: 2",
    "concurrency: 0",
    "concurrency: 5",
    "rate: 10/fortnight",
    "rate: 10/s",
    "files: '/abs/${key}'",
    "files: '../${key}${ext}'",
    "files: '${x}/${key}${ext}'",
    "output: out",
    "\tjobs: []",
    "jobs: [",
    "- - -",
    ": :",
    "x: &a [*a]",
    "\x00",
    "\ufeffbatchrun: 1",
    "name: a name",
]
edits = st.lists(
    st.tuples(st.integers(0, len(VALID_SPEC)), st.sampled_from(MISTAKES), st.booleans()),
    max_size=3,
)


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(edits=edits)
def test_specs_with_a_likely_mistake_or_three_are_refused_with_a_place(
    tmp_path_factory: pytest.TempPathFactory, edits: list[tuple[int, str, bool]], run_cli: RunCli
) -> None:
    lines = list(VALID_SPEC)
    for where, mistake, replace in edits:
        if replace and where < len(lines):
            lines[where] = mistake
        else:
            lines.insert(where, mistake)
    folder = tmp_path_factory.mktemp("spec")
    spec = folder / "spec.yaml"
    spec.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli("validate", str(spec))
    event(f"validate exit {code}")
    if code != 0:
        assert_refused_clearly(code, err)
        return
    # What validate accepts, plan must plan.
    code, out, err = run_cli("plan", str(spec), "--json")
    assert code == 0, err
    assert out.count("\n") >= 1


def test_a_value_file_broken_after_a_run_refuses_to_run_and_leaves_the_manifest_alone(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    (tmp_path / "rows.csv").write_text("prompt,style\na fox,ink\na whale,oil\n")
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "${row.prompt} in ${row.style}"}
            matrix: {row: {csv: rows.csv}}
        """,
    )
    assert run_spec(spec, sandbox).ok
    manifest = (tmp_path / "run" / "manifest.jsonl").read_bytes()

    # A spreadsheet export adds a row with one column too many and a stray quote.
    (tmp_path / "rows.csv").write_text("prompt,style\na fox,ink\na whale,oil\na cat,ink,extra\n")
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    code, _, err = run_cli("run", str(spec), "--base-url", sandbox.base_url, "--quiet")

    assert_refused_clearly(code, err)
    assert "rows.csv:4:" in err
    assert (tmp_path / "run" / "manifest.jsonl").read_bytes() == manifest
    assert sandbox.state.snapshot()["creates"] == 2


# --- a hostile API -------------------------------------------------------------------------

CAP = 1_000_000
HUGE = 10**12


class Hostile:
    """A Replicate-like API whose outputs and answers are hostile; see `output_for`.

    Predictions succeed at once. `broken` names the input `case` whose create (or poll)
    answer is malformed JSON; the prediction is made all the same, as behind a proxy that
    cuts an answer short.
    """

    def __init__(self) -> None:
        self.predictions: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.broken: dict[str, bytes] = {}  # case -> the bytes answered instead of JSON
        self.broken_polls: dict[str, int] = {}  # case -> how many polls get them (absent: all)
        self.polls_answered_broken = 0
        self.poll_first: set[str] = set()  # cases created `starting`, to be polled
        self.stopping = threading.Event()
        self.base = ""

    def output_for(self, case: str) -> Any:
        base = self.base
        outputs: dict[str, Any] = {
            "dotdot": f"{base}/../../etc/passwd",
            "encoded": f"{base}/files/..%2F..%2Fetc%2Fpasswd.png",
            "absolute": f"{base}/%2Fetc%2Fpasswd",
            "long": f"{base}/files/{'n' * 10_000}.png",
            "longext": f"{base}/files/x.{'e' * 300}",
            "schemes": {
                "file": "file:///etc/passwd",
                "script": "javascript:alert(document.cookie)",
                "ftp": "ftp://127.0.0.1/x.png",
                "path": "/etc/passwd",
            },
            "huge": f"{base}/huge.bin",
            "endless": f"{base}/endless",
        }
        return outputs.get(case, [f"{base}/files/{case}-0.png", f"{base}/files/{case}-1.png"])

    def create(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        case = str(body["input"].get("case"))
        with self.lock:
            ident = f"p{len(self.predictions) + 1}"
            prediction = {
                "id": ident,
                "model": model,
                "version": "hidden",
                "input": body["input"],
                "status": "starting" if case in self.poll_first else "succeeded",
                "output": None if case in self.poll_first else self.output_for(case),
                "error": None,
                "logs": "",
                "metrics": {"predict_time": 0.01},
                "created_at": now,
                "started_at": now,
                "completed_at": None if case in self.poll_first else now,
                "urls": {"get": f"{self.base}/v1/predictions/{ident}"},
            }
            self.predictions[ident] = prediction
            return dict(prediction)

    def poll_is_broken(self, case: str) -> bool:
        with self.lock:
            left = self.broken_polls.get(case)
            if left is not None:
                if left == 0:
                    return False
                self.broken_polls[case] = left - 1
            self.polls_answered_broken += 1
            return True

    def get(self, ident: str) -> dict[str, Any] | None:
        with self.lock:
            prediction = self.predictions.get(ident)
            if prediction is None:
                return None
            if prediction["status"] == "starting":
                prediction.update(
                    status="succeeded",
                    output=self.output_for(str(prediction["input"].get("case"))),
                    completed_at=prediction["created_at"],
                )
            return dict(prediction)


def handler_for(api: Hostile) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            match = re.fullmatch(r"/v1/models/([^/]+)/([^/]+)/predictions", self.path)
            if match is None:
                self.answer(404, b'{"detail": "no such endpoint"}')
                return
            prediction = api.create(body, f"{match.group(1)}/{match.group(2)}")
            case = str(body["input"].get("case"))
            if case in api.broken and prediction["status"] == "succeeded":
                self.answer(200, api.broken[case])
                return
            self.answer(201, json.dumps(prediction).encode())

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/v1/predictions":
                with api.lock:
                    listed = list(reversed(api.predictions.values()))
                self.answer(200, json.dumps({"results": listed, "next": None}).encode())
            elif path.startswith("/v1/predictions/"):
                prediction = api.get(path.rsplit("/", 1)[1])
                if prediction is None:
                    self.answer(404, b'{"detail": "Not found."}')
                    return
                case = str(prediction["input"].get("case"))
                if case in api.broken and api.poll_is_broken(case):
                    self.answer(200, api.broken[case], "text/html")
                    return
                self.answer(200, json.dumps(prediction).encode())
            elif path == "/huge.bin":
                self.send_response(200)
                self.send_header("Content-Length", str(HUGE))
                self.end_headers()
                self.stream_forever()
            elif path == "/endless":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.stream_forever(chunked=True)
            else:
                self.answer(200, b"file at " + path.encode(), "application/octet-stream")

        def stream_forever(self, chunked: bool = False) -> None:
            piece = b"\0" * 65536
            if chunked:
                piece = b"%x\r\n%s\r\n" % (len(piece), piece)
            with contextlib.suppress(OSError):
                while not api.stopping.is_set():
                    self.wfile.write(piece)
            self.close_connection = True

    return Handler


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    api = Hostile()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(api))
    server.daemon_threads = True
    api.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield api
    api.stopping.set()
    server.shutdown()
    server.server_close()


def hostile_spec(folder: Path, rows: list[dict[str, str]], concurrency: int = 4) -> Path:
    return write_spec(
        folder,
        f"""
        batchrun: 1
        concurrency: {concurrency}
        files: "${{job}}/${{row.name}}-${{index}}${{ext}}"
        jobs:
          - id: hostile
            model: acme/hostile
            input: {{prompt: "x", case: "${{row.case}}"}}
            matrix: {{row: {json.dumps(rows, ensure_ascii=False)}}}
        """,
    )


def run_hostile(spec: Path, api: Hostile) -> Any:
    options = RunOptions(
        base_url=api.base, token=TOKEN, out=spec.parent / "run", max_file_bytes=CAP
    )
    return run(load_spec(spec), options)


def files_outside(folder: Path, run_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and run_dir not in p.parents and p.parent != folder
    )


def test_hostile_urls_and_names_stay_inside_the_run_folder(
    tmp_path: Path, hostile: Hostile
) -> None:
    passwd = Path("/etc/passwd").read_bytes()
    rows = [
        {"case": "dotdot", "name": "../../escape"},
        {"case": "encoded", "name": "/etc/passwd"},
        {"case": "absolute", "name": ".."},
        {"case": "long", "name": "x" * 10_000},
        {"case": "longext", "name": "a/../../b"},
        {"case": "plain", "name": "ünï côdé ✓"},
    ]
    spec = hostile_spec(tmp_path, rows)
    summary = run_hostile(spec, hostile)

    assert summary.ok, summary.tally.failures
    run_dir = tmp_path / "run"
    by_case = {r.vars["row"]["case"]: r for r in records(run_dir).values()}
    paths = {case: [f.path for f in r.files] for case, r in by_case.items()}
    long_name = "x" * 71 + "~"
    assert paths["dotdot"] == ["hostile/escape-0"]
    assert paths["encoded"] == ["hostile/etc_passwd-0.png"]
    assert paths["absolute"] == ["hostile/_-0"]
    assert [p[: len("hostile/") + 72] for p in paths["long"]] == ["hostile/" + long_name]
    assert paths["long"][0].endswith("-0.png")
    assert len(paths["long"][0]) < 120
    assert paths["longext"] == ["hostile/a_.._.._b-0"]  # no 300-letter "extension"
    assert paths["plain"] == ["hostile/ünï_côdé-0.png", "hostile/ünï_côdé-1.png"]
    for record in by_case.values():
        for file in record.files:
            assert (run_dir / file.path).resolve().is_relative_to(run_dir.resolve())
            assert file.url in json.dumps(record.output)
    assert assert_files_intact(run_dir) == 7
    assert files_outside(tmp_path, run_dir) == []
    assert Path("/etc/passwd").read_bytes() == passwd


def test_urls_of_other_schemes_are_kept_in_the_record_and_never_fetched(
    tmp_path: Path, hostile: Hostile
) -> None:
    spec = hostile_spec(tmp_path, [{"case": "schemes", "name": "s"}])
    summary = run_hostile(spec, hostile)

    assert summary.ok
    (record,) = records(tmp_path / "run").values()
    assert record.output == hostile.output_for("schemes")
    assert record.files == ()
    assert record.missing == ()
    assert summary.client.downloads == 0


def test_huge_and_endless_bodies_stop_at_the_cap_and_the_rest_is_kept(
    tmp_path: Path, hostile: Hostile
) -> None:
    rows = [
        {"case": "huge", "name": "huge"},
        {"case": "endless", "name": "endless"},
        {"case": "fine", "name": "fine"},
    ]
    spec = hostile_spec(tmp_path, rows)
    summary = run_hostile(spec, hostile)

    run_dir = tmp_path / "run"
    by_case = {r.vars["row"]["case"]: r for r in records(run_dir).values()}
    huge, endless = hostile.output_for("huge"), hostile.output_for("endless")
    assert by_case["huge"].missing == (huge,)
    assert by_case["huge"].error == (
        f"cannot download {huge}: the file has {HUGE} bytes, more than the limit of {CAP}"
    )
    assert by_case["endless"].missing == (endless,)
    assert by_case["endless"].error == (
        f"cannot download {endless}: the file has more bytes than the limit of {CAP}"
    )
    assert len(by_case["fine"].files) == 2
    assert {r.status for r in by_case.values()} == {"succeeded"}
    assert summary.tally.missing_files == 2
    assert not summary.ok
    assert assert_files_intact(run_dir) == 2
    assert sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) < CAP


BROKEN = {
    "truncated": b'{"id": "p9", "status": "succ',
    "html": b"<html><body>502 Bad Gateway</body></html>",
    "no id": b'{"status": "succeeded", "output": []}',
    "a list": b"[1, 2, 3]",
}
BROKEN_SAYS = {
    "truncated": f"expected JSON, got {len(BROKEN['truncated'])} bytes of application/json",
    "html": f"expected JSON, got {len(BROKEN['html'])} bytes of application/json",
    "no id": "the prediction in the response has no id",
    "a list": "expected a JSON object describing a prediction, got list",
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_create_answered_with_malformed_json_stops_clearly_and_loses_nothing(
    tmp_path: Path, hostile: Hostile, kind: str
) -> None:
    # One at a time: three keys finish before the fourth meets the broken answer.
    rows = [{"case": f"ok{i}", "name": f"ok{i}"} for i in range(3)]
    spec = hostile_spec(tmp_path, [*rows, {"case": "bad", "name": "bad"}], concurrency=1)
    hostile.broken["bad"] = BROKEN[kind]
    with pytest.raises(ServerError) as caught:
        run_hostile(spec, hostile)

    url = f"{hostile.base}/v1/models/acme/hostile/predictions"
    assert str(caught.value) == (
        f"POST {url}: 200 response is not what the API promised: {BROKEN_SAYS[kind]}"
    )
    kept = {r.vars["row"]["case"]: r for r in records(tmp_path / "run").values()}
    assert {case: r.status for case, r in kept.items()} == {
        "ok0": "succeeded",
        "ok1": "succeeded",
        "ok2": "succeeded",
        "bad": "submitting",
    }
    for case in ("ok0", "ok1", "ok2"):
        # A download cut short by the stop is listed as missing, for the next run to fetch.
        have = {f.url for f in kept[case].files} | set(kept[case].missing)
        assert have == set(hostile.output_for(case))
    assert_files_intact(tmp_path / "run")

    # The answer was lost, not the prediction: the next run finds it instead of paying twice.
    del hostile.broken["bad"]
    assert run_hostile(spec, hostile).ok
    assert len(hostile.predictions) == 4
    assert assert_files_intact(tmp_path / "run") == 8


def test_a_poll_answered_with_an_html_page_stops_clearly_and_resumes_by_id(
    tmp_path: Path, hostile: Hostile, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    rows = [{"case": f"ok{i}", "name": f"ok{i}"} for i in range(3)]
    spec = hostile_spec(tmp_path, [*rows, {"case": "bad", "name": "bad"}], concurrency=1)
    hostile.poll_first.add("bad")
    hostile.broken["bad"] = BROKEN["html"]
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.setattr(client_module, "RetryPolicy", lambda: QUICK_RETRIES)
    out = str(tmp_path / "run")
    code, _, err = run_cli("run", str(spec), "--base-url", hostile.base, "--out", out, "--quiet")

    url = f"{hostile.base}/v1/predictions/p4"
    assert code == 3
    # Asked again as often as the policy allows, like a 5xx, before the run stops.
    assert hostile.polls_answered_broken == QUICK_RETRIES.attempts
    assert err == (
        f"batchrun: GET {url}: 200 response is not what the API promised: "
        f"expected JSON, got {len(BROKEN['html'])} bytes of text/html\n"
    )
    kept = {r.vars["row"]["case"]: r for r in records(tmp_path / "run").values()}
    assert kept["bad"].prediction_id == "p4"
    assert [kept[f"ok{i}"].status for i in range(3)] == ["succeeded"] * 3

    del hostile.broken["bad"]
    code, _, err = run_cli("run", str(spec), "--base-url", hostile.base, "--out", out, "--quiet")
    assert code == 0, err
    assert len(hostile.predictions) == 4
    assert assert_files_intact(tmp_path / "run") == 8


def test_a_poll_answer_cut_short_once_is_asked_again_and_the_run_goes_on(
    tmp_path: Path, hostile: Hostile
) -> None:
    spec = hostile_spec(tmp_path, [{"case": "flaky", "name": "flaky"}])
    hostile.poll_first.add("flaky")
    hostile.broken["flaky"] = BROKEN["truncated"]
    hostile.broken_polls["flaky"] = 1

    summary = run_hostile(spec, hostile)

    assert summary.ok
    assert hostile.polls_answered_broken == 1
    assert summary.client.server_errors == 1
    assert summary.client.retries == 1
    assert len(hostile.predictions) == 1
    assert assert_files_intact(tmp_path / "run") == 2


def test_hostile_fixture_self_check(hostile: Hostile) -> None:
    # The server answers what the scenarios above rely on.
    import httpx

    assert httpx.get(f"{hostile.base}/files/a.png").content == b"file at /files/a.png"
    with httpx.stream("GET", f"{hostile.base}/huge.bin") as response:
        assert response.headers["content-length"] == str(HUGE)
