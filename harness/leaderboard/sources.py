"""The leaderboard's inputs: run JSONs, their outputs JSONL and benchmark JSONs in ``sources/``.

Every number under ``results/`` must be traceable to a JSON committed beside it, so the inputs
(run JSONs, ``pytest benchmarks/ --benchmark-json`` files) are validated and copied into
``results/sources/runs/<run file name>`` (each with its per-sample outputs JSONL) and
``results/sources/benchmarks/<name>.json`` before any table is built from all of them.
This module finds, checks, copies and lists those files; it computes no figure. Layout and
schema: ``docs/results-schema.md``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.files import atomic_write_bytes
from harness.leaderboard.values import finite
from harness.results import RunFileError, load_json, load_run, run_filename

if TYPE_CHECKING:  # harness.evaluate imports torch: only at call time (see read_outputs)
    from harness.evaluate import SplitOutputs

__all__ = [
    "BENCH_SOURCES",
    "RUN_SOURCES",
    "ImportPlan",
    "Sources",
    "check_outputs",
    "collect_inputs",
    "discover_runs",
    "import_sources",
    "load_benchmark_file",
    "outputs_path",
    "plan_import",
    "read_outputs",
]

RUN_SOURCES = Path("sources") / "runs"
BENCH_SOURCES = Path("sources") / "benchmarks"


@dataclass(frozen=True)
class Sources:
    """Source JSONs under ``out_dir/sources/`` after an import (all of them, sorted)."""

    runs: tuple[Path, ...]
    benchmarks: tuple[Path, ...]
    copied: tuple[Path, ...]  # the files this import (re)wrote


def _fail(source: Path | str, field: str, message: str) -> RunFileError:
    return RunFileError(f"{source}: field '{field}': {message}")


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
        if not finite(median) or median <= 0:
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


def check_outputs(source: Path) -> list[dict[str, str]]:
    """The records of a per-sample outputs JSONL, checked: one JSON object per non-empty line with
    string ``name`` / ``reference`` / ``hypothesis``, names unique. :class:`RunFileError` names
    the file, the line and the field."""
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFileError(f"{source}: per-sample outputs: cannot read file: {exc}") from None
    records: list[dict[str, str]] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}: per-sample outputs, line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RunFileError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno}); each "
                               "line must be a JSON object with name / reference / hypothesis"
                               ) from None
        if not isinstance(record, dict):
            raise RunFileError(f"{where}: expected a JSON object, got {type(record).__name__}")
        for key in ("name", "reference", "hypothesis"):
            if not isinstance(record.get(key), str):
                raise RunFileError(f"{where}: field '{key}': missing or not a string")
        if record["name"] in seen:
            raise RunFileError(f"{where}: field 'name': duplicate sample {record['name']!r}")
        seen.add(record["name"])
        records.append(record)
    return records


def outputs_path(path: Path, run: dict[str, Any]) -> Path | None:
    """The per-sample outputs JSONL beside the run file ``path``, when the run names one that
    exists."""
    outputs = run.get("outputs")
    if not isinstance(outputs, str) or not outputs or not (path.parent / outputs).is_file():
        return None
    return path.parent / outputs


def read_outputs(path: Path, run: dict[str, Any]) -> SplitOutputs | None:
    """The run's per-sample outputs (``SplitOutputs``) from the JSONL beside it, or None."""
    source = outputs_path(path, run)
    if source is None or run.get("task") not in ("translation", "recognition"):
        return None
    from harness.evaluate import SplitOutputs

    records = check_outputs(source)
    return SplitOutputs(names=[r["name"] for r in records],
                        references=[r["reference"] for r in records],
                        hypotheses=[r["hypothesis"] for r in records])


def _timestamp(run: dict[str, Any]) -> str:
    env = run.get("environment") or {}
    return str(env.get("timestamp") or "")


@dataclass(frozen=True)
class ImportPlan:
    """What an import will write, every input already validated (:func:`plan_import`)."""

    copies: tuple[tuple[Path, Path], ...]  # (input file, destination under sources/)
    runs: tuple[Path, ...]  # run sources after the import (destinations), sorted
    benchmarks: tuple[Path, ...]  # benchmark sources after the import, sorted
    origin: dict[Path, Path]  # each source -> the file to read it from now (input or itself)

    def apply(self) -> tuple[Path, ...]:
        """Write the copies (each atomically); return the destinations."""
        for src, dst in self.copies:
            atomic_write_bytes(dst, src.read_bytes())
        return tuple(dst for _, dst in self.copies)


def plan_import(
    runs: Sequence[str | Path], benchmarks: Sequence[str | Path], out_dir: str | Path
) -> ImportPlan:
    """Validate every input — run JSONs, the outputs JSONL beside each, benchmark JSONs — and
    plan the copies into ``out_dir/sources/`` without writing anything.

    Runs go to ``sources/runs/<run_filename(run)>`` (so a re-run of the same configuration
    replaces its predecessor; among inputs with the same name the newest
    ``environment.timestamp`` wins, ties going to the later input), each with its per-sample
    outputs JSONL beside it when that file exists. Benchmark files go to
    ``sources/benchmarks/<file name>``.
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

    copies: list[tuple[Path, Path]] = []

    def copy(src: Path, dst: Path) -> None:
        if not (dst.exists() and src.resolve() == dst.resolve()):
            copies.append((src, dst))

    for name, (_, path, run) in sorted(chosen_runs.items()):
        copy(path, out / RUN_SOURCES / name)
        # The per-sample outputs travel with their run (``outputs`` is relative to the run file).
        source = outputs_path(path, run)
        if source is not None:
            check_outputs(source)
            copy(source, out / RUN_SOURCES / run["outputs"])
    for name, path in sorted(chosen_benches.items()):
        copy(path, out / BENCH_SOURCES / name)

    origin = {dst: src for src, dst in copies}

    def listing(folder: Path) -> tuple[Path, ...]:
        d = out / folder
        present = {p for p in d.glob("*.json") if p.is_file()} if d.is_dir() else set()
        present |= {dst for dst in origin if dst.parent == d and dst.suffix == ".json"}
        return tuple(sorted(present))

    found_runs, found_benches = listing(RUN_SOURCES), listing(BENCH_SOURCES)
    for p in (*found_runs, *found_benches):
        origin.setdefault(p, p)
    # a committed run's outputs JSONL replaced by this import is read from the input too
    return ImportPlan(tuple(copies), found_runs, found_benches, origin)


def import_sources(
    runs: Sequence[str | Path], benchmarks: Sequence[str | Path], out_dir: str | Path
) -> Sources:
    """Validate the given files (see :func:`plan_import`), then copy them into
    ``out_dir/sources/`` and list all sources. A bad input raises before anything is written."""
    plan = plan_import(runs, benchmarks, out_dir)
    copied = plan.apply()
    return Sources(plan.runs, plan.benchmarks, copied)


def collect_inputs(
    runs_dir: str | Path | None, bench_files: Sequence[str | Path], out_dir: str | Path
) -> Sources:
    """Import every run JSON found under ``runs_dir`` (see :func:`discover_runs`; ``None`` = none)
    and the given benchmark files into ``out_dir/sources/``; return all sources."""
    runs = discover_runs(runs_dir) if runs_dir is not None else []
    return import_sources(runs, bench_files, out_dir)
