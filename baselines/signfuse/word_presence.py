"""SignFuse's ``stream_pretrain`` aid (ours, tiny profile only; not in the paper).

A stream's features, max-pooled over their valid time steps → Linear(d → V) logits of "token v
occurs in the sentence" (``WordPresenceHead``); target = the multi-hot of the sentence's token
ids, specials excluded (``word_presence_targets``); loss = binary cross-entropy with logits
summed over the V tokens, averaged over the batch (``word_presence_loss``; a mean over V too
would make the gradient 1/V as large for a ~10-of-500-ones target). Why the aid exists and what
it measured: ``docs/methods/signfuse.md`` ("stream pre-training").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class WordPresenceHead(nn.Module):
    """(B, T, d) features + mask → (B, V) word-presence logits: masked max over time → Linear."""

    def __init__(self, d_model: int, vocab_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(f"WordPresenceHead: expected x (B, T, d) and mask (B, T), got "
                             f"{tuple(x.shape)} and {tuple(mask.shape)}")
        if not bool(mask.any(1).all()):
            raise ValueError("WordPresenceHead: a sample has no valid time step")
        pooled = x.masked_fill(~mask[..., None], float("-inf")).amax(1)
        return self.proj(pooled)


def word_presence_targets(ids: torch.Tensor, mask: torch.Tensor, vocab_size: int,
                          exclude: Sequence[int] = ()) -> torch.Tensor:
    """Multi-hot (B, V) float: 1 where token v occurs among the valid ``ids`` (B, L) of the
    sample, ids in ``exclude`` (specials: bos / eos / pad) never set."""
    if ids.shape != mask.shape:
        raise ValueError(f"word_presence_targets: ids {tuple(ids.shape)} and mask "
                         f"{tuple(mask.shape)} differ")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"word_presence_targets: token ids must lie in [0, {vocab_size})")
    out = torch.zeros(ids.shape[0], vocab_size, device=ids.device)
    out.scatter_add_(1, ids.long(), mask.to(out.dtype))
    out = (out > 0).float()
    if len(exclude):
        out[:, torch.tensor(list(exclude), dtype=torch.long, device=ids.device)] = 0.0
    return out


def word_presence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE with logits, summed over the vocabulary, averaged over the batch."""
    if logits.shape != targets.shape:
        raise ValueError(f"word_presence_loss: logits {tuple(logits.shape)} and targets "
                         f"{tuple(targets.shape)} differ")
    bce = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return bce.sum(-1).mean()


__all__ = ["WordPresenceHead", "word_presence_loss", "word_presence_targets"]
