"""SignX (Fang et al.): continuous sign recognition (and translation) in a pose latent space.

Importing the package registers the method ``signx`` (:class:`SignX`, :mod:`.model`); its
configuration is :class:`SignXConfig` (:mod:`.config`). The method's own modules, named after
the paper: :mod:`.latent` (Pose2Gloss, Vid2Pose; Sec. 3), :mod:`.recognizer` (Sec. 4,
Algorithms 1-2), :mod:`.decode` (Algorithm 3), :mod:`.averaging` (Sec. 4.2), :mod:`.layers`
(the Transformer blocks) and :mod:`.streams` (what the model reads from a batch). The studies
of Tables 5 and 6 are application code: :mod:`harness.experiments.signx`. Design notes, the
paper ↔ code map and the measurements: ``docs/methods/signx.md``.
"""

from baselines.signx.config import (
    P2G_STAGE,
    PAPER_CONFIG,
    PIPELINES,
    REC_STAGE,
    RECOGNIZER_INPUTS,
    TEACHER_STAGE,
    V2P_STAGE,
    SignXConfig,
)
from baselines.signx.model import SignX

__all__ = ["P2G_STAGE", "PAPER_CONFIG", "PIPELINES", "RECOGNIZER_INPUTS", "REC_STAGE",
           "TEACHER_STAGE", "V2P_STAGE", "SignX", "SignXConfig"]
