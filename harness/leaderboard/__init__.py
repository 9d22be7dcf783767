"""Rebuild ``results/`` — leaderboard tables (markdown + CSV) and plots — from committed JSON.

Every number under ``results/`` must be traceable to a JSON committed beside it. So the inputs
(run JSONs, ``pytest benchmarks/ --benchmark-json`` files) are first validated and copied into
``results/sources/runs/<run file name>`` and ``results/sources/benchmarks/<name>.json``; then every
table and plot is built from *all* JSONs under ``results/sources/`` — the ones committed earlier
plus the new ones (a new file replaces one of the same name, so re-running a configuration updates
its row). Output is deterministic: the same sources give byte-identical tables (no "now"
timestamps; dates come from the JSONs) and plots, and every file is written atomically. Building
only reads the sources: a figure a run JSON lacks is shown as missing, never computed here (older
runs got their shuffled-reference control once, from :mod:`harness.leaderboard.migrate`).

Files written (each only when it has data; a stale one is removed otherwise):

* ``leaderboard.md`` / ``leaderboard.csv`` — one row per run: accuracy next to efficiency.
* ``kernels.md`` / ``kernels.csv`` — kernel micro-benchmarks with speedup vs the eager backend.
* ``methods.md`` / ``methods.csv`` — end-to-end method benchmarks (``extra_info.kind == "method"``).
* ``accuracy_vs_latency.png`` and ``kernel_speedup.png``.

Modules: :mod:`~harness.leaderboard.sources` (finding, checking and copying the inputs),
:mod:`~harness.leaderboard.runs` (run rows), :mod:`~harness.leaderboard.kernels` (benchmark rows),
:mod:`~harness.leaderboard.render` (markdown / CSV), :mod:`~harness.leaderboard.plots` (PNG),
:mod:`~harness.leaderboard.migrate` (the one-time control migration). Schema and layout:
``docs/results-schema.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.files import atomic_write_bytes, atomic_write_text
from harness.leaderboard.kernels import BASELINE_BACKENDS, kernel_rows, method_rows
from harness.leaderboard.plots import ACCURACY_PLOT as ACCURACY_PLOT
from harness.leaderboard.plots import SPEEDUP_PLOT as SPEEDUP_PLOT
from harness.leaderboard.plots import plot_accuracy_vs_latency as plot_accuracy_vs_latency
from harness.leaderboard.plots import plot_kernel_speedup as plot_kernel_speedup
from harness.leaderboard.render import (
    KERNEL_COLUMNS,
    LEADERBOARD_COLUMNS,
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
from harness.leaderboard.render import render_leaderboard as render_leaderboard
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
)
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

LEADERBOARD_FILES = ("leaderboard.md", "leaderboard.csv")
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
    """Import ``runs`` and ``benchmarks`` into ``out_dir/sources/`` (see :func:`import_sources`),
    then regenerate every table and plot in ``out_dir`` from all sources there.

    Raises :class:`~harness.results.RunFileError` naming the file for a bad input (then nothing is
    written) or a bad committed source (then no table or plot is written).
    """
    out = Path(out_dir)
    sources = import_sources(runs, benchmarks, out)
    run_data = [(p, load_run(p)) for p in sources.runs]
    bench_data = [(p, load_benchmark_file(p)) for p in sources.benchmarks]

    outputs: dict[str, str | bytes | None] = {}
    lb_rows = leaderboard_rows(run_data)
    if lb_rows:
        outputs["leaderboard.md"], outputs["leaderboard.csv"] = render_leaderboard(lb_rows)
    k_rows = kernel_rows(bench_data)
    if k_rows:
        outputs["kernels.md"], outputs["kernels.csv"] = render_kernels(k_rows)
    m_rows = method_rows(bench_data)
    if m_rows:
        outputs["methods.md"], outputs["methods.csv"] = render_methods(m_rows)
    outputs[ACCURACY_PLOT] = plot_accuracy_vs_latency(lb_rows) if lb_rows else None
    outputs[SPEEDUP_PLOT] = plot_kernel_speedup(k_rows) if k_rows else None

    written: list[Path] = []
    removed: list[Path] = []
    for name in (*LEADERBOARD_FILES, *KERNEL_FILES, *METHOD_FILES, ACCURACY_PLOT, SPEEDUP_PLOT):
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
        runs=sources.runs,
        benchmarks=sources.benchmarks,
        copied=sources.copied,
        written=tuple(written),
        removed=tuple(removed),
    )
