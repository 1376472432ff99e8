from __future__ import annotations

from pathlib import Path

import pytest
from runfolder import NOW, grids, image, png, rec, write_run

from batchrun.cli import main as cli_main
from batchrun.commands import report as report_command
from batchrun.errors import UsageError
from batchrun.frontend.options.report import ReportArgs
from batchrun.manifest.records import Record
from batchrun.manifest.table import load_index
from batchrun.manifest.writer import ManifestWriter, new_header
from batchrun.report import layout as layout_module
from batchrun.report.build import build_report, declared_axes, relative_href
from batchrun.report.grid import Limits
from batchrun.report.layout import JOB, Placings, choose_layout


def sweep_records(run: Path) -> list[Record]:
    """subject × style × seed, one failure, size following from style (an include key)."""
    records = []
    n = 0
    for subject in ("a red fox", "a paper boat"):
        for style in ("watercolor", "pencil sketch", "pixel art"):
            for seed in (1, 2):
                n += 1
                key = f"k{n:02d}"
                size = 512 if style == "pixel art" else 768
                row = {"subject": subject, "style": style, "seed": seed, "size": size}
                metrics = {"predict_time": 0.5 * n}
                if (subject, style, seed) == ("a paper boat", "pencil sketch", 2):
                    records.append(rec(key, "failed", vars=row, error="NSFW content detected"))
                else:
                    path = f"flux/{style}/{key}-0.png"
                    records.append(image(run, key, path, vars=row, metrics=metrics))
    return records


# --- layout -------------------------------------------------------------------------------


def test_default_layout_rows_first_axis_cols_widest_that_fits_rest_sections(
    tmp_path: Path,
) -> None:
    layout = choose_layout(
        Placings.of_records(sweep_records(tmp_path)), ("subject", "style", "seed")
    )
    assert (layout.rows, layout.cols) == ("subject", "style")
    assert layout.sections == ("seed",)
    assert layout.captions == ("size",)  # size follows from style: not a dimension


def test_declared_axis_order_wins_over_the_records_key_order() -> None:
    records = [rec(f"k{s}{n}", vars={"seed": s, "name": n}) for s in (1, 2, 3) for n in ("a", "b")]
    assert choose_layout(Placings.of_records(records)).rows == "seed"
    assert choose_layout(Placings.of_records(records), ("name", "seed")).rows == "name"


def test_columns_are_the_widest_axis_up_to_8_values_else_the_narrowest() -> None:
    records = [
        rec(f"k{a}-{b}-{c}", vars={"a": a, "b": b, "c": c})
        for a in range(3)
        for b in range(9)
        for c in range(2)
    ]
    layout = choose_layout(Placings.of_records(records))
    assert (layout.rows, layout.cols, layout.sections) == ("a", "c", ("b",))
    wide = [
        rec(f"k{a}-{b}", vars={"a": a, "b": b, "c": b % 12}) for a in range(2) for b in range(30)
    ]
    # c follows from b, so it is a caption; b is then the only choice left for columns.
    assert choose_layout(Placings.of_records(wide)).cols == "b"
    both_wide = [
        rec(f"k{a}-{b}-{c}", vars={"a": a, "b": b, "c": c})
        for a in range(2)
        for b in range(10)
        for c in range(12)
    ]
    assert choose_layout(Placings.of_records(both_wide)).cols == "b"  # neither fits: the narrower


@pytest.mark.parametrize("dense", [4, 0])
def test_a_variable_that_others_fix_is_a_caption_whether_combinations_are_few_or_many(
    monkeypatch: pytest.MonkeyPatch, dense: int
) -> None:
    """Whether the others fix a variable is asked of each combination of their values, in an
    array while they are few for the records (0: never), else a dict: the same answer."""
    monkeypatch.setattr(layout_module, "DENSE_GROUPS_PER_RECORD", dense)
    records = [
        rec(f"k{a}-{b}", vars={"a": a, "b": b, "c": f"{a}-{b}", "d": (a * b) % 3})
        for a in range(4)
        for b in range(5)
    ]
    layout = choose_layout(Placings.of_records(records), ("a", "b"))
    assert layout.captions == ("c", "d")  # each a function of (a, b)
    records.append(rec("again", vars={"a": 0, "b": 0, "c": "other", "d": 0}))
    layout = choose_layout(Placings.of_records(records), ("a", "b"))
    assert layout.captions == ("d",)  # (0, 0) has two values of c now: a dimension
    assert "c" in (layout.cols, *layout.sections)


def test_several_jobs_with_one_variable_put_jobs_side_by_side() -> None:
    records = [rec(f"{j}{n}", job=j, vars={"row": {"prompt": n}}) for j in "ab" for n in "xyz"]
    layout = choose_layout(Placings.of_records(records))
    assert (layout.rows, layout.cols, layout.sections) == ("row", JOB, ())


def test_several_jobs_with_two_variables_make_the_job_the_outer_section() -> None:
    records = [
        rec(f"{j}{n}{s}{t}", job=j, vars={"n": n, "s": s, "t": t})
        for j in "ab"
        for n in "xy"
        for s in (1, 2)
        for t in (5, 6, 7)
    ]
    layout = choose_layout(Placings.of_records(records))
    assert (layout.rows, layout.cols, layout.sections) == ("n", "t", (JOB, "s"))


def test_one_given_axis_picks_the_other_by_default() -> None:
    records = [
        rec(f"k{a}{b}{c}", vars={"a": a, "b": b, "c": c}) for a in "xy" for b in "pq" for c in "mno"
    ]
    layout = choose_layout(Placings.of_records(records), rows="c")
    assert (layout.rows, layout.cols, layout.sections) == (
        "c",
        "a",
        ("b",),
    )  # a tie: declared order
    layout = choose_layout(Placings.of_records(records), cols="a")
    assert (layout.rows, layout.cols, layout.sections) == ("b", "a", ("c",))


def test_unknown_or_doubled_variables_are_usage_errors_naming_what_exists(tmp_path: Path) -> None:
    records = sweep_records(tmp_path)
    with pytest.raises(UsageError) as error:
        choose_layout(Placings.of_records(records), ("subject", "style", "seed"), rows="colour")
    assert str(error.value) == (
        "--rows colour: no such variable in this run; it has: subject, style, seed, size, job"
    )
    with pytest.raises(UsageError) as error:
        choose_layout(Placings.of_records(records), cols="seed", rows="seed")
    assert str(error.value) == "--rows and --cols are both seed; pick two different variables"


def test_values_sort_numbers_and_keep_text_in_plan_order_with_missing_last() -> None:
    records = [
        rec("a", vars={"seed": 10, "w": "zeta"}),
        rec("b", vars={"seed": 2, "w": "alpha"}),
        rec("c", vars={"seed": 1}),
    ]
    layout = choose_layout(Placings.of_records(records))
    assert [v.label for v in layout.values["seed"]] == ["1", "2", "10"]
    assert [v.label for v in layout.values["w"]] == ["zeta", "alpha", "—"]


def test_the_spec_gives_the_declared_order_and_a_broken_spec_gives_none(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "batchrun: 1\njobs:\n  - model: acme/flux\n    input: {prompt: '${b} ${a}'}\n"
        "    matrix: {b: [x, y], a: [1, 2]}\n"
    )
    assert declared_axes(spec) == ("b", "a")
    spec.write_text("batchrun: 1\njobs: nope\n")
    assert declared_axes(spec) == ()
    assert declared_axes(tmp_path / "missing.yaml") == ()


# --- the page -------------------------------------------------------------------------------


def test_grid_by_subject_and_style_in_one_section_per_seed(tmp_path: Path) -> None:
    run = write_run(tmp_path, sweep_records(tmp_path))
    page = build_report(run, rows="subject", cols="style", now=NOW)
    assert grids(page) == [
        {
            "title": "seed 1 6 predictions",
            "head": ["style → subject ↓", "watercolor", "pencil sketch", "pixel art"],
            "rows": [
                {
                    "head": "a red fox",
                    "cells": [
                        ["succeeded flux/watercolor/k01-0.png size 768 · 0.50s"],
                        ["succeeded flux/pencil%20sketch/k03-0.png size 768 · 1.50s"],
                        ["succeeded flux/pixel%20art/k05-0.png size 512 · 2.50s"],
                    ],
                },
                {
                    "head": "a paper boat",
                    "cells": [
                        ["succeeded flux/watercolor/k07-0.png size 768 · 3.50s"],
                        ["succeeded flux/pencil%20sketch/k09-0.png size 768 · 4.50s"],
                        ["succeeded flux/pixel%20art/k11-0.png size 512 · 5.50s"],
                    ],
                },
            ],
        },
        {
            "title": "seed 2 6 predictions",
            "head": ["style → subject ↓", "watercolor", "pencil sketch", "pixel art"],
            "rows": [
                {
                    "head": "a red fox",
                    "cells": [
                        ["succeeded flux/watercolor/k02-0.png size 768 · 1.00s"],
                        ["succeeded flux/pencil%20sketch/k04-0.png size 768 · 2.00s"],
                        ["succeeded flux/pixel%20art/k06-0.png size 512 · 3.00s"],
                    ],
                },
                {
                    "head": "a paper boat",
                    "cells": [
                        ["succeeded flux/watercolor/k08-0.png size 768 · 4.00s"],
                        ["failed failed NSFW content detected size 768"],
                        ["succeeded flux/pixel%20art/k12-0.png size 512 · 6.00s"],
                    ],
                },
            ],
        },
    ]
    # Every image the page names is a file of the run, relative to the page's folder.
    for section in grids(page):
        for row in section["rows"]:
            for cell in row["cells"]:
                for src in (word for item in cell for word in item.split() if ".png" in word):
                    assert (run / src.replace("%20", " ")).is_file()


def test_combinations_the_run_lacks_are_empty_cells(tmp_path: Path) -> None:
    records = [
        rec("a", vars={"s": "fox", "n": 1}, output="one"),
        rec("b", vars={"s": "fox", "n": 2}, output="two"),
        rec("c", vars={"s": "whale", "n": 7}, output="seven"),
        rec("d", vars={"s": "whale", "n": 1}, output="whale one"),
    ]
    page = build_report(write_run(tmp_path, records), now=NOW)
    assert grids(page) == [
        {
            "title": "",
            "head": ["n → s ↓", "1", "2", "7"],
            "rows": [
                {"head": "fox", "cells": [["succeeded one"], ["succeeded two"], None]},
                {"head": "whale", "cells": [["succeeded whale one"], None, ["succeeded seven"]]},
            ],
        }
    ]


def test_counts_files_and_timings_at_the_top(tmp_path: Path) -> None:
    records = [
        image(
            tmp_path,
            "a",
            "flux/a-0.png",
            vars={"n": 1},
            metrics={"predict_time": 1.25},
            created_at="2024-01-01T10:00:00.000Z",
            completed_at="2024-01-01T10:00:04.000Z",
        ),
        rec(
            "b",
            "failed",
            vars={"n": 2},
            error="boom",
            metrics={"predict_time": 0.5},
            created_at="2024-01-01T10:00:01.000Z",
            completed_at="2024-01-01T10:01:15.500Z",
        ),
        rec("c", "processing", vars={"n": 3}),
    ]
    page = build_report(write_run(tmp_path, records), now=NOW)
    assert "<title>sweep · " + str(tmp_path) + " · batchrun report</title>" in page
    assert (
        '<ul class="chips"><li class="chip inflight"><b>1</b> processing</li>'
        '<li class="chip succeeded"><b>1</b> succeeded</li>'
        '<li class="chip failed"><b>1</b> failed</li>'
        '<li class="chip total"><b>3</b> predictions</li></ul>'
    ) in page
    assert (
        f'<dl class="facts"><dt>files</dt><dd>1 ({len(png())} B)</dd>'
        "<dt>wall time</dt><dd>1m 15s, 2024-01-01 10:00:00 to 10:01:15 UTC</dd>"
        "<dt>predict time</dt><dd>1.8s in all</dd>"
        "<dt>api</dt><dd>unknown: 3 predictions (recorded before batchrun kept the API)</dd></dl>"
    ) in page
    assert "written 2024-05-06 07:08:09 UTC by batchrun" in page
    assert (
        '<li><span class="badge failed">failed</span> <a href="#k-b">b</a> flux (n: 2): boom</li>'
    ) in page
    assert [row["cells"] for row in grids(page)[0]["rows"]] == [
        [["succeeded flux/a-0.png 1.25s"]],
        [["failed failed boom 0.50s"]],
        [["inflight processing not finished when the manifest was read"]],
    ]


def test_hostile_text_is_escaped_everywhere(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    records = [
        rec("a", vars={"subject": evil, "n": 1}, output=f"</pre>{evil}"),
        rec("b", "failed", vars={"subject": "ok", "n": 2}, error=evil, input={"prompt": evil}),
        rec("c", vars={"subject": "ok", "n": 1}, output={"html": evil}),
    ]
    page = build_report(write_run(tmp_path, records), now=NOW)
    assert page.count("<script") == 1  # the page's own check script, and nothing else
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert f'<th scope="row">{escaped}</th>' in page
    assert f'<pre class="text">&lt;/pre&gt;{escaped}</pre>' in page
    assert f'<pre class="error">{escaped}</pre>' in page
    assert '<pre class="text json">{&quot;html&quot;: &quot;&lt;script&gt;' in page
    assert 'title="key b · failed\n{&quot;prompt&quot;: &quot;&lt;script&gt;' in page


def test_outputs_text_json_missing_and_no_output(tmp_path: Path) -> None:
    records = [
        rec("a", vars={"n": 1}, output="Once upon a time"),
        rec("b", vars={"n": 2}, output={"score": 0.5, "labels": ["cat"]}),
        rec("c", vars={"n": 3}, output=42),
        rec("d", vars={"n": 4}, output="https://x/y.png", missing=("https://x/y.png",)),
        rec("e", vars={"n": 5}, output=None),
        rec("f", vars={"n": 6}, output="x" * 2005),
    ]
    page = build_report(write_run(tmp_path, records), now=NOW)
    cells = [row["cells"] for row in grids(page)[0]["rows"]]
    assert cells == [
        [["succeeded Once upon a time"]],
        [['succeeded {"score": 0.5, "labels": ["cat"]}']],
        [["succeeded 42"]],
        [["succeeded 1 file not downloaded"]],
        [["succeeded no output"]],
        [["succeeded " + "x" * 2000 + "… (5 more characters)"]],
    ]
    assert "<dd>0 (0 B), 1 not downloaded</dd>" in page


def test_repeats_stack_in_one_cell_in_repeat_order(tmp_path: Path) -> None:
    records = [
        rec(f"k{n}{r}", vars={"n": n}, repeat=r, output=f"{n}/{r}") for n in (1, 2) for r in (1, 0)
    ]
    page = build_report(write_run(tmp_path, records), now=NOW)
    assert [row["cells"] for row in grids(page)[0]["rows"]] == [
        [["succeeded 1/0 repeat 0", "succeeded 1/1 repeat 1"]],
        [["succeeded 2/0 repeat 0", "succeeded 2/1 repeat 1"]],
    ]


def test_jobs_side_by_side_for_a_dataset(tmp_path: Path) -> None:
    records = [
        rec(f"{job}{n}", job=job, vars={"row": {"prompt": f"p{n}", "id": n}}, output=job)
        for n in (1, 2)
        for job in ("schnell", "pinned")
    ]
    page = build_report(write_run(tmp_path, records), now=NOW)
    assert grids(page) == [
        {
            "title": "",
            "head": ["job → row ↓", "schnell", "pinned"],
            "rows": [
                {
                    "head": "prompt: p1 · id: 1",
                    "cells": [["succeeded schnell"], ["succeeded pinned"]],
                },
                {
                    "head": "prompt: p2 · id: 2",
                    "cells": [["succeeded schnell"], ["succeeded pinned"]],
                },
            ],
        }
    ]
    assert "<tr><th>schnell</th><td>2</td><td>2</td></tr>" in page


def test_image_paths_are_relative_to_where_the_page_is_written(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "sweep one"
    run.mkdir(parents=True)
    records = [image(run, "a", "flux/a red fox#1?.png", vars={"n": 1})]
    write_run(run, records)
    page = build_report(run, dest=tmp_path / "pages" / "r.html", now=NOW)
    src = "../runs/sweep%20one/flux/a%20red%20fox%231%3F.png"
    assert f'<a href="{src}"><img src="{src}" alt="a red fox#1?.png" loading="lazy"></a>' in page
    assert relative_href(run, run)("x:y/z.png") == "x%3Ay/z.png"  # never a scheme


def test_limits_cut_rows_columns_stacks_and_sections_and_say_so(tmp_path: Path) -> None:
    records = [
        rec(f"k{s}{r}{c}{p}", vars={"s": s, "r": r, "c": c}, repeat=p, output="o")
        for s in (1, 2)
        for r in range(4)
        for c in range(3)
        for p in range(2)
    ]
    run = write_run(tmp_path, records)
    limits = Limits(items=7, rows=3, cols=2, stack=1)
    page = build_report(run, rows="r", cols="c", limits=limits, now=NOW)
    sections = grids(page)
    assert [s["title"] for s in sections] == ["s 1 24 predictions"]
    assert sections[0]["head"] == ["c → r ↓", "0", "1"]
    assert [row["head"] for row in sections[0]["rows"]] == ["0", "1", "2"]
    assert '<p class="limit">Not shown: 1 more rows, 1 more columns, 6 more repeats;' in page
    assert (
        '<p class="limit">This page shows 6 of 48 predictions; 1 more section is left out: '
        "change --rows/--cols, or report a smaller run.</p>"
    ) in page


def test_shards_are_read_together(tmp_path: Path) -> None:
    for index, key in ((1, "a"), (2, "b")):
        header = new_header(
            spec_path=tmp_path / "gone.yaml", spec_sha256="ab" * 32, name="sweep", shard=(index, 2)
        )
        path = tmp_path / f"manifest.shard-{index}-of-2.jsonl"
        writer = ManifestWriter.open(path, header, load_index(tmp_path))
        writer.append(rec(key, vars={"n": index}, output=f"from shard {index}"))
        writer.close()
    page = build_report(tmp_path, now=NOW)
    assert [row["cells"] for row in grids(page)[0]["rows"]] == [
        [["succeeded from shard 1"]],
        [["succeeded from shard 2"]],
    ]


def test_job_can_be_chosen_as_an_axis(tmp_path: Path) -> None:
    records = [
        rec(f"{j}{n}", job=j, vars={"n": n}, output=f"{j}{n}") for j in ("x", "y") for n in (1, 2)
    ]
    page = build_report(write_run(tmp_path, records), rows="job", cols="n", now=NOW)
    assert grids(page) == [
        {
            "title": "",
            "head": ["n → job ↓", "1", "2"],
            "rows": [
                {"head": "x", "cells": [["succeeded x1"], ["succeeded x2"]]},
                {"head": "y", "cells": [["succeeded y1"], ["succeeded y2"]]},
            ],
        }
    ]


def test_an_empty_run_says_so(tmp_path: Path) -> None:
    page = build_report(write_run(tmp_path, []), now=NOW)
    assert '<p class="note">No predictions in this run yet.</p>' in page
    assert '<li class="chip total"><b>0</b> predictions</li>' in page


# --- the command ----------------------------------------------------------------------------


def test_command_writes_the_report_and_prints_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", sweep_records(tmp_path / "run"))
    args = ReportArgs(target=str(run))
    assert report_command.main(args) == 0
    assert capsys.readouterr().out == f"{run / 'report.html'}\n"
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert [s["title"] for s in grids(page)] == ["seed 1 6 predictions", "seed 2 6 predictions"]
    # Beside the page, the table it read, kept on disk for the next reader (docs/manifest.md).
    kept = [".batchrun-table.bin", "flux", "manifest.jsonl", "report.html"]
    assert sorted(p.name for p in run.iterdir()) == kept


def test_command_output_option_and_usage_error_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", sweep_records(tmp_path / "run"))
    out = tmp_path / "elsewhere.html"
    # Linked, not embedded (--embed-limit 0): addresses relative to where the page is written.
    argv = ["report", str(run), "--cols", "seed", "--output", str(out), "--embed-limit", "0"]
    assert cli_main(argv) == 0
    assert capsys.readouterr().out == f"{out}\n"
    page = out.read_text(encoding="utf-8")
    assert 'src="run/flux/pencil%20sketch/k03-0.png"' in page
    assert 'src="flux/' not in page
    assert [s["title"] for s in grids(page)] == [
        "style watercolor 4 predictions",
        "style pencil sketch 4 predictions",
        "style pixel art 4 predictions",
    ]
    assert cli_main(["report", str(run), "--rows", "colour"]) == 2
    assert capsys.readouterr().err == (
        "batchrun: --rows colour: no such variable in this run; "
        "it has: subject, style, seed, size, job\n"
    )
