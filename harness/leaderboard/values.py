"""Reading single figures out of source JSON: finite numbers, nested keys, commits, dates.

Shared by the run rows (:mod:`harness.leaderboard.runs`), the benchmark rows
(:mod:`harness.leaderboard.kernels`), the plots and the benchmark-file check. A value that is
missing or not a finite number reads as ``None``, which the tables show as ``—`` / empty.
Conventions: ``docs/results-schema.md`` ("Table conventions").
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["date", "finite", "get", "natural_key", "num", "short_commit", "text"]


def finite(value: Any) -> bool:
    """A finite int or float (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def num(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    return float(value) if finite(value) else None


def get(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]…``, or None as soon as a level is not an object."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def text(value: Any) -> str:
    """``str(value)``; None reads as the empty string."""
    return "" if value is None else str(value)


def natural_key(label: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key ordering digit runs by value (``B=64`` before ``B=128``)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", label)
        if part
    )


def short_commit(commit: Any, dirty: Any) -> str | None:
    """The first 7 characters of a git commit, ``-dirty`` when it had uncommitted changes."""
    if not isinstance(commit, str) or not commit:
        return None
    return commit[:7] + ("-dirty" if dirty is True else "")


def date(stamp: Any) -> str | None:
    """``YYYY-MM-DD`` of an ISO timestamp, or None."""
    if isinstance(stamp, str) and re.match(r"\d{4}-\d{2}-\d{2}", stamp):
        return stamp[:10]
    return None
