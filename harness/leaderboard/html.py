"""``results/index.html``: the leaderboard as one self-contained web page.

The same rows, comparisons and plots as the markdown tables, in one file with no network asset:
inline CSS, a few lines of inline JavaScript that sort a table by the clicked column (numbers by
value, — last), the plots as base64 PNG with their captions, the detail sections, the metric and
CI signatures, and each run's device, commit and date. Deterministic: the same sources give the
same bytes. Rendering only reads what it is given.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

from harness.leaderboard.board import (
    DETAIL_COLUMNS,
    RECOGNITION_COLUMNS,
    TRANSLATION_COLUMNS,
    extra_figures,
    headline_rows,
    matrix_table,
    methods_of,
    signatures,
    unavailable_notes,
)
from harness.leaderboard.plots import CAPTIONS, PLOTS
from harness.leaderboard.render import KERNEL_COLUMNS, METHOD_COLUMNS, MISSING_MD, Column
from harness.leaderboard.runs import run_label
from harness.leaderboard.stats import Comparison
from harness.leaderboard.values import finite

__all__ = ["INDEX_PAGE", "render_page"]

INDEX_PAGE = "index.html"

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1400px;padding:1rem 2rem;color:#1b1f24;background:#fff}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de}
nav a{margin-right:1rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:.25rem .55rem}
th{background:#f3f5f7;position:sticky;top:0}
table.sortable th{cursor:pointer}table.sortable th:after{content:" \\2195";color:#8c959f}
th[data-dir=asc]:after{content:" \\2191"}th[data-dir=desc]:after{content:" \\2193"}
td+td{white-space:nowrap}td.n{text-align:right}tr:nth-child(even) td{background:#fafbfc}
td.sig{font-weight:600;background:#e6f4ea!important}
figure{margin:1rem 0 2rem}figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{color:#57606a;max-width:60rem}
code{font-size:12px;background:#f3f5f7;padding:0 .2rem}.note{color:#57606a;max-width:70rem}
"""

_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.dataset.dir !== "asc";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? "asc" : "desc";
      var body = table.tBodies[0];
      var key = function (row) {
        var cell = row.cells[col];
        return cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _sort_value(value: Any) -> str:
    """The number a cell sorts by (the first element of a combined cell); '' when missing."""
    if isinstance(value, tuple):
        value = value[0] if value[0] is not None else (value[1] if len(value) > 1 else None)
    return format(value, ".10g") if finite(value) else ""


def _table(columns: Sequence[Column], rows: Sequence[dict[str, Any]], tid: str = "") -> str:
    head = "".join(f"<th>{_e(c.name)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c.name)
            missing = value is None or value == ""
            text = MISSING_MD if missing else (c.fmt(value) if c.numeric else str(value))
            if c.numeric:
                cells.append(f'<td class="n" data-v="{_sort_value(value)}">{_e(text)}</td>')
            else:
                cells.append(f"<td>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{tid}"' if tid else ""
    return (f'<table class="sortable"{ident}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _matrix(comp: Comparison) -> str:
    header, body = matrix_table(comp)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    rows = []
    for cells in body:
        tds = [f"<td>{_e(cells[0])}</td>", f'<td class="n">{_e(cells[1])}</td>']
        for cell in cells[2:]:
            bold = cell.startswith("**")
            tds.append(f'<td class="n{" sig" if bold else ""}">{_e(cell.strip("*"))}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return (f"<h3>{_e(comp.title)}</h3><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            f'<p class="note">Signature: <code>{_e(comp.signature)}</code></p>')


def _hardware(env: dict[str, Any]) -> str:
    """The GPU's name, else the CPU's name with its family / model and ISA where recorded."""
    gpu = env.get("gpu")
    if isinstance(gpu, dict) and gpu.get("name"):
        return str(gpu["name"])
    detail = ", ".join(str(env[k]) for k in ("cpu_id", "cpu_capability") if env.get(k))
    cpu = str(env.get("cpu") or "")
    return f"{cpu} ({detail})" if detail else cpu


def _runs_table(rows: Sequence[dict[str, Any]]) -> str:
    columns = [Column("run"), Column("device"), Column("hardware"), Column("commit"),
               Column("date"), Column("source")]
    items = []
    for row in rows:
        env = row["_run"].get("environment") or {}
        items.append({"run": run_label(row["_run"]), "device": row["device"],
                      "hardware": _hardware(env), "commit": row["commit"],
                      "date": row["date"], "source": f"sources/runs/{row['_source']}"})
    return _table(columns, items, "runs")


def render_page(rows: Sequence[dict[str, Any]], comparisons: Sequence[Comparison],
                kernel_rows: Sequence[dict[str, Any]], method_rows: Sequence[dict[str, Any]],
                files: dict[str, str | bytes | None]) -> str:
    """The page (UTF-8 text); ``files`` holds the PNG bytes of the plots by file name."""
    nav, parts = [], []

    def section(ident: str, title: str, body: str) -> None:
        nav.append(f'<a href="#{ident}">{_e(title)}</a>')
        parts.append(f'<h2 id="{ident}">{_e(title)}</h2>{body}')

    for task, columns in (("translation", TRANSLATION_COLUMNS),
                          ("recognition", RECOGNITION_COLUMNS)):
        table_rows = headline_rows(rows, task)
        if table_rows:
            section(task, task.capitalize(), _table(columns, table_rows, f"table-{task}"))
    if comparisons:
        section("significance", "Pairwise significance",
                '<p class="note">sacrebleu\'s paired bootstrap resampling test (1,000 resamples, '
                "seed 12345) on the per-sample outputs: row A, column B is the p-value of A and B "
                "scoring this differently by chance; highlighted: p ≤ 0.05.</p>"
                + "".join(_matrix(c) for c in comparisons))
    figures = [name for name in PLOTS if isinstance(files.get(name), bytes)]
    if figures:
        section("plots", "Plots", "".join(
            f'<figure><img alt="{_e(name)}" src="data:image/png;base64,'
            f'{base64.b64encode(files[name]).decode("ascii")}">'  # type: ignore[arg-type]
            f"<figcaption>{_e(CAPTIONS[name])}</figcaption></figure>" for name in figures))
    if rows:
        details = []
        for method, members in methods_of(rows).items():
            details.append(f"<h3>{_e(method)}</h3>" + _table(DETAIL_COLUMNS, members))
            extras = [(m["run"], extra_figures(m)) for m in members]
            items = "".join(f"<li>{_e(label)}: {_e(text)}</li>" for label, text in extras if text)
            if items:
                details.append(f"<p>Method-specific figures (run JSON <code>extra</code>):</p>"
                               f"<ul>{items}</ul>")
            notes = unavailable_notes(members)
            if notes:
                details.append("<p>Unavailable figures (shown as —) and why:</p><ul>"
                               + "".join(f"<li>{_e(n[2:].replace('`', ''))}</li>" for n in notes)
                               + "</ul>")
        section("details", "Details per method", "".join(details))
        section("runs", "Runs: device, commit, date", _runs_table(rows))
        section("signatures", "Metric signatures", "<ul>" + "".join(
            f"<li><code>{_e(s)}</code></li>" for s in signatures(rows)) + "</ul>")
    if kernel_rows:
        section("kernels", "Kernel benchmarks", _table(KERNEL_COLUMNS, kernel_rows))
    if method_rows:
        section("methods", "End-to-end method benchmarks", _table(METHOD_COLUMNS, method_rows))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>SignBench leaderboard</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>SignBench leaderboard</h1>"
        '<p class="note">Generated by <code>signbench leaderboard</code> from '
        "<code>results/sources/</code>; do not edit by hand. Scores ×100; ± is the half-width "
        "of sacrebleu's 95 % bootstrap CI (1,000 resamples, seed 12345). Click a column header "
        "to sort. Columns are explained in README's “Reading the results”.</p>"
        f"<nav>{''.join(nav)}</nav>{''.join(parts)}"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
