"""SignFuse (Singh & Mundada, 2026): dual-stream (RGB + skeleton) cross-modal fusion for
gloss-free sign language translation with an LLM.

Importing the package registers the method ``signfuse`` (``baselines.get_method("signfuse",
profile, **overrides)``). Modules: ``config`` (``SignFuseConfig``, ``PAPER_CONFIG``), ``model``
(``SignFuse``: stages, losses, generation, reports), ``visual`` (Sec. 3.2), ``stgcn``
(Sec. 3.3), ``cmfa`` (Sec. 3.4), ``hta`` (Sec. 3.5), ``sla`` (Sec. 3.6), ``losses`` (Sec. 3.7),
``word_presence`` (the stream pre-training aid, an ablation) and ``masks``. Design notes and
measurements: ``docs/methods/signfuse.md``.
"""

from baselines.signfuse.config import PAPER_CONFIG, PROMPT, STAGE_NAMES, SignFuseConfig
from baselines.signfuse.model import SignFuse

__all__ = ["PAPER_CONFIG", "PROMPT", "STAGE_NAMES", "SignFuse", "SignFuseConfig"]
