"""HFA — Hierarchical Feature Alignment for gloss-free SLT (Asasi, Lakhal & Bowden, IVA 2025).

Importing the package registers the method ``hfa`` (:class:`HFA`, in :mod:`.model`). Modules:
:mod:`.config` (:class:`HFAConfig`, the paper and tiny profiles), :mod:`.model` (the
``SLTMethod``: stages, losses, generation, Table 3 report), :mod:`.temporal` (the window-7 RoPE
temporal encoder, Sec. 3.1) and :mod:`.prototypes` (pseudo-gloss prototypes and L_psp, Sec. 3.2).
Design notes, the paper ↔ code map and the measurements: ``docs/methods/hfa.md``.
"""

from __future__ import annotations

from baselines.hfa.config import (
    PAPER_CONFIG,
    PAPER_DATA,
    PAPER_TABLE3,
    PAPER_VOCAB,
    TINY_DATA,
    TRAIN_MODES,
    HFAConfig,
)
from baselines.hfa.model import (
    FINETUNE_ALL_STAGE,
    FINETUNE_DECODER_STAGE,
    FRAME_PRETRAIN_STAGE,
    HFA,
    PRETRAIN_STAGE,
    TEXT_PRETRAIN_STAGE,
)

__all__ = [
    "FINETUNE_ALL_STAGE",
    "FINETUNE_DECODER_STAGE",
    "FRAME_PRETRAIN_STAGE",
    "HFA",
    "PAPER_CONFIG",
    "PAPER_DATA",
    "PAPER_TABLE3",
    "PAPER_VOCAB",
    "PRETRAIN_STAGE",
    "TEXT_PRETRAIN_STAGE",
    "TINY_DATA",
    "TRAIN_MODES",
    "HFAConfig",
]
