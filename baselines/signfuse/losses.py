"""SignFuse's training objectives' building blocks (Sec. 3.7, eqs. 21–22).

* ``info_nce`` (eq. 21): symmetric InfoNCE on cosine similarities with a fixed τ;
* the ``interp`` / ``mean`` alignment target of eq. 22 is ``baselines.common.llm.text_prefix``
  (shared with the LLaMA stand-in, which learns to read it).

The model (``baselines.signfuse.model``) combines them into L_contra, L_align and eq. 23; why the
alignment target and the distance are what they are: ``docs/methods/signfuse.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Eq. (21): ½ [CE(a→b) + CE(b→a)] over cos(a_i, b_j) / τ, positives on the diagonal."""
    logits = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


__all__ = ["info_nce"]
