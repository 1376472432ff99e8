"""The report's inline CSS and its one script (see `batchrun.report.html` for what it does)."""

from __future__ import annotations

STYLE = """\
:root { --thumb: 184px; --ink: #1c2230; --soft: #5c6575; --line: #e1e4ea; --paper: #f5f6f8;
  color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--paper); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 20px 28px 16px; }
h1 { margin: 0; font-size: 22px; font-weight: 700; }
h1 .path { margin-left: 8px; color: var(--soft); font: 13px ui-monospace, Menlo, monospace; }
.meta { margin: 4px 0 0; color: var(--soft); font-size: 12.5px; }
.chips { display: flex; flex-wrap: wrap; gap: 8px; margin: 14px 0 12px; padding: 0;
  list-style: none; }
.chip { padding: 3px 12px; border-radius: 999px; color: var(--tone, var(--ink));
  background: var(--tint, #eceef2); }
.chip b { font-variant-numeric: tabular-nums; }
.succeeded { --tone: #146c36; --tint: #e3f4e9; }
.failed, .error, .aborted { --tone: #b3261e; --tint: #fdeceb; }
.canceled { --tone: #8a5300; --tint: #fff2dc; }
.inflight { --tone: #2050b8; --tint: #e7eefc; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
.facts dt { color: var(--soft); }
.facts dd { margin: 0; font-variant-numeric: tabular-nums; }
table.jobs { border-collapse: collapse; margin: 0 0 12px; font-variant-numeric: tabular-nums; }
table.jobs th, table.jobs td { padding: 2px 14px 2px 0; text-align: right; }
table.jobs th:first-child { text-align: left; }
table.jobs thead th { color: var(--soft); font-weight: 500; }
.layout { margin: 12px 0 0; }
.hint { color: var(--soft); font-size: 12.5px; }
.limit { margin: 8px 0 0; padding: 6px 10px; border-radius: 6px; background: #fff6d6; }
.failures { margin: 12px 0 0; }
.failures summary { cursor: pointer; font-weight: 600; }
.failures ul { margin: 6px 0 0; padding-left: 18px; }
.failures a { color: inherit; font-family: ui-monospace, Menlo, monospace; }
main { padding: 4px 28px 48px; }
h2 { margin: 28px 0 10px; font-size: 16px; font-weight: 600; }
h2 .var { color: var(--soft); font-weight: 500; }
h2 .count { margin-left: 6px; padding: 1px 8px; border-radius: 999px; background: #e6e8ed;
  color: var(--soft); font-size: 12px; font-weight: 500; }
.scroll { overflow-x: auto; padding-bottom: 4px; }
table.grid { border-collapse: separate; border-spacing: 10px; margin: -10px; }
/* Labels break between words only (a word too long for the column is cut off by the cell, not
   broken letter by letter), and the row labels' column keeps a readable width however many
   columns the grid has: the grid scrolls sideways instead, the row labels staying in view. */
.grid th { padding: 0 2px; font-weight: 600; text-align: left; overflow-wrap: break-word;
  word-break: normal; hyphens: auto; }
.grid thead th { vertical-align: bottom; min-width: 6em; max-width: calc(var(--thumb) + 14px); }
.grid tbody th { min-width: 9em; max-width: 16em; padding: 8px 6px 0 2px; vertical-align: top;
  position: sticky; left: 0; z-index: 1; background: var(--paper); }
.grid th.corner { color: var(--soft); font-weight: 400; font-size: 12.5px; }
.grid th.corner span { display: block; }
.grid td { min-width: calc(var(--thumb) + 14px); padding: 6px; vertical-align: top;
  background: #fff; border-radius: 10px; box-shadow: 0 0 0 1px var(--line),
  0 1px 2px rgba(20, 30, 50, .05); }
.grid td.empty { background: repeating-linear-gradient(135deg, transparent 0 7px,
  #eceef2 7px 8px); box-shadow: 0 0 0 1px var(--line) inset; }
.grid td.text { min-width: 28em; }
.grid td.filtered { opacity: .25; }
.stack { display: flex; flex-wrap: wrap; gap: 8px; }
.item { width: var(--thumb); margin: 0; }
.item.text { width: auto; min-width: 26em; max-width: 44em; flex: 1; }
.about { max-width: var(--thumb); margin-top: 4px; font-size: 12px; line-height: 1.35; }
td.text .about { max-width: 44em; }
.about p { margin: 0; overflow-wrap: break-word; }
.about .prompt { color: var(--ink); }
.about .vars { color: var(--soft); }
.about .vars i { font-style: normal; opacity: .75; }
form.filter { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center;
  margin: 10px 0 0; font-size: 12.5px; }
form.filter[hidden] { display: none; }
form.filter select { font: inherit; max-width: 16em; }
.item img, .item video { display: block; width: 100%; height: auto; border-radius: 6px;
  background: #eceef2; }
.item audio { width: 100%; }
figcaption { margin-top: 4px; color: var(--soft); font-size: 12px; }
.item.failed, .item.error, .item.aborted, .item.canceled, .item.inflight { padding: 8px;
  border-radius: 6px; background: var(--tint); }
.badge { color: var(--tone); font-size: 11px; font-weight: 700; letter-spacing: .05em;
  text-transform: uppercase; }
pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere;
  font: 12.5px/1.45 ui-monospace, Menlo, Consolas, monospace; }
pre.text { max-height: 18em; overflow: auto; }
pre.error { margin-top: 4px; color: var(--tone); }
.note, .missing { margin: 0; color: var(--soft); font-style: italic; }
.missing { color: #8a5300; }
a.file { overflow-wrap: anywhere; }
"""

# Runs only for `report.html#check`; see batchrun.report.html.
CHECK_SCRIPT = """\
(function () {
  if (location.hash.split("&")[0] !== "#check") return;
  function settle() {
    var images = document.images, loaded = 0, broken = 0;
    for (var i = 0; i < images.length; i++) {
      if (!images[i].complete) { setTimeout(settle, 20); return; }
      if (images[i].naturalWidth > 0) loaded++; else broken++;
    }
    var shapes = [], tables = document.querySelectorAll("table.grid");
    for (var t = 0; t < tables.length; t++) {
      var tops = {}, lefts = {}, cells = tables[t].querySelectorAll("tbody td");
      for (var c = 0; c < cells.length; c++) {
        var box = cells[c].getBoundingClientRect();
        if (box.width > 0 && box.height > 0) {
          tops[Math.round(box.top)] = 1;
          lefts[Math.round(box.left)] = 1;
        }
      }
      shapes.push(Object.keys(tops).length + "x" + Object.keys(lefts).length);
    }
    document.body.setAttribute("data-images-loaded", loaded);
    document.body.setAttribute("data-images-broken", broken);
    document.body.setAttribute("data-grid", shapes.join(" "));
    // How labels were drawn: the narrowest label cell, and the most lines one label took.
    var heads = document.querySelectorAll("table.grid th"), narrowest = 1e9, lines = 0;
    for (var h = 0; h < heads.length; h++) {
      var hb = heads[h].getBoundingClientRect(), range = document.createRange(), rows = {};
      if (hb.width > 0) narrowest = Math.min(narrowest, Math.round(hb.width));
      range.selectNodeContents(heads[h]);
      var boxes = range.getClientRects();  // one box per line of text, or more
      for (var b = 0; b < boxes.length; b++) rows[Math.round(boxes[b].top)] = 1;
      lines = Math.max(lines, Object.keys(rows).length);
    }
    document.body.setAttribute("data-label-width", heads.length ? narrowest : 0);
    document.body.setAttribute("data-label-lines", lines);
  }
  addEventListener("load", function () {
    for (var i = 0; i < document.images.length; i++) document.images[i].loading = "eager";
    settle();
  });
})();
"""

# The filter bar (batchrun.report.filters): shown once this script runs, it hides the
# predictions that do not match. `#...&NAME=VALUE` in the address presets a menu (the browser
# test uses it; a reader can bookmark a filtered view).
FILTER_SCRIPT = """\
(function () {
  var form = document.querySelector("form.filter");
  if (!form) return;
  form.hidden = false;
  var menus = form.querySelectorAll("select");
  function apply() {
    var want = {}, shown = 0;
    for (var m = 0; m < menus.length; m++) if (menus[m].value) want[menus[m].name] = menus[m].value;
    var cells = document.querySelectorAll("table.grid td:not(.empty)");
    for (var c = 0; c < cells.length; c++) {
      var match = true, any = false;
      for (var name in want) {
        if (name === "status") continue;
        if (cells[c].getAttribute("data-" + name) !== want[name]) match = false;
      }
      var items = cells[c].querySelectorAll("figure");
      for (var i = 0; i < items.length; i++) {
        var show = match && (!want.status || items[i].getAttribute("data-status") === want.status);
        items[i].hidden = !show;
        if (show) { any = true; shown++; }
      }
      cells[c].classList.toggle("filtered", !any);
    }
    form.querySelector("output").textContent = shown + " shown";
    document.body.setAttribute("data-filter-shown", shown);
  }
  var preset = location.hash.slice(1).split("&").slice(1);
  for (var p = 0; p < preset.length; p++) {
    var pair = preset[p].split("="), menu = form.querySelector('select[name="' + pair[0] + '"]');
    if (menu) menu.value = decodeURIComponent(pair[1] || "");
  }
  form.addEventListener("change", apply);
  apply();
})();
"""
