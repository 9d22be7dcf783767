"""SignFuse's padding helpers, shared by the streams, CMFA, HTA and the losses.

Every SignFuse tensor of shape (B, T, ...) travels with a boolean valid-position mask (B, T);
these helpers keep padding out of every result (design notes: ``docs/methods/signfuse.md``).
"""

from __future__ import annotations

import torch


def zero_padded(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` (B, T, d) with its padded positions (``mask`` False) set to zero."""
    return x * mask[..., None].to(x.dtype)


def downsampled_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """Valid positions after a stride-``stride`` conv with 'same' padding: ⌈len / stride⌉."""
    lengths = mask.sum(1)
    out_len = -(-mask.shape[1] // stride)
    n = torch.div(lengths + stride - 1, stride, rounding_mode="floor")
    return torch.arange(out_len, device=mask.device)[None] < n[:, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, T, d) over its valid positions → (B, d)."""
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


__all__ = ["downsampled_mask", "masked_mean", "zero_padded"]
