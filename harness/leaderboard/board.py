"""The run leaderboard: headline tables per task, detail sections per method, the full CSV,
and the p-value matrices of ``significance.md``.

Headline (one table per task; a row per method × dataset × language × split, ablations right
under their method): the headline score with its 95 % bootstrap CI, ROUGE-L, the
shuffled-reference control and its permutation p, latency p50, FPS, energy per video, peak
memory, parameters. Everything else — BLEU-1..3, p90, power, profile / backend / device, commit,
date, the method-specific figures (run JSON ``extra``) and why a cell is ``—`` — is in each
method's detail section and in ``leaderboard-full.csv``. Rendering only reads the rows (and
the comparisons of :mod:`harness.leaderboard.stats`). Columns: README "Reading the results".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.leaderboard.render import (
    Column,
    fmt_p,
    fmt_score,
    fmt_sig,
    generated,
    pipe_table,
    render_csv,
)
from harness.leaderboard.runs import EXTRA_SCORE_KEYS, TEXT_COLUMNS, run_label, score_sets
from harness.leaderboard.sources import RUN_SOURCES
from harness.leaderboard.stats import Comparison
from harness.leaderboard.values import finite

__all__ = [
    "DETAIL_COLUMNS",
    "EFFICIENCY_COLUMNS",
    "LEADERBOARD_COLUMNS",
    "RECOGNITION_COLUMNS",
    "TRANSLATION_COLUMNS",
    "fmt_ci",
    "headline_rows",
    "render_leaderboard",
    "render_significance",
]

#: every figure of a run, as ``leaderboard-full.csv`` holds it
LEADERBOARD_COLUMNS: tuple[Column, ...] = (
    *(Column(name) for name in TEXT_COLUMNS),
    Column("pretrained parts"),
    Column("BLEU-1", fmt_score, True),
    Column("BLEU-2", fmt_score, True),
    Column("BLEU-3", fmt_score, True),
    Column("BLEU-4", fmt_score, True),
    Column("BLEU-4 CI (±)", fmt_score, True),
    Column("ROUGE-L", fmt_score, True),
    Column("ROUGE-L CI (±)", fmt_score, True),
    Column("WER", fmt_score, True),
    Column("WER CI (±)", fmt_score, True),
    Column("distinct outputs"),
    Column("BLEU-4 shuffled refs", fmt_score, True),
    Column("WER shuffled refs", fmt_score, True),
    Column("p (permuted refs)", fmt_p, True),
    Column("latency p50 (ms)", fmt_sig, True),
    Column("latency p90 (ms)", fmt_sig, True),
    Column("FPS", fmt_sig, True),
    Column("GPU power (W)", fmt_sig, True),
    Column("energy/video (J)", fmt_sig, True),
    Column("peak GPU mem (MB)", fmt_sig, True),
    Column("params total (M)", fmt_sig, True),
    Column("params trainable (M)", fmt_sig, True),
    Column("commit"),
    Column("date"),
)


def fmt_ci(value: tuple[float, float | None]) -> str:
    """``score ± half-width`` (the half-width of sacrebleu's 95 % CI), or the score alone."""
    score, ci = value
    return fmt_score(score) if ci is None else f"{fmt_score(score)} ± {fmt_score(ci)}"


def _fmt_params(value: tuple[float | None, float | None]) -> str:
    trainable, total = value
    return f"{'—' if trainable is None else fmt_sig(trainable)} / " \
           f"{'—' if total is None else fmt_sig(total)}"


_KEYS = (Column("method"), Column("dataset"), Column("lang"), Column("split"))
_EFFICIENCY = (
    Column("latency p50 (ms)", fmt_sig, True),
    Column("FPS", fmt_sig, True),
    Column("energy/video (J)", fmt_sig, True),
    Column("peak GPU mem (MB)", fmt_sig, True),
    Column("params (M, trainable / total)", _fmt_params, True),
)
TRANSLATION_COLUMNS: tuple[Column, ...] = (
    *_KEYS,
    Column("BLEU-4 (95% CI)", fmt_ci, True),
    Column("ROUGE-L (95% CI)", fmt_ci, True),
    Column("BLEU-4 shuffled refs", fmt_score, True),
    Column("p (permuted refs)", fmt_p, True),
    *_EFFICIENCY,
)
RECOGNITION_COLUMNS: tuple[Column, ...] = (
    *_KEYS,
    Column("WER (95% CI)", fmt_ci, True),
    Column("WER shuffled refs", fmt_score, True),
    Column("p (permuted refs)", fmt_p, True),
    *_EFFICIENCY,
)
DETAIL_COLUMNS: tuple[Column, ...] = (
    Column("run"),
    Column("pretrained parts"),
    Column("BLEU-1", fmt_score, True),
    Column("BLEU-2", fmt_score, True),
    Column("BLEU-3", fmt_score, True),
    Column("distinct outputs"),
    Column("latency p90 (ms)", fmt_sig, True),
    Column("GPU power (W)", fmt_sig, True),
    Column("commit"),
    Column("date"),
)

#: efficiency key → the leaderboard columns it feeds (for listing why a cell is —)
EFFICIENCY_COLUMNS: dict[str, tuple[str, ...]] = {
    "latency_ms": ("latency p50 (ms)", "latency p90 (ms)"),
    "fps": ("FPS",),
    "gpu_power_w": ("GPU power (W)",),
    "energy_per_video_j": ("energy/video (J)",),
    "peak_memory_mb": ("peak GPU mem (MB)",),
    "params": ("params total (M)", "params trainable (M)"),
}

_INTRO = """\
Scores ×100. ± is the half-width of sacrebleu's 95 % bootstrap confidence interval (1,000
resamples of the test sentences, seed 12345; the signatures below). `p (permuted refs)`: the
permutation-test p-value of the score against its shuffled-reference control (a score no better
than its control does not come from the video; p ≤ 0.05: the outputs depend on their own
videos). Pairwise significance between methods: `significance.md`. Every column is explained
in README's "Reading the results"; — is a figure not measured on that run."""


def headline_rows(rows: Sequence[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """The rows of one task's headline table, with the combined cells it shows."""
    metric = "BLEU-4" if task == "translation" else "WER"
    out = []
    for row in rows:
        if row.get(metric) is None:
            continue
        cells = dict(row)
        if task == "translation":
            cells["BLEU-4 (95% CI)"] = (row["BLEU-4"], row["BLEU-4 CI (±)"])
            cells["ROUGE-L (95% CI)"] = (None if row["ROUGE-L"] is None else
                                         (row["ROUGE-L"], row["ROUGE-L CI (±)"]))
        else:
            cells["WER (95% CI)"] = (row["WER"], row["WER CI (±)"])
        cells["params (M, trainable / total)"] = (
            None if row["params total (M)"] is None and row["params trainable (M)"] is None
            else (row["params trainable (M)"], row["params total (M)"]))
        out.append(cells)
    return out


def signatures(rows: Sequence[dict[str, Any]]) -> list[str]:
    sigs: set[str] = set()
    for row in rows:
        for acc in score_sets(row["_run"]):
            for key, value in acc.items():
                if key.endswith("signature") and isinstance(value, str) and value.strip():
                    sigs.add(value.strip())
        sigs.update(row["_ci_signatures"])
    return sorted(sigs)


def unavailable_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """``- <columns>: <reason> — runs`` for each (figure, reason) pair behind a — cell, and why a
    score has no CI."""
    groups: dict[tuple[int, str, str], list[str]] = {}
    order = list(EFFICIENCY_COLUMNS)
    for row in rows:
        reasons = dict((row["_run"].get("efficiency") or {}).get("unavailable") or {})
        for key, reason in reasons.items():
            if key not in EFFICIENCY_COLUMNS:
                continue
            cols = EFFICIENCY_COLUMNS[key]
            if all(row.get(c) is not None for c in cols):
                continue  # measured after all: nothing is shown as —
            groups.setdefault((order.index(key), ", ".join(cols), str(reason)), []).append(
                run_label(row["_run"]))
        reason = row.get("_ci_reason")
        if reason is None and row.get("BLEU-4") is not None and row["BLEU-4 CI (±)"] is None:
            reason = "the outputs JSONL holds the run's glosses, not its translations"
        if reason:
            groups.setdefault((len(order), "BLEU-4 / ROUGE-L / WER 95% CI", reason), []).append(
                run_label(row["_run"]))
    lines = []
    for (_, label, reason), labels in sorted(groups.items()):
        runs = ", ".join(f"`{x}`" for x in sorted(set(labels)))
        lines.append(f"- {label}: {reason.strip()} — {runs}")
    return lines


def _flat_figures(obj: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, int | float]]:
    """Numeric scalars of a run's ``extra`` as dotted names (nested objects up to 3 levels;
    lists, strings and the other task's score sets — shown in the tables — are skipped)."""
    out: list[tuple[str, int | float]] = []
    if not isinstance(obj, dict) or depth > 2:
        return out
    for key in sorted(obj):
        value = obj[key]
        if depth == 0 and key in EXTRA_SCORE_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flat_figures(value, f"{name}.", depth + 1)
        elif finite(value) and not isinstance(value, bool):
            out.append((name, value))
    return out


def extra_figures(row: dict[str, Any]) -> str:
    """A run's method-specific figures (run JSON ``extra``) as ``name value, ...``."""
    return ", ".join(f"{name} {value if isinstance(value, int) else fmt_sig(value)}"
                     for name, value in _flat_figures(row["_run"].get("extra")))


def detail_label(row: dict[str, Any]) -> str:
    """``variant · dataset-lang / split · profile / backend / device`` of a detail row."""
    variant = row["_variant"] or "main"
    return (f"{variant} · {row['dataset']}-{row['lang']} / {row['split']} · "
            f"{row['profile']} / {row['backend']} / {row['device']}")


def methods_of(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by method (without variant), methods sorted, rows in variant order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["_base"], r["_variant"], r["dataset"], r["lang"],
                                           r["split"], r["profile"], r["backend"],
                                           r["device"], r["_source"])):
        grouped.setdefault(row["_base"], []).append({**row, "run": detail_label(row)})
    return dict(sorted(grouped.items()))


def _detail_sections(rows: Sequence[dict[str, Any]]) -> list[str]:
    parts: list[str] = []
    for method, members in methods_of(rows).items():
        parts += [f"### {method}", "", pipe_table(DETAIL_COLUMNS, members)]
        extras = [(m["run"], extra_figures(m)) for m in members]
        extras = [(label, text) for label, text in extras if text]
        if extras:
            parts += ["", "Method-specific figures (run JSON `extra`):", ""]
            parts += [f"- {label}: {text}" for label, text in extras]
        unavailable = unavailable_notes(members)
        if unavailable:
            parts += ["", "Unavailable figures (shown as —) and why:", "", *unavailable]
        parts.append("")
    return parts


def render_leaderboard(rows: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(markdown, full csv) for the run leaderboard."""
    parts = [generated(f"{RUN_SOURCES.as_posix()}/*.json"), "", "# SignBench leaderboard", "",
             _INTRO, ""]
    for task, columns in (("translation", TRANSLATION_COLUMNS),
                          ("recognition", RECOGNITION_COLUMNS)):
        table_rows = headline_rows(rows, task)
        if table_rows:
            parts += [f"## {task.capitalize()}", "", pipe_table(columns, table_rows), ""]
    sigs = signatures(rows)
    if sigs:
        parts += ["Metric signatures:", "", *(f"- `{s}`" for s in sigs), ""]
    parts += ["## Details per method", "",
              "BLEU-1…3, latency p90, GPU power, distinct outputs, commit and date of every run; "
              "all figures at full precision in `leaderboard-full.csv`.", ""]
    parts += _detail_sections(rows)
    md = "\n".join(parts).rstrip("\n") + "\n"
    return md, render_csv(LEADERBOARD_COLUMNS, rows)


def matrix_table(comp: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and body of one p-value matrix: a row per system (its score), a column per system;
    cell = p of the two differing by chance (bold when ≤ 0.05)."""
    name = {"bleu4": "BLEU-4", "rouge_l": "ROUGE-L", "wer": "WER"}[comp.metric]
    header = ["system", name, *comp.labels]
    body = []
    for i, label in enumerate(comp.labels):
        cells = []
        for j in range(len(comp.labels)):
            p = comp.p_values[i][j]
            cells.append("·" if p is None else (f"**{fmt_p(p)}**" if p <= 0.05 else fmt_p(p)))
        body.append([label, fmt_score(comp.scores[i]), *cells])
    return header, body


def render_significance(comparisons: Sequence[Comparison], notes: Sequence[str]) -> str:
    """``significance.md``: a p-value matrix per dataset / language / split / task."""
    from tabulate import tabulate

    parts = [generated(f"{RUN_SOURCES.as_posix()}/*.jsonl"), "",
             "# Pairwise significance", "",
             "sacrebleu's paired bootstrap resampling test (Koehn 2004; `sacrebleu.significance`, "
             "1,000 resamples, seed 12345) on the per-sample outputs of runs of the same split: "
             "the cell in row A, column B is the p-value of A and B scoring this differently by "
             "chance (**bold**: ≤ 0.05). `signbench compare RUN_A RUN_B ...` prints the same "
             "matrix, or the approximate-randomisation test with `--test ar`.", ""]
    for comp in comparisons:
        header, body = matrix_table(comp)
        parts += [f"## {comp.title}", "",
                  tabulate(body, headers=header, tablefmt="pipe", disable_numparse=True,
                           colalign=["left"] + ["right"] * (len(header) - 1)),
                  "", f"Signature: `{comp.signature}`", ""]
    if notes:
        parts += ["Not compared:", "", *notes]
    return "\n".join(parts).rstrip("\n") + "\n"
