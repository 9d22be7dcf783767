"""The one interface the runner drives for every SLT method.

A method is an ``nn.Module`` subclass of :class:`SLTMethod` that declares

* ``key`` — its registry name (``"hypersign"``), ``task`` — ``"translation"`` (text, scored by
  BLEU/ROUGE) or ``"recognition"`` (glosses, scored by WER);
* ``inputs`` — the ``Sample`` streams it reads from a batch (``"keypoints"``, ``"frames"``,
  ``"poses"``, ``"lips"``, ``"frame_labels"``, ``"features"``), and whether it needs tokenised
  text (``needs_text``) or gloss ids (``needs_gloss``);
* ``stages()`` — its training schedule: a list of :class:`Stage` (which parameters train, which
  losses, epochs, optimiser and scheduler settings);
* ``training_step(batch, state) -> dict`` of named scalar losses, ``"loss"`` being the one the
  trainer back-propagates (the others are logged);
* ``generate(batch, beam_size, length_penalty, max_len) -> list[str]`` — text (translation) or a
  space-separated gloss sequence (recognition), one per batch item;
* ``frames_per_batch(batch)`` — video frames a batch holds, for FPS.

Methods are built by ``baselines.get_method(key, profile, **overrides)`` with ``profile="tiny"``
(trains on 2 CPU cores in minutes) or ``"paper"`` (the paper's dimensions; random init unless a
local checkpoint is given; buildable on the ``meta`` device for parameter counts). A method that
needs a text tokenizer or gloss vocabulary takes it as the ``tokenizer=`` / ``gloss_vocab=``
override; the runner trains both on the training split before building the method.

Every stage of a forward pass runs inside ``self.nvtx(stage)`` — an NVTX range named
``slt/<key>/<stage>`` (``frontend``, ``fusion``, ``encoder``, ``decoder``, ``beam_search``, ...) —
so a user can profile any method with Nsight.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from harness.measure.nvtx import nvtx_range as _nvtx_range
from harness.measure.nvtx import range_name

SCHEDULERS = ("cosine", "noam", "constant", "onecycle")


@dataclass(frozen=True)
class Stage:
    """One training stage.

    ``trainable`` lists parameter-name prefixes that train in this stage (``("",)`` = every
    parameter); ``frozen`` lists prefixes excluded again (e.g. a frozen LLM inside a trainable
    wrapper). ``losses`` names the entries of ``training_step``'s output summed into ``"loss"`` —
    the method computes the sum itself; the field documents the stage and lets the trainer check
    that the step returned them. ``monitor`` is the dev metric that picks the best checkpoint
    (``"bleu4"`` and ``"rouge_l"`` are maximised, ``"wer"`` and ``"loss"`` minimised).
    """

    name: str
    epochs: int
    lr: float = 1e-3
    weight_decay: float = 0.01
    trainable: tuple[str, ...] = ("",)
    frozen: tuple[str, ...] = ()
    losses: tuple[str, ...] = ("loss",)
    scheduler: str = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    monitor: str = "bleu4"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"stage {self.name!r}: epochs must be >= 0, got {self.epochs}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"stage {self.name!r}: unknown scheduler {self.scheduler!r}; "
                             f"expected one of {SCHEDULERS}")
        if self.monitor not in ("bleu4", "rouge_l", "wer", "loss"):
            raise ValueError(f"stage {self.name!r}: unknown monitor {self.monitor!r}")

    def trains(self, parameter_name: str) -> bool:
        """Whether the named parameter is trainable in this stage."""
        included = any(parameter_name.startswith(p) for p in self.trainable)
        excluded = any(parameter_name.startswith(p) for p in self.frozen)
        return included and not excluded


@dataclass
class TrainState:
    """Where training is, handed to ``training_step`` (for schedules such as HyperSign's α)."""

    stage: Stage
    stage_index: int
    epoch: int  # within the stage, from 0
    step: int  # optimiser steps taken in this stage
    total_steps: int  # optimiser steps this stage will take
    global_step: int  # optimiser steps over all stages

    @property
    def progress(self) -> float:
        """Fraction of the stage done, in [0, 1]."""
        return min(1.0, self.step / max(1, self.total_steps))


class SLTMethod(nn.Module):
    """Base class of the five methods (see the module docstring for the contract)."""

    key: ClassVar[str] = ""
    task: ClassVar[str] = "translation"
    inputs: ClassVar[tuple[str, ...]] = ()
    needs_text: ClassVar[bool] = True
    needs_gloss: ClassVar[bool] = False

    def __init__(self, profile: str) -> None:
        super().__init__()
        self.profile = profile

    # -- the contract ------------------------------------------------------------------------

    def stages(self) -> list[Stage]:
        raise NotImplementedError

    def training_step(self, batch: Any, state: TrainState) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, batch: Any, beam_size: int = 5, length_penalty: float = 1.0,
                 max_len: int = 60) -> list[str]:
        raise NotImplementedError

    def forward(self, batch: Any, state: TrainState) -> dict[str, torch.Tensor]:
        """``training_step`` — so DistributedDataParallel's forward hooks see every step."""
        return self.training_step(batch, state)

    # -- helpers -----------------------------------------------------------------------------

    def frames_per_batch(self, batch: Any) -> int:
        """Video frames in ``batch`` (the sum of per-sample lengths), for FPS."""
        return int(batch.lengths.sum().item())

    def count_parameters_by_group(self, groups: dict[str, tuple[str, ...]]
                                  ) -> tuple[int, int, dict[str, int]]:
        """(total, trainable, per-group counts) for ``param_report``: each parameter counts
        towards the first group one of whose name prefixes it starts with (or none); works on
        the ``meta`` device."""
        components = dict.fromkeys(groups, 0)
        total = trainable = 0
        for name, p in self.named_parameters():
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
            for group, prefixes in groups.items():
                if name.startswith(prefixes):
                    components[group] += p.numel()
                    break
        return total, trainable, components

    def config_dict(self) -> dict[str, Any]:
        """The method's configuration for the run JSON (override to add more)."""
        config = getattr(self, "config", None)
        if config is None:
            return {}
        from dataclasses import asdict, is_dataclass

        return asdict(config) if is_dataclass(config) else dict(vars(config))

    @contextlib.contextmanager
    def nvtx(self, stage: str) -> Iterator[None]:
        """NVTX range ``slt/<key>/<stage>`` (near-free without a profiler)."""
        with _nvtx_range(range_name(self.key, stage)):
            yield

    def apply_stage(self, stage: Stage) -> list[str]:
        """Set ``requires_grad`` per ``stage``; returns the names of the trainable parameters."""
        names = []
        for name, param in self.named_parameters():
            param.requires_grad_(stage.trains(name))
            if param.requires_grad:
                names.append(name)
        if not names:
            raise ValueError(f"{self.key}: stage {stage.name!r} leaves no parameter trainable "
                             f"(trainable={stage.trainable}, frozen={stage.frozen})")
        return names


def check_choices(owner: str, choices: Mapping[str, tuple[Any, Collection[Any]]]) -> None:
    """Raise a ``ValueError`` naming ``owner.field``, the bad value and the allowed ones for the
    first ``field: (value, allowed)`` whose value is not allowed (config ``validate`` methods)."""
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"{owner}.{name} = {value!r}; expected one of {tuple(allowed)}")


def scale_epochs(stages: Sequence[Stage], epochs: int | None) -> list[Stage]:
    """Stages with their epochs rescaled so they sum to ``epochs`` (each stage keeps ≥ 1).

    Used by ``signbench run --epochs N`` to shorten or lengthen a method's whole schedule while
    keeping the ratio between its stages.
    """
    from dataclasses import replace

    if epochs is None:
        return list(stages)
    if epochs < len(stages):
        raise ValueError(f"--epochs {epochs} is fewer than the {len(stages)} training stages")
    total = sum(s.epochs for s in stages) or len(stages)
    scaled = [max(1, round(s.epochs * epochs / total)) for s in stages]
    scaled[-1] = max(1, epochs - sum(scaled[:-1]))
    return [replace(s, epochs=e) for s, e in zip(stages, scaled, strict=True)]
