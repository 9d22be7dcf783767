"""Run JSON schema (``signbench.run/1``), its validation, and run-file reading and writing.

Every figure SignBench reports comes from one run JSON per (method, dataset, split, profile,
backend, device). Those files are committed next to the generated leaderboard, so they must be
(1) valid — checked by :func:`validate_run`, whose errors name the file and the offending field so a
broken run is fixed at its source, and (2) never half-written — every write here goes to a temporary
file in the target directory, is fsync'ed, and is moved into place with ``os.replace`` (atomic on
POSIX and Windows; ``harness.files``), so a crash leaves either the old file or the new one.

The field-by-field description lives in ``docs/results-schema.md``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import files
from harness.files import atomic_write_bytes, atomic_write_json, atomic_write_text, dumps_json

__all__ = [
    "EFFICIENCY_FIGURES",
    "RECOGNITION_KEYS",
    "SCHEMA",
    "TASKS",
    "TRANSLATION_KEYS",
    "RunFileError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "dumps_json",
    "load_json",
    "load_run",
    "run_filename",
    "slug",
    "validate_run",
    "write_run",
]

SCHEMA = "signbench.run/1"
SCHEMA_PREFIX = "signbench.run/"
TASKS = ("translation", "recognition")
TRANSLATION_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l")
RECOGNITION_KEYS = ("wer", "sub", "del", "ins")
#: Efficiency figures: each is present, and either measured or ``null`` with a reason in
#: ``efficiency.unavailable``.
EFFICIENCY_FIGURES = (
    "latency_ms",
    "fps",
    "gpu_power_w",
    "idle_power_w",
    "energy_per_video_j",
    "peak_memory_mb",
    "peak_rss_mb",
    "params",
)
LATENCY_KEYS = ("p50", "p90", "p99", "mean", "std")
IDENTITY_FIELDS = ("method", "dataset", "lang", "split", "profile", "backend", "device")
TRAINING_KEYS = ("epochs", "steps", "wall_s", "final_losses", "best_dev")


class RunFileError(files.JSONFileError):
    """A results file (run JSON or benchmark JSON) is unreadable or does not match its schema.

    The message always starts with the file (or the ``source`` given) and names the field.
    """


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _fail(source: str, field: str, message: str) -> RunFileError:
    where = f"field '{field}'" if field else "top level"
    return RunFileError(f"{source}: {where}: {message}")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Checker:
    """Small helper so each check reads as one line and every error names file and field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, field: str, message: str) -> RunFileError:
        return _fail(self.source, field, message)

    def get(self, obj: Mapping[str, Any], key: str, prefix: str = "") -> Any:
        field = f"{prefix}{key}"
        if key not in obj:
            raise self.error(field, "missing required field")
        return obj[key]

    def dict_(self, value: Any, field: str, nullable: bool = False) -> dict[str, Any] | None:
        if value is None and nullable:
            return None
        if not isinstance(value, dict):
            want = "an object or null" if nullable else "an object"
            raise self.error(field, f"expected {want}, got {_type_name(value)}")
        return value

    def str_(self, value: Any, field: str, nullable: bool = False) -> str | None:
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not value.strip():
            want = "a non-empty string or null" if nullable else "a non-empty string"
            raise self.error(field, f"expected {want}, got {value!r}")
        return value

    def num(self, value: Any, field: str, nullable: bool = False) -> float | int | None:
        if value is None and nullable:
            return None
        if not _is_number(value):
            want = "a finite number or null" if nullable else "a finite number"
            raise self.error(field, f"expected {want}, got {value!r}")
        return value

    def int_(self, value: Any, field: str, nullable: bool = False) -> int | None:
        if value is None and nullable:
            return None
        if not _is_int(value) or value < 0:
            want = "a non-negative integer or null" if nullable else "a non-negative integer"
            raise self.error(field, f"expected {want}, got {value!r}")
        return value


def _check_accuracy(c: _Checker, accuracy: dict[str, Any], task: str) -> None:
    has_translation = any(k in accuracy for k in TRANSLATION_KEYS)
    has_recognition = any(k in accuracy for k in RECOGNITION_KEYS)
    if task == "translation" or has_translation:
        for key in TRANSLATION_KEYS:
            c.num(c.get(accuracy, key, "accuracy."), f"accuracy.{key}")
        c.str_(c.get(accuracy, "signature", "accuracy."), "accuracy.signature")
    if task == "recognition" or has_recognition:
        for key in RECOGNITION_KEYS:
            c.num(c.get(accuracy, key, "accuracy."), f"accuracy.{key}")
    for key, value in accuracy.items():
        if key.endswith("signature"):
            c.str_(value, f"accuracy.{key}")


def _check_control(c: _Checker, control: dict[str, Any], task: str) -> None:
    """``control``: the shuffled-reference control (``harness.metrics.control``)."""
    from harness.metrics.control import CONTROL_KEYS

    for key in ("shuffles", "samples", "distinct_outputs"):
        c.int_(c.get(control, key, "control."), f"control.{key}")
    for key in CONTROL_KEYS[task]:
        c.num(c.get(control, key, "control."), f"control.{key}")
    # the permutation test (optional: runs written before it have neither field)
    if ("p_value" in control) != ("permutations" in control):
        raise c.error("control.p_value", "p_value and permutations come together")
    if "p_value" in control:
        permutations = c.int_(control["permutations"], "control.permutations")
        if not permutations:
            raise c.error("control.permutations", "expected at least 1 permutation")
        p_value = c.num(control["p_value"], "control.p_value")
        if not 0.0 < p_value <= 1.0:
            raise c.error("control.p_value", f"expected a p-value in (0, 1], got {p_value!r}")


def _check_efficiency(c: _Checker, eff: dict[str, Any]) -> None:
    p = "efficiency."
    unavailable = c.dict_(c.get(eff, "unavailable", p), "efficiency.unavailable")
    assert unavailable is not None
    for key, reason in unavailable.items():
        c.str_(reason, f"efficiency.unavailable.{key}")
    for key in EFFICIENCY_FIGURES:
        value = c.get(eff, key, p)
        if value is None:
            if key not in unavailable:
                raise c.error(
                    f"efficiency.{key}",
                    "is null but efficiency.unavailable gives no reason for it",
                )
            continue
        if key == "latency_ms":
            lat = c.dict_(value, "efficiency.latency_ms")
            assert lat is not None
            for k in LATENCY_KEYS:
                c.num(c.get(lat, k, "efficiency.latency_ms."), f"efficiency.latency_ms.{k}")
            c.int_(c.get(lat, "n", "efficiency.latency_ms."), "efficiency.latency_ms.n")
        elif key == "params":
            params = c.dict_(value, "efficiency.params")
            assert params is not None
            for k in ("total", "trainable"):
                c.int_(c.get(params, k, "efficiency.params."), f"efficiency.params.{k}")
        else:
            c.num(value, f"efficiency.{key}")


def _check_training(c: _Checker, training: dict[str, Any]) -> None:
    p = "training."
    c.num(c.get(training, "epochs", p), "training.epochs", nullable=True)
    c.int_(c.get(training, "steps", p), "training.steps")
    c.num(c.get(training, "wall_s", p), "training.wall_s")
    losses = c.dict_(c.get(training, "final_losses", p), "training.final_losses")
    assert losses is not None
    for k, v in losses.items():
        c.num(v, f"training.final_losses.{k}", nullable=True)
    c.dict_(c.get(training, "best_dev", p), "training.best_dev", nullable=True)


def _check_environment(c: _Checker, env: dict[str, Any]) -> None:
    c.str_(c.get(env, "timestamp", "environment."), "environment.timestamp")
    c.str_(c.get(env, "git_commit", "environment."), "environment.git_commit", nullable=True)
    dirty = env.get("git_dirty")
    if dirty is not None and not isinstance(dirty, bool):
        raise c.error("environment.git_dirty", f"expected true, false or null, got {dirty!r}")
    gpu = env.get("gpu")
    if gpu is not None and not isinstance(gpu, dict):
        raise c.error("environment.gpu", f"expected an object or null, got {_type_name(gpu)}")


def validate_run(obj: Any, source: str = "<run>") -> dict[str, Any]:
    """Check ``obj`` against ``signbench.run/1``; return it unchanged when valid.

    Raises :class:`RunFileError` whose message names ``source`` (the file) and the field: a missing
    required field, a value of the wrong type, a null efficiency figure without a reason, or an
    unknown schema version. Unknown extra fields are allowed (forward compatibility).
    """
    c = _Checker(source)
    if not isinstance(obj, dict):
        raise c.error("", f"expected a JSON object, got {_type_name(obj)}")
    schema = c.get(obj, "schema")
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith(SCHEMA_PREFIX):
            raise c.error("schema", f"unknown schema version {schema!r} (this reads {SCHEMA!r})")
        raise c.error("schema", f"expected {SCHEMA!r}, got {schema!r}")
    for key in IDENTITY_FIELDS:
        c.str_(c.get(obj, key), key)
    task = c.get(obj, "task")
    if task not in TASKS:
        raise c.error("task", f"expected one of {list(TASKS)}, got {task!r}")

    accuracy = c.dict_(c.get(obj, "accuracy"), "accuracy", nullable=True)
    if accuracy is not None:
        _check_accuracy(c, accuracy, task)
    efficiency = c.dict_(c.get(obj, "efficiency"), "efficiency")
    assert efficiency is not None
    _check_efficiency(c, efficiency)
    training = c.dict_(c.get(obj, "training"), "training", nullable=True)
    if training is not None:
        _check_training(c, training)
    env = c.dict_(c.get(obj, "environment"), "environment")
    assert env is not None
    _check_environment(c, env)
    outputs = c.str_(c.get(obj, "outputs"), "outputs", nullable=True)
    if outputs is not None and (
        Path(outputs).is_absolute()
        or outputs.startswith(("/", "\\"))
        or ".." in Path(outputs).parts
    ):
        raise c.error("outputs", f"expected a path relative to the run file, got {outputs!r}")
    if "control" in obj:
        control = c.dict_(obj["control"], "control", nullable=True)
        if control is not None:
            _check_control(c, control, task)
    if "config" in obj:
        c.dict_(obj["config"], "config", nullable=True)
    if "variant" in obj:
        c.str_(obj["variant"], "variant", nullable=True)
    return obj


# --------------------------------------------------------------------------------------------
# Reading and writing run files
# --------------------------------------------------------------------------------------------


def load_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; unreadable files and invalid JSON raise :class:`RunFileError`."""
    try:
        return files.load_json(path)
    except files.JSONFileError as exc:
        raise RunFileError(str(exc)) from exc


def load_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate one run JSON; errors (:class:`RunFileError`) name the file."""
    return validate_run(load_json(path), source=str(path))


_SLUG_RE = re.compile(r"[^a-z0-9.]+")


def slug(text: str) -> str:
    """Lowercase, runs of anything but ``[a-z0-9.]`` become one ``-`` (``"NVIDIA H100 80GB HBM3"``
    → ``"nvidia-h100-80gb-hbm3"``); never empty, never contains ``__``."""
    out = _SLUG_RE.sub("-", str(text).lower()).strip("-.")
    return out or "unknown"


#: longest variant part of a run file / folder name before it is shortened (file systems allow
#: 255 bytes per name; the other parts take ~80)
MAX_VARIANT_SLUG = 96


def variant_slug(variant: str) -> str:
    """``slug(variant)``, or for a long one (many ``--set`` overrides) its first characters plus
    a hash of the whole, so names stay within file-system limits and stay distinct."""
    text = slug(variant)
    if len(text) <= MAX_VARIANT_SLUG:
        return text
    digest = hashlib.sha1(str(variant).encode("utf-8")).hexdigest()[:10]
    return f"{text[:MAX_VARIANT_SLUG - 11].rstrip('-.')}-{digest}"


def run_filename(run: Mapping[str, Any]) -> str:
    """``<method>__<dataset>-<lang>__<split>__<profile>__<backend>__<device>[__<variant>].json``,
    each part slugged; the same run key always maps to the same name, so a re-run replaces its
    old file (``variant``: the method options of an ablation run, e.g. ``stream=rgb``)."""
    try:
        parts = [
            slug(run["method"]),
            f"{slug(run['dataset'])}-{slug(run['lang'])}",
            slug(run["split"]),
            slug(run["profile"]),
            slug(run["backend"]),
            slug(run["device"]),
        ]
    except KeyError as exc:
        raise RunFileError(f"<run>: field {exc.args[0]!r}: missing required field") from exc
    if run.get("variant"):  # ablations / single-stream runs of one method keep their own file
        parts.append(variant_slug(run["variant"]))
    return "__".join(parts) + ".json"


def write_run(run: dict[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Validate ``run`` and write it atomically to ``out_dir / run_filename(run)``."""
    try:
        name = run_filename(run)
    except (RunFileError, TypeError, AttributeError):
        name = "<new run>"  # validate_run below explains what is wrong
    target = Path(out_dir) / name
    validate_run(run, source=str(target))
    return atomic_write_json(target, run)
