"""Leaderboard rows from run JSONs: accuracy, the shuffled-reference control, efficiency.

One row per run, with raw values (``None`` = missing) under the leaderboard's column names;
:mod:`harness.leaderboard.render` formats them. Every figure is *read* from the run JSON: the
control and its permutation-test p-value come from ``run["control"]`` only (runs written before
the runner stored them were filled in once by :mod:`harness.leaderboard.migrate`), so a run
without a control shows ``—`` like a run whose control is unknown. Schema and columns:
``docs/results-schema.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.leaderboard.values import date, get, num, short_commit

__all__ = [
    "EXTRA_SCORE_KEYS",
    "TEXT_COLUMNS",
    "leaderboard_rows",
    "run_label",
    "score_sets",
    "scores",
    "stored_control",
]

#: the leaderboard's text columns, read as they are from the run JSON
TEXT_COLUMNS = ("method", "dataset", "lang", "split", "profile", "backend", "device")

#: run-JSON ``extra`` entries holding the *other* task's scores in ``accuracy``'s format (e.g.
#: SignX, a recognition method, also translates: ``extra.translation`` has its BLEU / ROUGE-L)
EXTRA_SCORE_KEYS = ("translation", "recognition")


_CI_NAMES = {"bleu4": "BLEU-4", "rouge_l": "ROUGE-L", "wer": "WER"}


def run_label(run: dict[str, Any]) -> str:
    """``method/dataset-lang/split/profile/backend/device`` of a run."""
    return "/".join(
        [run["method"], f"{run['dataset']}-{run['lang']}", run["split"], run["profile"],
         run["backend"], run["device"]]
    )  # fmt: skip


def score_sets(run: dict[str, Any]) -> list[dict[str, Any]]:
    """``accuracy`` first, then the other task's scores from ``extra`` (when present)."""
    sets = [run.get("accuracy") or {}]
    extra = run.get("extra") or {}
    if isinstance(extra, dict):
        sets += [extra[k] for k in EXTRA_SCORE_KEYS if isinstance(extra.get(k), dict)]
    return sets


def scores(run: dict[str, Any]) -> dict[str, Any]:
    """One flat score dict: ``accuracy``, completed by the other task's scores from ``extra``."""
    out: dict[str, Any] = {}
    for score_set in score_sets(run):
        for key, value in score_set.items():
            out.setdefault(key, value)
    return out


def stored_control(run: dict[str, Any]) -> dict[str, Any] | None:
    """The run's shuffled-reference control as its JSON stores it (None when it has none)."""
    control = run.get("control")
    return control if isinstance(control, dict) else None


def pretrained_parts(run: dict[str, Any]) -> str:
    """What the run's pretrained components were: ``stand-ins <hash>`` (trained here by
    ``signbench pretrain``; the manifest hash), ``checkpoints`` (a user's files through an
    ``init`` option), else ``none`` (random weights)."""
    standins = run.get("standins")
    if isinstance(standins, dict) and standins.get("hash"):
        return f"stand-ins {str(standins['hash'])[:8]}"
    overrides = (run.get("config") or {}).get("overrides") or {}
    if any((k == "init" or k.endswith("_init")) and v for k, v in overrides.items()):
        return "checkpoints"
    return "none"


def leaderboard_rows(runs: Sequence[tuple[Path, dict[str, Any]]],
                     intervals: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per run (raw values; None = missing), sorted by dataset, lang, split, method
    (an ablation right under its method), profile, backend, device, then source file name.
    ``intervals`` maps a source file name to its CIs (:func:`harness.leaderboard.stats.
    run_intervals`); a run without them gets no CI."""
    rows = []
    for path, run in runs:
        acc = scores(run)
        eff = run.get("efficiency") or {}
        env = run.get("environment") or {}
        params = eff.get("params") or {}
        total, trainable = num(params.get("total")), num(params.get("trainable"))
        row: dict[str, Any] = {name: run[name] for name in TEXT_COLUMNS}
        if run.get("variant"):  # an ablation / single-stream run of the method
            row["method"] = f"{run['method']} ({run['variant']})"
        row.update(
            {
                "BLEU-1": num(acc.get("bleu1")),
                "BLEU-2": num(acc.get("bleu2")),
                "BLEU-3": num(acc.get("bleu3")),
                "BLEU-4": num(acc.get("bleu4")),
                "ROUGE-L": num(acc.get("rouge_l")),
                "WER": num(acc.get("wer")),
                "latency p50 (ms)": num(get(eff, "latency_ms", "p50")),
                "latency p90 (ms)": num(get(eff, "latency_ms", "p90")),
                "FPS": num(eff.get("fps")),
                "GPU power (W)": num(eff.get("gpu_power_w")),
                "energy/video (J)": num(eff.get("energy_per_video_j")),
                "peak GPU mem (MB)": num(eff.get("peak_memory_mb")),
                "params total (M)": None if total is None else total / 1e6,
                "params trainable (M)": None if trainable is None else trainable / 1e6,
                "commit": short_commit(env.get("git_commit"), env.get("git_dirty")),
                "date": date(env.get("timestamp")),
            }
        )
        row["pretrained parts"] = pretrained_parts(run)
        control = stored_control(run)
        if control is not None:
            row.update({
                "distinct outputs": f"{control['distinct_outputs']}/{control['samples']}",
                "BLEU-4 shuffled refs": num(control.get("bleu4")),
                "WER shuffled refs": num(control.get("wer")),
                "p (permuted refs)": num(control.get("p_value")),
            })
        cis = (intervals or {}).get(path.name) or {}
        row.update({
            "BLEU-4 CI (±)": num(get(cis, "bleu4", "ci")),
            "ROUGE-L CI (±)": num(get(cis, "rouge_l", "ci")),
            "WER CI (±)": num(get(cis, "wer", "ci")),
        })
        row["_ci_signatures"] = sorted(f"{_CI_NAMES.get(k, k)} CI: {c['signature']}"
                                       for k, c in cis.items())
        row["_base"] = run["method"]
        row["_variant"] = run.get("variant") or ""
        row["_source"] = path.name
        row["_run"] = run
        rows.append(row)
    rows.sort(
        key=lambda r: (
            r["dataset"], r["lang"], r["split"], r["_base"], r["_variant"], r["profile"],
            r["backend"],
            r["device"], r["_source"],
        )
    )  # fmt: skip
    return rows
