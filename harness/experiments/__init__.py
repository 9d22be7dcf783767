"""Experiments: studies that are more than one train-and-evaluate run (``signbench experiment``).

Some of the papers' tables compare several pipelines or retrain under a perturbation — SignX's
efficiency comparison of latent-space vs pixel-space vs Transformer pipelines (Table 6), its
modality ablation (Table 5). An experiment module of this package registers such a study with
:func:`register_experiment` and is listed in :data:`BUILTIN_EXPERIMENTS` (imported on first use,
the way ``baselines.BUILTIN_METHODS`` lists the methods); ``signbench experiment NAME`` runs it
and :func:`run_experiment` records the result:

* ``<out>/experiments/<NAME>.json`` — schema ``signbench.experiment/1``: ``name``, ``title``,
  ``columns``, ``rows`` (one object per table row), ``notes``, free-form ``data``, the settings it
  ran with, and ``environment`` (``harness.measure.capture_environment``: device, commit, date);
* ``<results>/experiments/<NAME>.md`` — the table, regenerated from that JSON, with the JSON copied
  beside the other sources (``<results>/sources/experiments/<NAME>.json``) so every number in
  ``results/`` has its source committed next to it.

An experiment function takes keyword arguments ``out`` (a folder it may use for its own runs),
``device``, ``profile``, ``lang`` (None = the experiment's default), ``overrides`` (``--set``) and
``progress``, and returns ``{"title", "columns", "rows", "notes", "data"}`` (``notes`` and
``data`` optional). Writes are atomic; a failing experiment writes nothing.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.results import atomic_write_json, atomic_write_text, load_json, slug

SCHEMA = "signbench.experiment/1"

#: The built-in experiment modules, imported on first use (each registers its studies).
BUILTIN_EXPERIMENTS: tuple[str, ...] = ("harness.experiments.signx",)

ExperimentFn = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its name, one-line help and the function that runs it."""

    name: str
    help: str
    fn: ExperimentFn


_EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(name: str, help: str = "") -> Callable[[ExperimentFn], ExperimentFn]:
    """Decorator registering ``fn`` as experiment ``name`` (unique; a slug-safe name)."""
    if slug(name) != name:
        raise ValueError(f"experiment name {name!r} must be lower-case letters, digits, '-', '_'")

    def wrap(fn: ExperimentFn) -> ExperimentFn:
        if name in _EXPERIMENTS:
            raise ValueError(f"experiment {name!r} is registered twice")
        _EXPERIMENTS[name] = Experiment(name=name, help=help, fn=fn)
        return fn

    return wrap


def _import_experiments() -> None:
    for module in BUILTIN_EXPERIMENTS:
        importlib.import_module(module)


def list_experiments() -> list[Experiment]:
    """Registered experiments (the :data:`BUILTIN_EXPERIMENTS` and any registered since), sorted
    by name."""
    _import_experiments()
    return [_EXPERIMENTS[k] for k in sorted(_EXPERIMENTS)]


def get_experiment(name: str) -> Experiment:
    known = [e.name for e in list_experiments()]
    if name not in _EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; registered: {', '.join(known) or 'none'}")
    return _EXPERIMENTS[name]


def _json_safe(obj: Any) -> Any:
    from harness.runner import _json_safe as safe

    return safe(obj)


def validate_result(name: str, result: Any) -> dict[str, Any]:
    """The experiment's return value checked: a title, column names, rows keyed by them."""
    if not isinstance(result, Mapping):
        raise TypeError(f"experiment {name!r} returned {type(result).__name__}, expected a dict")
    for key in ("title", "columns", "rows"):
        if key not in result:
            raise ValueError(f"experiment {name!r}: result has no {key!r}")
    columns = result["columns"]
    if not (isinstance(columns, Sequence) and columns and all(isinstance(c, str) for c in columns)):
        raise ValueError(f"experiment {name!r}: 'columns' must be a non-empty list of strings")
    rows = result["rows"]
    if not isinstance(rows, Sequence):
        raise ValueError(f"experiment {name!r}: 'rows' must be a list of objects")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"experiment {name!r}: rows[{i}] is not an object")
        unknown = sorted(set(row) - set(columns))
        if unknown:
            raise ValueError(f"experiment {name!r}: rows[{i}] has keys {unknown} that are not "
                             f"columns {list(columns)}")
    return dict(result)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_experiment(record: Mapping[str, Any], source: str) -> str:
    """Markdown for one experiment record: title, table, notes, provenance."""
    from tabulate import tabulate

    columns = list(record["columns"])
    body = [[_cell(row.get(c)) for c in columns] for row in record["rows"]]
    numeric = [all(isinstance(row.get(c), (int, float)) or row.get(c) is None
                   for row in record["rows"]) for c in columns]
    table = tabulate(body, headers=columns, tablefmt="pipe", disable_numparse=True,
                     colalign=["right" if n else "left" for n in numeric])
    env = record.get("environment") or {}
    commit = str(env.get("git_commit") or "unknown")[:7] + ("-dirty" if env.get("git_dirty")
                                                             else "")
    device = record.get("settings", {}).get("device_name", "unknown")
    parts = [f"Generated by `signbench experiment {record['name']}` from `{source}`; do not edit "
             f"by hand.", "", f"# {record['title']}", "", table, "",
             f"Device: {device}; commit {commit}; {str(env.get('timestamp', ''))[:10]}; profile "
             f"{record.get('settings', {}).get('profile')}."]
    if record.get("notes"):
        parts += ["", str(record["notes"])]
    return "\n".join(parts).rstrip("\n") + "\n"


def run_experiment(name: str, *, out: str | Path = "runs", results: str | Path | None = "results",
                   device: str = "auto", profile: str = "tiny", lang: str | None = None,
                   overrides: Mapping[str, Any] | None = None,
                   progress: bool = True) -> tuple[dict[str, Any], Path, Path | None]:
    """Run experiment ``name``; returns (record, JSON path, markdown path or None)."""
    from harness.measure import capture_environment
    from harness.runner import device_name, resolve_device

    experiment = get_experiment(name)
    dev = resolve_device(device)
    result = validate_result(name, experiment.fn(
        out=Path(out) / "experiments" / name, device=dev, profile=profile, lang=lang,
        overrides=dict(overrides or {}), progress=progress))
    record = _json_safe({
        "schema": SCHEMA, "name": name, "title": result["title"],
        "columns": list(result["columns"]), "rows": [dict(r) for r in result["rows"]],
        "notes": result.get("notes", ""), "data": result.get("data", {}),
        "settings": {"device": str(dev), "device_name": device_name(dev), "profile": profile,
                     "lang": lang, "overrides": dict(overrides or {})},
        "environment": capture_environment(),
    })
    json_path = atomic_write_json(Path(out) / "experiments" / f"{name}.json", record)
    md_path = None
    if results is not None:
        md_path = write_experiment_markdown(json_path, Path(results))
    return record, json_path, md_path


def write_experiment_markdown(json_path: str | Path, results: str | Path) -> Path:
    """Copy an experiment JSON under ``<results>/sources/experiments/`` and render its table."""
    record = load_json(json_path)
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ValueError(f"{json_path}: not a {SCHEMA} file")
    results = Path(results)
    source = atomic_write_json(results / "sources" / "experiments" / f"{record['name']}.json",
                               record)
    rel = source.relative_to(results).as_posix()
    return atomic_write_text(results / "experiments" / f"{record['name']}.md",
                             render_experiment(record, rel))


def describe() -> str:
    """One line per registered experiment (for ``signbench experiment --list``)."""
    return "\n".join(f"{e.name:<28} {e.help}" for e in list_experiments()) or "none registered"


__all__ = ["BUILTIN_EXPERIMENTS", "SCHEMA", "Experiment", "describe", "get_experiment",
           "list_experiments", "register_experiment", "render_experiment", "run_experiment",
           "validate_result", "write_experiment_markdown"]
