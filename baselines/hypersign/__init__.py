"""HyperSign — dynamic feature fusion for SLT using hypernetworks (Zhang et al., 2025).

Importing the package registers the method ``"hypersign"``. Modules: ``config`` (the config
dataclass and profiles), ``model`` (the :class:`HyperSign` method), ``streams`` (extractors and
VL-mappers, Sec. 2.1), ``fusion`` (hypernetwork fusion and partial shortcut, Sec. 2.2),
``synergy`` (self-distillation and SST contrastive learning, Sec. 2.3), ``pretraining`` (TS-SLT's
S2G / G2T stages and the gloss bridge, Sec. 3.2). Design notes: ``docs/methods/hypersign.md``.
"""

from baselines.hypersign.config import (
    ALPHA_STRATEGIES,
    BRIDGE_FUSIONS,
    BRIDGES,
    FUSIONS,
    G2T_STAGE,
    PAPER_CONFIG,
    PRETRAIN_STAGE,
    STREAMS,
    TINY_DATA,
    HyperSignConfig,
)
from baselines.hypersign.fusion import truncated_normal_alpha
from baselines.hypersign.model import HyperSign

__all__ = ["ALPHA_STRATEGIES", "BRIDGES", "BRIDGE_FUSIONS", "FUSIONS", "G2T_STAGE",
           "PAPER_CONFIG", "PRETRAIN_STAGE", "STREAMS", "TINY_DATA", "HyperSign",
           "HyperSignConfig", "truncated_normal_alpha"]
