"""The types every stand-in trainer shares: its data, its recipe, its report, its signature.

A trainer (``harness.pretrain.TRAINERS[kind]``) is called as ``trainer(standin, data, out_dir,
recipe=..., progress=...)``: it trains the stand-in ``standin`` (a ``harness.method.StandIn``)
on ``data`` with ``recipe`` and writes the folder the method's ``standin.field`` option loads
(``out_dir`` exists and is empty; the cache moves it into place afterwards and writes the
manifest). It returns a :class:`TrainReport`. See docs/pretrain.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.data.sample import Sample
from harness.method import StandIn


@dataclass(frozen=True)
class Recipe:
    """How a stand-in is trained: optimiser steps over ``epochs`` passes of the training split.

    AdamW with ``lr`` and ``weight_decay``, linear warm-up over the first ``warmup`` fraction of
    the steps then cosine decay to 0, gradient norm clipped at ``grad_clip`` (``None``: not
    clipped), everything seeded by ``seed``. ``options`` holds kind-specific settings (e.g. the
    mBART noise: ``mask_ratio``, ``poisson_lambda``). All of it goes into the stand-in's hash.
    """

    epochs: int
    lr: float
    batch_size: int
    seed: int = 0
    weight_decay: float = 0.01
    warmup: float = 0.1
    grad_clip: float | None = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"recipe: epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"recipe: batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"recipe: lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"recipe: warmup must be in [0, 1), got {self.warmup}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the manifest's ``recipe`` and part of the hash)."""
        out = asdict(self)
        out["options"] = dict(self.options)
        return out


@dataclass(frozen=True)
class PretrainData:
    """The corpus a stand-in trains on: the training split of one dataset.

    ``samples`` are the split's ``Sample`` s (vision / keypoint / pose trainers read their
    streams); ``texts`` their non-empty target sentences, in order (language-model trainers);
    ``corpus`` the fingerprint that goes into the hash (dataset, lang, train_size, resolution,
    seed, generator version for the synthetic corpus).
    """

    samples: Sequence[Sample]
    lang: str
    texts: Sequence[str]
    dataset: str = "synthetic"
    resolution: int | None = None
    seed: int = 0
    corpus: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TrainReport:
    """What a trainer tells the cache: its losses and the size of what it built.

    ``step_losses``: the training loss of every optimiser step; ``epoch_losses``: their mean
    per epoch; ``parameters``: parameters of the saved model; ``files``: names (relative to
    ``out_dir``) the method loads, for the manifest (empty: every file in the folder);
    ``extra``: anything else worth keeping in the manifest (JSON-able).
    """

    step_losses: list[float]
    epoch_losses: list[float]
    parameters: int
    files: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final_loss(self) -> float | None:
        """The last epoch's mean loss (``None`` when nothing was trained)."""
        return self.epoch_losses[-1] if self.epoch_losses else None


class Trainer(Protocol):
    """The one signature of every stand-in trainer (see the module docstring)."""

    def __call__(self, standin: StandIn, data: PretrainData, out_dir: Path, *,
                 recipe: Recipe, progress: bool) -> TrainReport: ...


__all__ = ["PretrainData", "Recipe", "TrainReport", "Trainer"]
