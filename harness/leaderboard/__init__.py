"""Rebuild ``results/`` — leaderboard tables, significance, plots and a web page — from JSON.

Every number under ``results/`` must be traceable to a JSON committed beside it. So the inputs
(run JSONs with their per-sample outputs JSONL, ``pytest benchmarks/ --benchmark-json`` files)
are validated, then copied into ``results/sources/runs/`` and ``results/sources/benchmarks/``;
every output is built from *all* sources there (a new file replaces one of the same name, so
re-running a configuration updates its row). Nothing is written until every input and every
committed source has been read and checked and every output rendered, so a bad input leaves
``results/`` as it was. Output is deterministic (no "now" timestamps; fixed bootstrap seeds): the
same sources give byte-identical files, each written atomically. Scores, controls and efficiency
are read from the run JSONs; CIs and paired tests come from the committed outputs JSONL
(:mod:`~harness.leaderboard.stats`, through sacrebleu).

Files written (each only when it has data; a stale one is removed otherwise):

* ``leaderboard.md`` — headline tables per task, detail sections per method;
  ``leaderboard-full.csv`` — every figure of every run; ``significance.md`` — p-value matrices.
* ``index.html`` — the same as one self-contained, sortable page with the plots.
* ``kernels.md`` / ``.csv``, ``methods.md`` / ``.csv`` — kernel and end-to-end benchmarks.
* ``accuracy_vs_latency.png``, ``energy_per_video.png`` (when measured), ``kernel_speedup.png``.

Modules: ``sources`` (inputs), ``runs`` / ``kernels`` (rows), ``stats`` (CIs, significance),
``board`` / ``render`` (markdown, CSV), ``plots`` (PNG), ``html`` (the page), ``migrate`` (the
one-time control migration). Schema and layout: ``docs/results-schema.md``.
"""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.files import atomic_write_bytes, atomic_write_text
from harness.leaderboard.board import LEADERBOARD_COLUMNS, render_leaderboard, render_significance
from harness.leaderboard.html import INDEX_PAGE, render_page
from harness.leaderboard.kernels import BASELINE_BACKENDS, kernel_rows, method_rows
from harness.leaderboard.plots import ACCURACY_PLOT as ACCURACY_PLOT
from harness.leaderboard.plots import ENERGY_PLOT as ENERGY_PLOT
from harness.leaderboard.plots import PLOTS as PLOTS
from harness.leaderboard.plots import SPEEDUP_PLOT as SPEEDUP_PLOT
from harness.leaderboard.plots import plot_accuracy_vs_latency as plot_accuracy_vs_latency
from harness.leaderboard.plots import plot_energy as plot_energy
from harness.leaderboard.plots import plot_kernel_speedup as plot_kernel_speedup
from harness.leaderboard.render import (
    KERNEL_COLUMNS,
    METHOD_COLUMNS,
    render_kernels,
    render_methods,
)
from harness.leaderboard.render import MISSING_MD as MISSING_MD
from harness.leaderboard.render import Column as Column
from harness.leaderboard.render import fmt_csv as fmt_csv
from harness.leaderboard.render import fmt_p as fmt_p
from harness.leaderboard.render import fmt_score as fmt_score
from harness.leaderboard.render import fmt_sig as fmt_sig
from harness.leaderboard.render import render_csv as render_csv
from harness.leaderboard.render import render_markdown as render_markdown
from harness.leaderboard.runs import leaderboard_rows
from harness.leaderboard.sources import (
    BENCH_SOURCES,
    RUN_SOURCES,
    Sources,
    collect_inputs,
    discover_runs,
    import_sources,
    load_benchmark_file,
    plan_import,
    read_outputs,
)
from harness.leaderboard.stats import run_intervals, significance
from harness.results import load_run

__all__ = [
    "BASELINE_BACKENDS",
    "BENCH_SOURCES",
    "KERNEL_COLUMNS",
    "LEADERBOARD_COLUMNS",
    "METHOD_COLUMNS",
    "RUN_SOURCES",
    "LeaderboardReport",
    "Sources",
    "build_leaderboard",
    "collect_inputs",
    "discover_runs",
    "import_sources",
    "kernel_rows",
    "leaderboard_rows",
    "load_benchmark_file",
    "method_rows",
]
# The names imported ``as`` themselves above (plots, cell formats, renderers) stay importable
# from here, as before the package split, without being part of ``__all__``.

LEADERBOARD_FILES = ("leaderboard.md", "leaderboard-full.csv", "significance.md", INDEX_PAGE)
#: files earlier versions wrote that are removed at a rebuild
RETIRED_FILES = ("leaderboard.csv",)
KERNEL_FILES = ("kernels.md", "kernels.csv")
METHOD_FILES = ("methods.md", "methods.csv")


@dataclass(frozen=True)
class LeaderboardReport:
    """What :func:`build_leaderboard` did."""

    out_dir: Path
    runs: tuple[Path, ...]  # run sources the tables were built from
    benchmarks: tuple[Path, ...]  # benchmark sources the tables were built from
    copied: tuple[Path, ...]  # sources copied in by this call
    written: tuple[Path, ...]  # tables and plots written
    removed: tuple[Path, ...]  # stale tables / plots removed for lack of data

    def summary(self) -> str:
        lines = [
            f"leaderboard: {len(self.runs)} run(s), {len(self.benchmarks)} benchmark file(s) "
            f"in {self.out_dir / 'sources'}; {len(self.copied)} source(s) copied",
        ]
        lines += [f"  wrote   {p}" for p in self.written]
        lines += [f"  removed {p} (no data)" for p in self.removed]
        return "\n".join(lines)


def build_leaderboard(
    runs: Sequence[str | Path], benchmarks: Sequence[str | Path], out_dir: str | Path
) -> LeaderboardReport:
    """Import ``runs`` and ``benchmarks`` into ``out_dir/sources/`` (see :func:`plan_import`),
    then regenerate every table, plot and the page in ``out_dir`` from all sources there.

    Everything is read, validated and rendered before the first write: a bad input (run JSON,
    its outputs JSONL, benchmark JSON) or a bad committed source raises
    :class:`~harness.results.RunFileError` naming the file and leaves ``out_dir`` as it was.
    Then the sources and the outputs are written, each file atomically.
    """
    out = Path(out_dir)
    plan = plan_import(runs, benchmarks, out)
    run_data = [(p, load_run(plan.origin[p])) for p in plan.runs]
    bench_data = [(p, load_benchmark_file(plan.origin[p])) for p in plan.benchmarks]
    outputs_of = {p.name: read_outputs(plan.origin[p], run) for p, run in run_data}
    intervals, ci_reasons = {}, {}
    for p, run in run_data:
        intervals[p.name], ci_reasons[p.name] = run_intervals(run, outputs_of[p.name])

    outputs: dict[str, str | bytes | None] = {}
    lb_rows = leaderboard_rows(run_data, intervals)
    for row in lb_rows:
        row["_ci_reason"] = ci_reasons[row["_source"]]
    comparisons, not_compared = significance(lb_rows, outputs_of)
    if lb_rows:
        outputs["leaderboard.md"], outputs["leaderboard-full.csv"] = render_leaderboard(lb_rows)
    if comparisons:
        outputs["significance.md"] = render_significance(comparisons, not_compared)
    k_rows = kernel_rows(bench_data)
    if k_rows:
        outputs["kernels.md"], outputs["kernels.csv"] = render_kernels(k_rows)
    m_rows = method_rows(bench_data)
    if m_rows:
        outputs["methods.md"], outputs["methods.csv"] = render_methods(m_rows)
    outputs[ACCURACY_PLOT] = plot_accuracy_vs_latency(lb_rows) if lb_rows else None
    outputs[ENERGY_PLOT] = plot_energy(lb_rows) if lb_rows else None
    outputs[SPEEDUP_PLOT] = plot_kernel_speedup(k_rows) if k_rows else None
    if lb_rows or k_rows or m_rows:
        outputs[INDEX_PAGE] = render_page(lb_rows, comparisons, k_rows, m_rows, outputs)

    copied = plan.apply()
    written: list[Path] = []
    removed: list[Path] = []
    for name in (*LEADERBOARD_FILES, *KERNEL_FILES, *METHOD_FILES, *PLOTS, *RETIRED_FILES):
        target = out / name
        content = outputs.get(name)
        if content is None:
            if target.exists():
                target.unlink()
                removed.append(target)
        elif isinstance(content, bytes):
            written.append(atomic_write_bytes(target, content))
        else:
            written.append(atomic_write_text(target, content))
    return LeaderboardReport(
        out_dir=out,
        runs=plan.runs,
        benchmarks=plan.benchmarks,
        copied=copied,
        written=tuple(written),
        removed=tuple(removed),
    )
