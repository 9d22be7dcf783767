"""Learning-rate schedules of the training stages: warm-up + cosine, Noam, constant, one-cycle.

Every schedule is stepped once per optimiser step (not per epoch) and is a
``torch.optim.lr_scheduler`` object, so its ``state_dict`` goes into the checkpoint sidecar and a
resumed run continues the curve exactly.

Choices (papers rarely spell them out):

* ``cosine`` — linear warm-up from 0 to the stage lr over ``warmup_steps``, then half-cosine decay
  to ``min_lr_ratio × lr`` (``Stage.options["min_lr_ratio"]``, default 0) at the last step.
* ``noam`` — Vaswani et al. 2017: ``lr × min(s^-0.5, s · w^-1.5) · w^0.5`` (normalised so the peak
  at ``s = w`` is the stage lr; ``w = max(1, warmup_steps)``), with ``s`` counted from 1.
* ``constant`` — linear warm-up, then the stage lr.
* ``onecycle`` — ``torch.optim.lr_scheduler.OneCycleLR`` (cosine annealing, ``max_lr`` = stage lr,
  ``pct_start`` = ``warmup_steps / total_steps``, or 0.3 when no warm-up is given) with
  ``cycle_momentum=False`` so AdamW's betas are left as configured.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SCHEDULERS = ("cosine", "noam", "constant", "onecycle")


def _warmup(step: int, warmup_steps: int) -> float:
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def lr_lambda(name: str, total_steps: int, warmup_steps: int = 0,
              min_lr_ratio: float = 0.0) -> Callable[[int], float]:
    """The multiplier of the base lr after ``step`` optimiser steps, for ``LambdaLR`` schedules."""
    if name not in ("cosine", "noam", "constant"):
        raise ValueError(f"no lr multiplier for scheduler {name!r}; expected cosine, noam or "
                         f"constant")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")

    if name == "constant":
        return lambda step: _warmup(step, warmup_steps)
    if name == "noam":
        w = max(1, warmup_steps)

        def noam(step: int) -> float:
            s = step + 1
            return min(s ** -0.5, s * w ** -1.5) * w ** 0.5

        return noam

    def cosine(step: int) -> float:
        if step < warmup_steps:
            return _warmup(step, warmup_steps)
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return cosine


def make_scheduler(optimizer: torch.optim.Optimizer, name: str, total_steps: int,
                   warmup_steps: int = 0, min_lr_ratio: float = 0.0
                   ) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler ``name`` (one of :data:`SCHEDULERS`) over ``total_steps`` optimiser steps."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {SCHEDULERS}")
    total_steps = max(1, int(total_steps))
    if name == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        pct = warmup_steps / total_steps if warmup_steps > 0 else 0.3
        pct = min(max(pct, 1.0 / total_steps), 0.99)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct,
            anneal_strategy="cos", cycle_momentum=False)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(name, total_steps, warmup_steps, min_lr_ratio))
