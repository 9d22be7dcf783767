"""Parameter counts of a model.

Counts come from ``numel()`` only, so they work for models built on the ``meta`` device (paper-size
configurations without allocating weights). Parameters shared between modules (tied embeddings)
are counted once, by identity. ``trainable`` means ``requires_grad``.
"""

from __future__ import annotations

import torch
from torch.nn.parameter import UninitializedParameter


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """``{"total", "trainable", "frozen"}`` parameter counts of ``model`` (shared counted once)."""
    seen: set[int] = set()
    total = trainable = 0
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        if isinstance(p, UninitializedParameter):
            raise ValueError(
                f"parameter {name!r} is uninitialized (lazy module); run a forward pass first"
            )
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
    return {"total": total, "trainable": trainable, "frozen": total - trainable}


_UNITS: tuple[tuple[str, float], ...] = (("K", 1e3), ("M", 1e6), ("B", 1e9), ("T", 1e12))


def format_count(n: int | float) -> str:
    """Human-readable count with one decimal: ``512K``, ``65.9M``, ``1.2B`` (plain below 1000)."""
    sign = "-" if n < 0 else ""
    a = abs(n)
    if a < 1000:
        return f"{sign}{int(a) if float(a).is_integer() else a}"
    i = 0
    while i + 1 < len(_UNITS) and a >= _UNITS[i + 1][1]:
        i += 1
    value = round(a / _UNITS[i][1], 1)
    if value >= 1000 and i + 1 < len(_UNITS):  # 999.96K -> 1M, not 1000K
        i += 1
        value = round(a / _UNITS[i][1], 1)
    unit = _UNITS[i][0]
    return f"{sign}{f'{value:.1f}'.removesuffix('.0')}{unit}"
