"""Confidence intervals and pairwise significance of the runs in ``results/sources/``.

Both come from each run's committed per-sample outputs JSONL through
:mod:`harness.metrics.significance` (sacrebleu's bootstrap and paired tests, fixed seed), so a
rebuild from the same sources gives the same figures. A CI is shown only when the outputs rescore
to the run's stored score (otherwise the JSONL is not the one the score came from, and the reason
is listed); runs are compared only with runs of the same dataset, language, split and task whose
outputs name the same samples in the same order. Conventions: ``docs/results-schema.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.leaderboard.runs import run_label
from harness.metrics.significance import TASK_METRICS, confidence_intervals, paired_tests

__all__ = ["HEADLINE_METRIC", "Comparison", "compare_runs", "run_intervals", "significance"]

#: the metric each task's p-value matrix compares
HEADLINE_METRIC = {"translation": "bleu4", "recognition": "wer"}
_AGREE = 1e-6  # how close the rescored outputs must come to the stored score


def _cleanup(run: dict[str, Any]) -> str | None:
    return "phoenix14t" if run.get("dataset") == "phoenix14t" else None


def run_intervals(run: dict[str, Any], outputs: Any) -> tuple[dict[str, Any], str | None]:
    """``({metric: {score, mean, ci, signature}}, None)`` for a run with outputs, or
    ``({}, reason)`` when there is none to show."""
    task = run.get("task")
    if outputs is None:
        return {}, "no per-sample outputs JSONL"
    if task not in TASK_METRICS or not outputs.hypotheses:
        return {}, f"no CI for task {task!r}"
    cis = confidence_intervals(task, outputs.hypotheses, outputs.references, lang=run["lang"],
                               cleanup=_cleanup(run))
    stored = run.get("accuracy") or {}
    for metric, ci in cis.items():
        value = stored.get(metric)
        if not isinstance(value, (int, float)) or abs(value - ci["score"]) > _AGREE:
            return {}, (f"the outputs JSONL rescores {metric} to {ci['score']:.4f}, the run JSON "
                        f"says {value!r}")
    return cis, None


@dataclass(frozen=True)
class Comparison:
    """The paired tests of the runs of one dataset / language / split / task."""

    title: str  # e.g. "translation — synthetic-de / test"
    metric: str  # bleu4 | wer
    labels: tuple[str, ...]  # one per run, in table order
    scores: tuple[float, ...]  # the metric of each run, as its outputs score
    p_values: tuple[tuple[float | None, ...], ...]  # [i][j]: run j against run i (None on i == j)
    signature: str
    test: str = "bs"


def compare_runs(task: str, labels: Sequence[str], hypotheses: Sequence[Sequence[str]],
                 references: Sequence[str], *, lang: str, cleanup: str | None = None,
                 title: str = "", test: str = "bs") -> list[Comparison]:
    """The p-value matrices of sacrebleu's paired test between every pair of systems, one per
    metric of the task (the headline metric first): each system in turn is the baseline of one
    :func:`~harness.metrics.significance.paired_tests` call."""
    n = len(labels)
    found: dict[str, tuple[list[list[float | None]], list[float], str]] = {}
    for i in range(n):
        order = [i, *(j for j in range(n) if j != i)]
        res = paired_tests(task, [(labels[j], hypotheses[j]) for j in order], references,
                           lang=lang, cleanup=cleanup, test=test)
        for metric, r in res.items():
            matrix, values, _ = found.setdefault(metric, ([[None] * n for _ in range(n)],
                                                          [0.0] * n, ""))
            values[i] = r["scores"][0]
            for pos, j in enumerate(order[1:], start=1):
                matrix[i][j] = r["p_values"][pos]
            found[metric] = (matrix, values, r["signature"])
    return [Comparison(title, metric, tuple(labels), tuple(values),
                       tuple(tuple(row) for row in matrix), signature, test)
            for metric, (matrix, values, signature) in found.items()]


def significance(rows: Sequence[dict[str, Any]], outputs: dict[str, Any]
                 ) -> tuple[list[Comparison], list[str]]:
    """Comparisons of every group of ≥ 2 rows (one per run; ``outputs`` maps a row's ``_source``
    to its outputs) sharing dataset, language, split and task, plus notes on runs left out."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        run = row["_run"]
        if outputs.get(row["_source"]) is not None and run.get("task") in HEADLINE_METRIC:
            key = (run["task"], f"{run['dataset']}-{run['lang']}", run["split"], run["lang"])
            groups.setdefault(key, []).append(row)
    comparisons: list[Comparison] = []
    notes: list[str] = []
    for (task, data, split, lang), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        first = outputs[members[0]["_source"]]
        same = [m for m in members if outputs[m["_source"]].names == first.names
                and outputs[m["_source"]].references == first.references]
        for m in members:
            if m not in same:
                notes.append(f"- `{run_label(m['_run'])}`: its samples differ from "
                             f"`{run_label(members[0]['_run'])}`'s; not compared")
        if len(same) < 2:
            continue
        run0 = same[0]["_run"]
        comparisons.append(compare_runs(
            task, _labels(same),
            [outputs[m["_source"]].hypotheses for m in same], first.references, lang=lang,
            cleanup=_cleanup(run0), title=f"{task} — {data} / {split}")[0])
    return comparisons, notes


def _labels(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The method (with its variant); profile / backend / device added where two would clash."""
    base = [row["method"] for row in rows]
    return [b if base.count(b) == 1 else
            f"{b} [{row['profile']}/{row['backend']}/{row['device']}]"
            for b, row in zip(base, rows, strict=True)]
