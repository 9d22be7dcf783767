"""Checkpoint averaging over the top-k epochs by a dev metric (SignX Sec. 4.2: best 5 by WER).

The harness trainer keeps only ``last`` and ``best`` checkpoints, so SignX keeps its own
snapshots: :class:`TopKAverager` holds CPU copies of the ``k`` best state dicts seen so far
(by ``metric``, minimised by default) and :func:`average_state_dicts` averages them
element-wise. Floating-point tensors are averaged (in float64, cast back); integer tensors
(BatchNorm's ``num_batches_tracked``) are taken from the best snapshot, since an average of
counters means nothing. Notes: ``docs/methods/signx.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of ``states`` (same keys and shapes); non-float entries from states[0]."""
    if not states:
        raise ValueError("average_state_dicts: no state dicts to average")
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys:
            missing = sorted(set(keys) ^ set(s))
            raise ValueError(f"average_state_dicts: state #{i} has other keys ({missing[:5]})")
    out = {}
    for key in keys:
        first = states[0][key]
        for i, s in enumerate(states[1:], 1):
            if s[key].shape != first.shape:
                raise ValueError(f"average_state_dicts: {key!r} has shape {tuple(s[key].shape)} "
                                 f"in state #{i} but {tuple(first.shape)} in state #0")
        if first.is_floating_point():
            acc = torch.zeros_like(first, dtype=torch.float64)
            for s in states:
                acc += s[key].to(torch.float64)
            out[key] = (acc / len(states)).to(first.dtype)
        else:
            out[key] = first.clone()
    return out


class TopKAverager:
    """Keeps the ``k`` best snapshots of a module by a metric and averages them on request."""

    def __init__(self, k: int = 5, mode: str = "min") -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.k, self.mode = k, mode
        self.entries: list[tuple[float, int, dict[str, torch.Tensor]]] = []
        self._seen = 0

    def _key(self, metric: float) -> float:
        return metric if self.mode == "min" else -metric

    def consider(self, metric: float, module: nn.Module) -> bool:
        """Snapshot ``module`` if ``metric`` ranks among the best ``k``; returns whether kept."""
        self._seen += 1
        if len(self.entries) == self.k and self._key(metric) >= self._key(self.entries[-1][0]):
            return False
        snap = {n: t.detach().to("cpu", copy=True) for n, t in module.state_dict().items()}
        self.entries.append((float(metric), self._seen, snap))
        self.entries.sort(key=lambda e: (self._key(e[0]), e[1]))
        del self.entries[self.k:]
        return True

    @property
    def metrics(self) -> list[float]:
        return [e[0] for e in self.entries]

    def average(self) -> dict[str, torch.Tensor]:
        return average_state_dicts([e[2] for e in self.entries])

    def apply(self, module: nn.Module) -> dict[str, float | int | list[float]]:
        """Load the average into ``module``; returns what was averaged."""
        if not self.entries:
            raise ValueError("TopKAverager.apply: no snapshot was recorded")
        module.load_state_dict(self.average())
        return {"averaged": len(self.entries), "metrics": self.metrics}

    def clear(self) -> None:
        self.entries.clear()
        self._seen = 0

    def state(self) -> dict[str, Any]:
        """The kept snapshots as plain lists / tensors (saved with a training checkpoint)."""
        return {"seen": self._seen,
                "entries": [[metric, seen, snap] for metric, seen, snap in self.entries]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state` returned (a resumed run keeps its snapshots)."""
        self._seen = int(state.get("seen", 0))
        self.entries = [(float(m), int(n), dict(snap)) for m, n, snap in state.get("entries", [])]


__all__ = ["TopKAverager", "average_state_dicts"]
