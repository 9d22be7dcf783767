"""One-time migration: store the shuffled-reference control in run JSONs written before it.

Runs written before the runner stored ``control`` (or before ``control`` had the permutation
test's ``p_value`` / ``permutations``) used to get them computed by the leaderboard at every
rebuild, from the per-sample outputs JSONL beside the run. This migration computes them once —
the same functions with the same seeds: :func:`harness.evaluate.control_of` for a run without a
control, :func:`harness.evaluate.permutation_test_of` added to a stored control without a
p-value — validates the result (:func:`harness.results.validate_run`) and rewrites the run JSON
atomically (:func:`harness.files.atomic_write_json`). Building the leaderboard then only reads.

A run that already has a p-value, or has no outputs JSONL to compute from, is left as it is
(its cells stay ``—`` / empty); running the migration again changes nothing. Every run is
computed before any file is written, so a bad outputs JSONL leaves the folder untouched.

Usage: ``python -m harness.leaderboard.migrate results/sources/runs [RUN_JSON_OR_DIR ...]``.
The control itself: ``harness.metrics.control``; the run schema: ``docs/results-schema.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.files import atomic_write_json
from harness.leaderboard.runs import stored_control
from harness.leaderboard.sources import discover_runs, read_outputs
from harness.results import RunFileError, load_run, validate_run

__all__ = ["filled_control", "main", "migrate_runs"]


def filled_control(path: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    """The run's control with what its outputs JSONL beside ``path`` can add: the stored one when
    it has a p-value or there is no JSONL; else computed (``control_of``) when none is stored;
    else the stored one with the permutation test (``permutation_test_of``) added. None when the
    run has no control and none can be computed."""
    from harness.evaluate import cleanup_for, control_of, permutation_test_of

    stored = stored_control(run)
    if stored is not None and "p_value" in stored:
        return stored
    split = read_outputs(path, run)
    if split is None:
        return stored
    if stored is None:
        return control_of(run["task"], split, lang=run["lang"], dataset=run["dataset"])
    return {**stored, **permutation_test_of(run["task"], split.hypotheses, split.references,
                                            lang=run["lang"],
                                            cleanup=cleanup_for(run["dataset"]))}


def _run_files(targets: Sequence[str | Path]) -> list[Path]:
    """Run JSONs of the targets: a folder's (see :func:`discover_runs`) or the file itself."""
    files: list[Path] = []
    for target in map(Path, targets):
        files += discover_runs(target) if target.is_dir() else [target]
    return files


def migrate_runs(targets: Sequence[str | Path]) -> list[Path]:
    """Fill the control into every run JSON of ``targets`` (folders or files) that lacks it or
    its p-value and has the outputs JSONL to compute it from; return the files rewritten.

    Raises :class:`~harness.results.RunFileError` naming the file for a bad run JSON or outputs
    JSONL; then nothing is written.
    """
    migrated: list[tuple[Path, dict[str, Any]]] = []
    for path in _run_files(targets):
        run = load_run(path)
        control = filled_control(path, run)
        if control is None or control == stored_control(run):
            continue
        migrated.append((path, validate_run({**run, "control": control}, source=str(path))))
    for path, run in migrated:
        atomic_write_json(path, run)
    return [path for path, _ in migrated]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.leaderboard.migrate",
        description="store the shuffled-reference control and its permutation-test p-value in "
        "run JSONs written before the runner stored them (computed from the outputs JSONL)",
    )
    parser.add_argument("targets", nargs="+", metavar="RUN_JSON_OR_DIR",
                        help="run JSON files, or folders searched for them")
    args = parser.parse_args(argv)
    try:
        migrated = migrate_runs(args.targets)
    except RunFileError as err:
        print(f"migrate: error: {err}", file=sys.stderr)
        return 1
    for path in migrated:
        print(f"migrated {path}")
    print(f"{len(migrated)} run(s) migrated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
