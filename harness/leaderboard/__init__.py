"""Rebuild ``results/`` — leaderboard tables (markdown + CSV) and plots — from committed JSON.

Every number under ``results/`` must be traceable to a JSON committed beside it. So the inputs
(run JSONs, ``pytest benchmarks/ --benchmark-json`` files) are first validated and copied into
``results/sources/runs/<run file name>`` and ``results/sources/benchmarks/<name>.json``; then every
table and plot is built from *all* JSONs under ``results/sources/`` — the ones committed earlier
plus the new ones (a new file replaces one of the same name, so re-running a configuration updates
its row). Output is deterministic: the same sources give byte-identical tables (no "now"
timestamps; dates come from the JSONs) and plots, and every file is written atomically.

Files written (each only when it has data; a stale one is removed otherwise):

* ``leaderboard.md`` / ``leaderboard.csv`` — one row per run: accuracy next to efficiency.
* ``kernels.md`` / ``kernels.csv`` — kernel micro-benchmarks with speedup vs the eager backend.
* ``methods.md`` / ``methods.csv`` — end-to-end method benchmarks (``extra_info.kind == "method"``).
* ``accuracy_vs_latency.png`` and ``kernel_speedup.png``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.results import (
    RunFileError,
    atomic_write_bytes,
    atomic_write_text,
    load_json,
    load_run,
    run_filename,
)

if TYPE_CHECKING:  # harness.evaluate imports torch: only at call time (see _read_outputs)
    from harness.evaluate import SplitOutputs

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

RUN_SOURCES = Path("sources") / "runs"
BENCH_SOURCES = Path("sources") / "benchmarks"
#: backends a kernel's speedup is measured against, in order of preference
BASELINE_BACKENDS = ("eager", "torch")
MISSING_MD = "—"

LEADERBOARD_FILES = ("leaderboard.md", "leaderboard.csv")
KERNEL_FILES = ("kernels.md", "kernels.csv")
METHOD_FILES = ("methods.md", "methods.csv")
ACCURACY_PLOT = "accuracy_vs_latency.png"
SPEEDUP_PLOT = "kernel_speedup.png"

_DPI = 100
_PNG_METADATA = {"Software": None}


# --------------------------------------------------------------------------------------------
# Report types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Source JSONs under ``out_dir/sources/`` after an import (all of them, sorted)."""

    runs: tuple[Path, ...]
    benchmarks: tuple[Path, ...]
    copied: tuple[Path, ...]  # the files this import (re)wrote


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


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _fail(source: Path | str, field: str, message: str) -> RunFileError:
    return RunFileError(f"{source}: field '{field}': {message}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_benchmark_file(path: str | Path) -> dict[str, Any]:
    """Read and check a pytest-benchmark JSON; :class:`RunFileError` names the file and field."""
    p = Path(path)
    data = load_json(p)
    if not isinstance(data, dict):
        raise RunFileError(f"{p}: top level: expected a JSON object, got {type(data).__name__}")
    if "benchmarks" not in data:
        raise _fail(p, "benchmarks", "missing required field (not a pytest-benchmark JSON?)")
    benches = data["benchmarks"]
    if not isinstance(benches, list):
        raise _fail(p, "benchmarks", f"expected a list, got {type(benches).__name__}")
    for key in ("machine_info", "commit_info"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise _fail(p, key, "expected an object")
    if data.get("datetime") is not None and not isinstance(data["datetime"], str):
        raise _fail(p, "datetime", "expected a string")
    for i, bench in enumerate(benches):
        where = f"benchmarks[{i}]"
        if not isinstance(bench, dict):
            raise _fail(p, where, "expected an object")
        if not isinstance(bench.get("name"), str) or not bench["name"]:
            raise _fail(p, f"{where}.name", "missing or not a non-empty string")
        stats = bench.get("stats")
        if not isinstance(stats, dict):
            raise _fail(p, f"{where}.stats", "missing or not an object")
        median = stats.get("median")
        if not _finite(median) or median <= 0:
            raise _fail(p, f"{where}.stats.median", f"expected a positive number, got {median!r}")
        extra = bench.get("extra_info")
        if extra is not None and not isinstance(extra, dict):
            raise _fail(p, f"{where}.extra_info", "expected an object")
    return data


def _is_run_candidate(path: Path) -> bool:
    """For folder discovery: a JSON object that declares a ``signbench.run/…`` schema.

    Invalid JSON still raises (a truncated run must not vanish silently); JSON files without a
    run schema (tokenizers, configs) are skipped.
    """
    data = load_json(path)
    if not isinstance(data, dict):
        return False
    schema = data.get("schema")
    return isinstance(schema, str) and schema.startswith("signbench.run/")


def discover_runs(runs_dir: str | Path) -> list[Path]:
    """Run JSONs anywhere under ``runs_dir`` (``*.json`` declaring a ``signbench.run/…`` schema)."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise RunFileError(f"{root}: runs folder not found")
    return [p for p in sorted(root.rglob("*.json")) if p.is_file() and _is_run_candidate(p)]


def _timestamp(run: dict[str, Any]) -> str:
    env = run.get("environment") or {}
    return str(env.get("timestamp") or "")


def _copy(src: Path, dst: Path, copied: list[Path]) -> None:
    if src.resolve() == dst.resolve():
        return
    atomic_write_bytes(dst, src.read_bytes())
    copied.append(dst)


def import_sources(
    runs: Sequence[str | Path], benchmarks: Sequence[str | Path], out_dir: str | Path
) -> Sources:
    """Validate the given files, copy them into ``out_dir/sources/``, list all sources.

    Runs go to ``sources/runs/<run_filename(run)>`` (so a re-run of the same configuration
    replaces its predecessor; among inputs with the same name the newest
    ``environment.timestamp`` wins, ties going to the later input), each with its per-sample
    outputs JSONL beside it when that file exists. Benchmark files go to
    ``sources/benchmarks/<file name>``. Every input is validated before anything is written.
    """
    out = Path(out_dir)
    chosen_runs: dict[str, tuple[str, Path, dict[str, Any]]] = {}
    for item in runs:
        path = Path(item)
        run = load_run(path)
        name = run_filename(run)
        stamp = _timestamp(run)
        if name not in chosen_runs or stamp >= chosen_runs[name][0]:
            chosen_runs[name] = (stamp, path, run)
    chosen_benches: dict[str, Path] = {}
    for item in benchmarks:
        path = Path(item)
        load_benchmark_file(path)
        name = path.name if path.suffix == ".json" else f"{path.name}.json"
        chosen_benches[name] = path

    copied: list[Path] = []
    for name, (_, path, run) in sorted(chosen_runs.items()):
        _copy(path, out / RUN_SOURCES / name, copied)
        # The per-sample outputs travel with their run (``outputs`` is relative to the run file).
        outputs = run.get("outputs")
        if outputs and (path.parent / outputs).is_file():
            _copy(path.parent / outputs, out / RUN_SOURCES / outputs, copied)
    for name, path in sorted(chosen_benches.items()):
        _copy(path, out / BENCH_SOURCES / name, copied)

    def listing(folder: Path) -> tuple[Path, ...]:
        d = out / folder
        return tuple(sorted(p for p in d.glob("*.json") if p.is_file())) if d.is_dir() else ()

    return Sources(listing(RUN_SOURCES), listing(BENCH_SOURCES), tuple(copied))


def collect_inputs(
    runs_dir: str | Path | None, bench_files: Sequence[str | Path], out_dir: str | Path
) -> Sources:
    """Import every run JSON found under ``runs_dir`` (see :func:`discover_runs`; ``None`` = none)
    and the given benchmark files into ``out_dir/sources/``; return all sources."""
    runs = discover_runs(runs_dir) if runs_dir is not None else []
    return import_sources(runs, bench_files, out_dir)


# --------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    return float(value) if _finite(value) else None


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def fmt_score(x: float) -> str:
    """Scores (BLEU, ROUGE-L, WER, speedups): two decimals, as papers print them."""
    return f"{x:.2f}"


def fmt_p(x: float) -> str:
    """p-values: three decimals (the permutation test resolves 1/200 = 0.005)."""
    return f"{x:.3f}"


def fmt_sig(x: float) -> str:
    """Measurements spanning orders of magnitude: ≥100 → 1 decimal, ≥1 → 2, else 3 significant."""
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 100:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    decimals = min(9, 2 - math.floor(math.log10(a)))
    return f"{x:.{decimals}f}"


def fmt_csv(value: Any) -> str:
    """CSV cell: empty when missing, numbers with 10 significant digits, strings as they are."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".10g")
    return str(value)


def _natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", text)
        if part
    )


def _short_commit(commit: Any, dirty: Any) -> str | None:
    if not isinstance(commit, str) or not commit:
        return None
    return commit[:7] + ("-dirty" if dirty is True else "")


def _date(stamp: Any) -> str | None:
    if isinstance(stamp, str) and re.match(r"\d{4}-\d{2}-\d{2}", stamp):
        return stamp[:10]
    return None


@dataclass(frozen=True)
class Column:
    """A table column: header, how to format a present value in markdown, its alignment."""

    name: str
    fmt: Callable[[Any], str] = str
    numeric: bool = False


def _md_cell(value: Any, column: Column) -> str:
    if value is None or value == "":
        return MISSING_MD
    text = column.fmt(value) if column.numeric else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(
    columns: Sequence[Column],
    rows: Sequence[dict[str, Any]],
    *,
    header: str,
    title: str,
    notes: Iterable[str] = (),
) -> str:
    """Markdown document: generator line, title, pipe table (via tabulate), then notes."""
    from tabulate import tabulate

    body = [[_md_cell(row.get(c.name), c) for c in columns] for row in rows]
    table = tabulate(
        body,
        headers=[c.name for c in columns],
        tablefmt="pipe",
        disable_numparse=True,
        colalign=["right" if c.numeric else "left" for c in columns],
    )
    parts = [header, "", f"# {title}", "", table]
    notes = list(notes)
    if notes:
        parts += ["", *notes]
    return "\n".join(parts).rstrip("\n") + "\n"


def render_csv(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.name for c in columns])
    for row in rows:
        writer.writerow([fmt_csv(row.get(c.name)) for c in columns])
    return buf.getvalue()


def _generated(sources: str) -> str:
    return f"Generated by `signbench leaderboard` from {sources}; do not edit by hand."


# --------------------------------------------------------------------------------------------
# Leaderboard (runs)
# --------------------------------------------------------------------------------------------

_TEXT = ("method", "dataset", "lang", "split", "profile", "backend", "device")

LEADERBOARD_COLUMNS: tuple[Column, ...] = (
    *(Column(name) for name in _TEXT),
    Column("BLEU-1", fmt_score, True),
    Column("BLEU-2", fmt_score, True),
    Column("BLEU-3", fmt_score, True),
    Column("BLEU-4", fmt_score, True),
    Column("ROUGE-L", fmt_score, True),
    Column("WER", fmt_score, True),
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

#: efficiency key → the leaderboard columns it feeds (for listing why a cell is —)
_EFFICIENCY_COLUMNS: dict[str, tuple[str, ...]] = {
    "latency_ms": ("latency p50 (ms)", "latency p90 (ms)"),
    "fps": ("FPS",),
    "gpu_power_w": ("GPU power (W)",),
    "energy_per_video_j": ("energy/video (J)",),
    "peak_memory_mb": ("peak GPU mem (MB)",),
    "params": ("params total (M)", "params trainable (M)"),
}

_LEADERBOARD_NOTES = """\
Columns:

- BLEU-1…4: corpus BLEU with maximum n-gram order n; ROUGE-L: sentence-level ROUGE-L F-score
  averaged over the corpus; both ×100, computed as the metric signatures above state.
- WER: word error rate in % of reference words (recognition; glosses for gloss-based methods).
- distinct outputs: different hypotheses among the split's samples; BLEU-4 / WER shuffled refs:
  the same outputs scored against other samples' references (mean of 5 random derangements,
  `harness.metrics.control`). A score no better than its shuffled-refs control does not come
  from the video (e.g. one sentence emitted for every video scores the same either way).
- p (permuted refs): one-sided permutation-test p-value of the headline score (BLEU-4, or WER
  for recognition): the share of 199 random re-pairings of outputs and references (plus the
  observed one) that score at least as well as the observed pairing. Small (≤ 0.05): the
  outputs depend on their own videos; a constant output gets 1.
- latency p50/p90: end-to-end milliseconds per video after warm-up, device-synchronised.
- FPS: video frames processed per second.
- GPU power: mean board power while running (NVML); energy/video: NVML energy counter delta per
  video, in joules.
- peak GPU mem: peak memory allocated on the GPU during evaluation, in MB.
- params total / trainable: parameter counts in millions.
- commit: the run's git commit (`-dirty`: with uncommitted changes); date: the run's timestamp.
- —: not measured or not applicable to the run (a recognition run has no BLEU, a CPU run no GPU
  power); reasons recorded by the runs are listed below."""


def _run_label(run: dict[str, Any]) -> str:
    return "/".join(
        [run["method"], f"{run['dataset']}-{run['lang']}", run["split"], run["profile"],
         run["backend"], run["device"]]
    )  # fmt: skip


#: run-JSON ``extra`` entries holding the *other* task's scores in ``accuracy``'s format (e.g.
#: SignX, a recognition method, also translates: ``extra.translation`` has its BLEU / ROUGE-L)
_EXTRA_SCORE_KEYS = ("translation", "recognition")


def _score_sets(run: dict[str, Any]) -> list[dict[str, Any]]:
    """``accuracy`` first, then the other task's scores from ``extra`` (when present)."""
    sets = [run.get("accuracy") or {}]
    extra = run.get("extra") or {}
    if isinstance(extra, dict):
        sets += [extra[k] for k in _EXTRA_SCORE_KEYS if isinstance(extra.get(k), dict)]
    return sets


def _scores(run: dict[str, Any]) -> dict[str, Any]:
    """One flat score dict: ``accuracy``, completed by the other task's scores from ``extra``."""
    out: dict[str, Any] = {}
    for scores in _score_sets(run):
        for key, value in scores.items():
            out.setdefault(key, value)
    return out


def _read_outputs(path: Path, run: dict[str, Any]) -> SplitOutputs | None:
    """The run's per-sample outputs (``SplitOutputs``) from the JSONL beside it, or None."""
    outputs = run.get("outputs")
    if not outputs or not (path.parent / outputs).is_file() or run.get("task") not in (
            "translation", "recognition"):
        return None
    from harness.evaluate import SplitOutputs

    source = path.parent / outputs
    try:
        records = [json.loads(line) for line in
                   source.read_text(encoding="utf-8").splitlines() if line.strip()]
        return SplitOutputs(names=[r["name"] for r in records],
                            references=[r["reference"] for r in records],
                            hypotheses=[r["hypothesis"] for r in records])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RunFileError(f"{source}: per-sample outputs: each line must be a JSON object with "
                           f"name / reference / hypothesis ({exc})") from None


def _control(path: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    """The run's shuffled-reference control: from its JSON, else computed from its per-sample
    outputs JSONL beside it (runs written before the runner stored it); None without either.
    A stored control without the permutation test's ``p_value`` (written before it existed)
    gets it from the JSONL too, when that is there."""
    from harness.evaluate import cleanup_for, control_of, permutation_test_of

    stored = run.get("control") if isinstance(run.get("control"), dict) else None
    if stored is not None and "p_value" in stored:
        return stored
    split = _read_outputs(path, run)
    if split is None:
        return stored
    if stored is None:
        return control_of(run["task"], split, lang=run["lang"], dataset=run["dataset"])
    return {**stored, **permutation_test_of(run["task"], split.hypotheses, split.references,
                                            lang=run["lang"],
                                            cleanup=cleanup_for(run["dataset"]))}


def leaderboard_rows(runs: Sequence[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per run (raw values; None = missing), sorted by dataset, lang, split, method,
    profile, backend, device, then source file name."""
    rows = []
    for path, run in runs:
        acc = _scores(run)
        eff = run.get("efficiency") or {}
        env = run.get("environment") or {}
        params = eff.get("params") or {}
        total, trainable = _num(params.get("total")), _num(params.get("trainable"))
        row: dict[str, Any] = {name: run[name] for name in _TEXT}
        if run.get("variant"):  # an ablation / single-stream run of the method
            row["method"] = f"{run['method']} ({run['variant']})"
        row.update(
            {
                "BLEU-1": _num(acc.get("bleu1")),
                "BLEU-2": _num(acc.get("bleu2")),
                "BLEU-3": _num(acc.get("bleu3")),
                "BLEU-4": _num(acc.get("bleu4")),
                "ROUGE-L": _num(acc.get("rouge_l")),
                "WER": _num(acc.get("wer")),
                "latency p50 (ms)": _num(_get(eff, "latency_ms", "p50")),
                "latency p90 (ms)": _num(_get(eff, "latency_ms", "p90")),
                "FPS": _num(eff.get("fps")),
                "GPU power (W)": _num(eff.get("gpu_power_w")),
                "energy/video (J)": _num(eff.get("energy_per_video_j")),
                "peak GPU mem (MB)": _num(eff.get("peak_memory_mb")),
                "params total (M)": None if total is None else total / 1e6,
                "params trainable (M)": None if trainable is None else trainable / 1e6,
                "commit": _short_commit(env.get("git_commit"), env.get("git_dirty")),
                "date": _date(env.get("timestamp")),
            }
        )
        control = _control(path, run)
        if control is not None:
            row.update({
                "distinct outputs": f"{control['distinct_outputs']}/{control['samples']}",
                "BLEU-4 shuffled refs": _num(control.get("bleu4")),
                "WER shuffled refs": _num(control.get("wer")),
                "p (permuted refs)": _num(control.get("p_value")),
            })
        row["_source"] = path.name
        row["_run"] = run
        rows.append(row)
    rows.sort(
        key=lambda r: (
            r["dataset"], r["lang"], r["split"], r["method"], r["profile"], r["backend"],
            r["device"], r["_source"],
        )
    )  # fmt: skip
    return rows


def _signatures(rows: Sequence[dict[str, Any]]) -> list[str]:
    sigs: set[str] = set()
    for row in rows:
        for acc in _score_sets(row["_run"]):
            for key, value in acc.items():
                if key.endswith("signature") and isinstance(value, str) and value.strip():
                    sigs.add(value.strip())
    return sorted(sigs)


def _unavailable_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """``- <columns>: <reason> (runs: a, b)`` for each (figure, reason) pair behind a — cell."""
    groups: dict[tuple[int, str, str], list[str]] = {}
    order = list(_EFFICIENCY_COLUMNS)
    for row in rows:
        reasons = (row["_run"].get("efficiency") or {}).get("unavailable") or {}
        for key, reason in reasons.items():
            if key not in _EFFICIENCY_COLUMNS:
                continue
            cols = _EFFICIENCY_COLUMNS[key]
            if all(row.get(c) is not None for c in cols):
                continue  # measured after all: nothing is shown as —
            label = ", ".join(cols)
            groups.setdefault((order.index(key), label, str(reason)), []).append(
                _run_label(row["_run"])
            )
    lines = []
    for (_, label, reason), labels in sorted(groups.items()):
        runs = ", ".join(f"`{x}`" for x in sorted(set(labels)))
        lines.append(f"- {label}: {reason.strip()} — {runs}")
    return lines


def _flat_figures(obj: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, int | float]]:
    """Numeric scalars of a run's ``extra`` as dotted names (nested objects up to 3 levels;
    lists, strings and the other task's score sets — shown in the table — are skipped)."""
    out: list[tuple[str, int | float]] = []
    if not isinstance(obj, dict) or depth > 2:
        return out
    for key in sorted(obj):
        value = obj[key]
        if depth == 0 and key in _EXTRA_SCORE_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flat_figures(value, f"{name}.", depth + 1)
        elif _finite(value) and not isinstance(value, bool):
            out.append((name, value))
    return out


def _extra_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """``- method / split: name value, ...`` for runs whose JSON carries method-specific figures
    (``extra``: e.g. SignBind-LLM's letter accuracy and gate α per segment type)."""
    lines = []
    for row in rows:
        figures = _flat_figures(row["_run"].get("extra"))
        if figures:
            text = ", ".join(f"{name} {value if isinstance(value, int) else fmt_sig(value)}"
                             for name, value in figures)
            lines.append(f"- {row['method']} / {row['split']}: {text}")
    return lines


def render_leaderboard(rows: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(markdown, csv) for the run leaderboard."""
    notes: list[str] = []
    sigs = _signatures(rows)
    if sigs:
        notes += ["Metric signatures:", "", *(f"- `{s}`" for s in sigs), ""]
    notes.append(_LEADERBOARD_NOTES)
    extra = _extra_notes(rows)
    if extra:
        notes += ["", "Method-specific figures (run JSON `extra`):", "", *extra]
    unavailable = _unavailable_notes(rows)
    if unavailable:
        notes += ["", "Unavailable figures (shown as —) and why:", "", *unavailable]
    md = render_markdown(
        LEADERBOARD_COLUMNS,
        rows,
        header=_generated(f"{RUN_SOURCES.as_posix()}/*.json"),
        title="SignBench leaderboard",
        notes=notes,
    )
    return md, render_csv(LEADERBOARD_COLUMNS, rows)


# --------------------------------------------------------------------------------------------
# Kernel and method benchmarks
# --------------------------------------------------------------------------------------------

KERNEL_COLUMNS: tuple[Column, ...] = (
    Column("op"),
    Column("mode"),
    Column("dtype"),
    Column("shape"),
    Column("device"),
    Column("backend"),
    Column("median (µs)", fmt_sig, True),
    Column("speedup vs eager", fmt_score, True),
    Column("GB/s", fmt_sig, True),
    Column("TFLOP/s", fmt_sig, True),
    Column("commit"),
    Column("date"),
)

METHOD_COLUMNS: tuple[Column, ...] = (
    Column("method"),
    Column("profile"),
    Column("backend"),
    Column("device"),
    Column("latency median (ms)", fmt_sig, True),
    Column("FPS", fmt_sig, True),
    Column("commit"),
    Column("date"),
)

_KERNEL_NOTES = """\
Columns: median = pytest-benchmark median time per call in microseconds (warm-up on; GPU calls
end with a device synchronisation); speedup vs eager = median of the `eager` backend (`torch` if
there is no `eager` row) for the same op, mode, dtype, shape and device, divided by this row's
median (from the same benchmark file when it has one, else the newest); GB/s and TFLOP/s = bytes
moved and floating-point operations per call divided by the median, as recorded by
`benchmarks/conftest.py`; commit and date: of the benchmark session. — means not recorded."""

_METHOD_NOTES = """\
Columns: latency median = pytest-benchmark median per call (one call = one batch as the benchmark
defines it), in milliseconds; FPS = video frames per call divided by the median; commit and date:
of the benchmark session. — means not recorded."""


@dataclass(frozen=True)
class _Bench:
    source: str
    stamp: str
    commit: str | None
    date: str | None
    machine: dict[str, Any]
    entry: dict[str, Any]

    @property
    def extra(self) -> dict[str, Any]:
        return self.entry.get("extra_info") or {}

    @property
    def median_s(self) -> float:
        return float(self.entry["stats"]["median"])


def _bench_entries(files: Sequence[tuple[Path, dict[str, Any]]]) -> list[_Bench]:
    out = []
    for path, data in files:
        commit_info = data.get("commit_info") or {}
        stamp = str(data.get("datetime") or "")
        for entry in data["benchmarks"]:
            out.append(
                _Bench(
                    source=path.name,
                    stamp=stamp,
                    commit=_short_commit(commit_info.get("id"), commit_info.get("dirty")),
                    date=_date(stamp),
                    machine=data.get("machine_info") or {},
                    entry=entry,
                )
            )
    return out


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _device(b: _Bench) -> str:
    if b.extra.get("device") is not None:
        return str(b.extra["device"])
    if "gpu_name" in b.machine:
        return str(b.machine["gpu_name"] or "cpu")
    return ""


def _backend_rank(backend: str) -> tuple[int, str]:
    if backend in BASELINE_BACKENDS:
        return (BASELINE_BACKENDS.index(backend), backend)
    return (len(BASELINE_BACKENDS), backend)


def kernel_rows(files: Sequence[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of the kernel table (every benchmark whose ``extra_info.kind`` is not ``method``)."""
    rows: list[dict[str, Any]] = []
    for b in _bench_entries(files):
        extra = b.extra
        if extra.get("kind") == "method":
            continue
        median = b.median_s
        op = extra.get("op") or b.entry.get("group") or b.entry["name"]
        gbps = _num(extra.get("gbps"))
        if gbps is None and _num(extra.get("bytes_moved")) is not None:
            gbps = float(extra["bytes_moved"]) / median / 1e9
        tflops = _num(extra.get("tflops"))
        if tflops is None and _num(extra.get("flops")) is not None:
            tflops = float(extra["flops"]) / median / 1e12
        rows.append(
            {
                "op": str(op),
                "mode": _str(extra.get("mode")),
                "dtype": _str(extra.get("dtype")),
                "shape": _str(extra.get("shape")),
                "device": _device(b),
                "backend": _str(extra.get("backend")),
                "median (µs)": median * 1e6,
                "speedup vs eager": None,
                "GB/s": gbps,
                "TFLOP/s": tflops,
                "commit": b.commit,
                "date": b.date,
                "_median_s": median,
                "_stamp": b.stamp,
                "_source": b.source,
                "_name": b.entry["name"],
            }
        )

    # speedup vs the baseline backend with the same op/mode/dtype/shape/device
    def key(r: dict[str, Any]) -> tuple[str, ...]:
        return (r["op"], r["mode"], r["dtype"], r["shape"], r["device"])

    baselines: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        if r["backend"] in BASELINE_BACKENDS:
            baselines.setdefault(key(r), []).append(r)
    for r in rows:
        candidates = baselines.get(key(r))
        if not candidates:
            continue
        best_backend = min(_backend_rank(c["backend"]) for c in candidates)[1]
        candidates = [c for c in candidates if c["backend"] == best_backend]
        if any(c is r for c in candidates):
            r["speedup vs eager"] = 1.0
            continue
        same_file = [c for c in candidates if c["_source"] == r["_source"]]
        pool = same_file or candidates
        base = max(pool, key=lambda c: (c["_stamp"], c["_source"], c["_name"]))
        r["speedup vs eager"] = base["_median_s"] / r["_median_s"]
    rows.sort(
        key=lambda r: (
            r["op"], r["mode"], r["dtype"], _natural_key(r["shape"]), r["device"],
            _backend_rank(r["backend"]), r["_stamp"], r["_source"], r["_name"],
        )
    )  # fmt: skip
    return rows


def method_rows(files: Sequence[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of the end-to-end table (benchmarks with ``extra_info.kind == "method"``)."""
    rows = []
    for b in _bench_entries(files):
        extra = b.extra
        if extra.get("kind") != "method":
            continue
        median = b.median_s
        fps = _num(extra.get("fps"))
        if fps is None and _num(extra.get("frames")) is not None:
            fps = float(extra["frames"]) / median
        method = extra.get("method") or extra.get("op") or b.entry.get("group") or b.entry["name"]
        if extra.get("variant"):  # an ablation timed side by side, as in leaderboard.md
            method = f"{method} ({extra['variant']})"
        rows.append(
            {
                "method": str(method),
                "profile": _str(extra.get("profile")),
                "backend": _str(extra.get("backend")),
                "device": _device(b),
                "latency median (ms)": median * 1e3,
                "FPS": fps,
                "commit": b.commit,
                "date": b.date,
                "_stamp": b.stamp,
                "_source": b.source,
                "_name": b.entry["name"],
            }
        )
    rows.sort(
        key=lambda r: (
            r["method"], r["profile"], _backend_rank(r["backend"]), r["device"], r["_stamp"],
            r["_source"], r["_name"],
        )
    )  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata=_PNG_METADATA)
    return buf.getvalue()


def _plot_style() -> Any:
    import matplotlib.style

    # defaults, not the user's matplotlibrc: the same sources must give the same pixels
    return matplotlib.style.context("default")


def plot_accuracy_vs_latency(rows: Sequence[dict[str, Any]]) -> bytes | None:
    """PNG: latency p50 (log x) vs BLEU-4 (WER when no run has BLEU-4); area ∝ parameters."""
    metric = "BLEU-4" if any(r["BLEU-4"] is not None for r in rows) else "WER"
    points = [
        r
        for r in rows
        if r[metric] is not None and r["latency p50 (ms)"] is not None and r["latency p50 (ms)"] > 0
    ]
    if not points:
        return None
    sizes_known = [r["params total (M)"] for r in points if r["params total (M)"]]
    pmax = max(sizes_known) if sizes_known else None
    methods = sorted({r["method"] for r in points})
    stacked: dict[tuple[float, float], int] = {}  # labels of coincident points go one above another
    xs = [r["latency p50 (ms)"] for r in points]
    ys = [r[metric] for r in points]
    with _plot_style():
        fig = _new_figure(10, 6)
        ax = fig.add_subplot(1, 1, 1)
        cmap = _colors(len(methods))
        seen: set[str] = set()
        for r, x, y in zip(points, xs, ys, strict=True):
            p = r["params total (M)"]
            size = 30.0 if not p or not pmax else max(15.0, 600.0 * p / pmax)
            color = cmap[methods.index(r["method"])]
            ax.scatter(
                [x], [y], s=size, color=color, alpha=0.7, edgecolors="black", linewidths=0.5,
                label=None if r["method"] in seen else r["method"],
            )  # fmt: skip
            seen.add(r["method"])
            slot = stacked.get((x, y), 0)
            stacked[(x, y)] = slot + 1
            label = f"{r['method']} ({r['profile']}, {r['backend']}, {r['device']})"
            ax.annotate(
                label, (x, y), textcoords="offset points", xytext=(7, 3 + 10 * slot), fontsize=7,
            )  # fmt: skip
        ax.set_xscale("log")
        # room for the labels right of the points; plain numbers on the log axis
        ax.set_xlim(min(xs) / 1.6, max(xs) * 4.0)
        lo, hi = min(ys), max(ys)
        pad = max((hi - lo) * 0.12, 1.0)
        ax.set_ylim(lo - pad, hi + pad + 0.04 * (hi - lo + 1) * max(stacked.values()))
        plain = _plain_log_formatter()
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("latency p50 per video (ms, log scale)")
        ax.set_ylabel(f"{metric} ({'higher' if metric == 'BLEU-4' else 'lower'} is better)")
        ax.set_title("Accuracy vs latency (marker area ∝ parameters)")
        ax.grid(True, which="both", alpha=0.3)
        legend = ax.legend(title="method", fontsize=8, loc="best")
        for handle in legend.legend_handles:
            if hasattr(handle, "set_sizes"):
                handle.set_sizes([30.0])  # marker size means parameters only on the axes
        fig.tight_layout()
        return _png_bytes(fig)


def _plain_log_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    def fmt(value: float, _pos: int) -> str:
        if value <= 0:
            return ""
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        if round(mantissa) not in (1, 2, 5) or abs(mantissa - round(mantissa)) > 1e-6:
            return ""
        return f"{value:g}"

    return FuncFormatter(fmt)


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if n <= 10 else colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def plot_kernel_speedup(rows: Sequence[dict[str, Any]]) -> bytes | None:
    """PNG: grouped bars, speedup vs eager per (op, mode, dtype, shape), one bar per backend."""
    latest: dict[tuple[tuple[str, ...], str], dict[str, Any]] = {}
    for r in rows:
        if r["speedup vs eager"] is None or r["backend"] in BASELINE_BACKENDS:
            continue
        cat = (r["op"], r["mode"], r["dtype"], r["shape"], r["device"])
        k = (cat, r["backend"])
        if k not in latest or (r["_stamp"], r["_source"]) >= (
            latest[k]["_stamp"],
            latest[k]["_source"],
        ):
            latest[k] = r
    if not latest:
        return None
    cats = sorted(
        {cat for cat, _ in latest},
        key=lambda c: (c[0], c[1], c[2], _natural_key(c[3]), c[4]),
    )
    backends = sorted({b for _, b in latest}, key=_backend_rank)
    several_devices = len({c[4] for c in cats}) > 1
    width = 0.8 / len(backends)
    with _plot_style():
        fig = _new_figure(max(6.0, 0.9 * len(cats) * max(1, len(backends)) / 2 + 3), 5.5)
        ax = fig.add_subplot(1, 1, 1)
        colors = _colors(len(backends))
        for j, backend in enumerate(backends):
            xs, ys = [], []
            for i, cat in enumerate(cats):
                r = latest.get((cat, backend))
                if r is not None:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(r["speedup vs eager"])
            bars = ax.bar(xs, ys, width=width, label=backend, color=colors[j])
            ax.bar_label(bars, fmt="%.2f×", fontsize=7, padding=2)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        spare = max(0.0, (3 - len(cats)) / 2)  # keep bars slim when there are few groups
        ax.set_xlim(-0.6 - spare, len(cats) - 0.4 + spare)
        ax.margins(y=0.12)
        labels = []
        for op, mode, dtype, shape, device in cats:
            label = f"{op} {mode}\n{dtype} {shape}"
            labels.append(f"{label}\n{device}" if several_devices else label)
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("speedup vs eager (×, higher is better)")
        ax.set_title("Kernel speedup by backend and shape")
        ax.legend(title="backend", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        return _png_bytes(fig)


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------


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
    header = _generated(f"{BENCH_SOURCES.as_posix()}/*.json")
    if k_rows:
        outputs["kernels.md"] = render_markdown(
            KERNEL_COLUMNS, k_rows, header=header, title="Kernel benchmarks", notes=[_KERNEL_NOTES]
        )
        outputs["kernels.csv"] = render_csv(KERNEL_COLUMNS, k_rows)
    m_rows = method_rows(bench_data)
    if m_rows:
        outputs["methods.md"] = render_markdown(
            METHOD_COLUMNS,
            m_rows,
            header=header,
            title="End-to-end method benchmarks",
            notes=[_METHOD_NOTES],
        )
        outputs["methods.csv"] = render_csv(METHOD_COLUMNS, m_rows)
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
