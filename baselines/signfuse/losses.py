"""SignFuse's training objectives' building blocks (Sec. 3.7, eqs. 21–22).

* ``info_nce`` (eq. 21): symmetric InfoNCE on cosine similarities with a fixed τ;
* ``resample_tokens``: the ``interp`` alignment target of eq. 22 — a sentence's valid text
  embeddings linearly interpolated to N_s positions (sign token i ↔ the text at relative
  position i / N_s, a monotonic alignment).

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


def resample_tokens(e: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """(B, L, H) with valid ``mask`` (B, L) → (B, n, H): each sample's valid tokens linearly
    interpolated to n positions (``align_corners=True``: first and last tokens kept)."""
    out = []
    for row, m in zip(e, mask, strict=True):
        valid = row[m]  # (L_b, H)
        if valid.shape[0] == 1:
            out.append(valid.expand(n, -1))
            continue
        out.append(F.interpolate(valid.T[None], size=n, mode="linear",
                                 align_corners=True)[0].T)
    return torch.stack(out)


__all__ = ["info_nce", "resample_tokens"]
