"""SignBind-LLM (arXiv 2509.00030): routed CTC experts, gated fusion, pseudo-glosses → LoRA LLM.

Importing this package registers the method as ``"signbind"`` (``baselines.get_method``). The
modules: ``config`` (:class:`SignBindConfig`, the tiny defaults and ``PAPER_CONFIG``), ``model``
(:class:`SignBind`: stages, ``training_step``, ``generate``), ``frontend`` (frame / lip ViT
features), ``router`` (Gumbel-softmax frame router), ``experts`` (the three CTC experts and their
targets), ``phonemes`` (CMUdict lipreading targets), ``fusion`` (the gated fusion encoder),
``metrics`` (letter accuracy, gate α, router accuracy). Paper ↔ code map and design notes:
``docs/methods/signbind.md``.
"""

from baselines.signbind.config import PAPER_CONFIG, PAPER_DATA, TINY_DATA, SignBindConfig
from baselines.signbind.frontend import center_features
from baselines.signbind.model import (
    FROZEN_IN_FUSION,
    FUSION_STAGE,
    LIP_STAGE,
    LLM_STAGE,
    MANUAL_STAGE,
    SignBind,
)

__all__ = ["FROZEN_IN_FUSION", "FUSION_STAGE", "LIP_STAGE", "LLM_STAGE", "MANUAL_STAGE",
           "PAPER_CONFIG", "PAPER_DATA", "TINY_DATA", "SignBind", "SignBindConfig",
           "center_features"]
