"""SignFuse's Hierarchical Temporal Aggregation, HTA (Sec. 3.5, eqs. 13–17).

Depthwise temporal convs (``groups = d``, 'same' padding k // 2) with (k, s) ∈ {(1, 1), (5, 2),
(11, 4)}; each output average-pooled *over its valid length* to T'' (``masked_adaptive_pool``:
``nn.AdaptiveAvgPool1d``'s bins computed per sample, so padding never enters a bin),
concatenated on features → Linear(|scales|·d → d) → H + MHSA(H) → LayerNorm (eq. 17).
``scales`` selects a subset (the "temporal scale analysis" ablation). Depthwise rather than the
text's "depthwise separable": see ``docs/methods/signfuse.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from baselines.signfuse.masks import downsampled_mask, zero_padded

HTA_SCALES: dict[int, int] = {1: 1, 5: 2, 11: 4}  # kernel → stride (eqs. 13–15)


def pooling_matrix(lengths: torch.Tensor, width: int, out_len: int) -> torch.Tensor:
    """(B, out_len, width) averaging weights: row i of sample b averages positions
    [⌊i·n/out⌋, ⌈(i+1)·n/out⌉) of its first n = lengths[b] positions (adaptive pooling bins)."""
    n = lengths.clamp_min(1).to(torch.float64)[:, None]  # (B, 1)
    i = torch.arange(out_len, device=lengths.device, dtype=torch.float64)[None]
    start = torch.floor(i * n / out_len)
    end = torch.ceil((i + 1) * n / out_len)
    pos = torch.arange(width, device=lengths.device, dtype=torch.float64)[None, None]
    inside = (pos >= start[..., None]) & (pos < end[..., None])
    w = inside.to(torch.float32)
    return w / w.sum(-1, keepdim=True).clamp_min(1.0)


def masked_adaptive_pool(x: torch.Tensor, mask: torch.Tensor, out_len: int) -> torch.Tensor:
    """(B, T, d) with valid ``mask`` (B, T) → (B, out_len, d), each sample pooled on its valid
    prefix with ``nn.AdaptiveAvgPool1d``'s bins (equal to it for an all-valid sample; shorter
    sequences are upsampled the same way the torch op does)."""
    w = pooling_matrix(mask.sum(1), x.shape[1], out_len).to(x.dtype)
    return w @ x


class HTA(nn.Module):
    """Hierarchical Temporal Aggregation (eqs. 13–17): (B, T', d), mask → (B, T'', d).

    The MHSA is ``nn.MultiheadAttention`` without a mask: every one of the T'' positions is
    valid after pooling."""

    def __init__(self, d: int = 512, out_len: int = 64, heads: int = 8,
                 scales: Sequence[int] = (1, 5, 11), dropout: float = 0.1) -> None:
        super().__init__()
        scales = tuple(int(k) for k in scales)
        bad = [k for k in scales if k not in HTA_SCALES]
        if not scales or bad or len(set(scales)) != len(scales):
            raise ValueError(f"HTA: scales must be a non-empty subset of "
                             f"{tuple(HTA_SCALES)}, got {scales}")
        self.scales, self.out_len = scales, out_len
        self.convs = nn.ModuleList(
            nn.Conv1d(d, d, k, stride=HTA_SCALES[k], padding=k // 2, groups=d) for k in scales)
        self.proj = nn.Linear(len(scales) * d, d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        xt = zero_padded(x, mask).transpose(1, 2)
        pooled = []
        for k, conv in zip(self.scales, self.convs, strict=True):
            h = conv(xt).transpose(1, 2)  # (B, ⌈T'/s⌉, d)
            m = downsampled_mask(mask, HTA_SCALES[k])
            pooled.append(masked_adaptive_pool(h, m, self.out_len))
        h = self.proj(torch.cat(pooled, dim=-1))  # H_combined (B, T'', d)
        att, _ = self.attn(h, h, h, need_weights=False)
        return self.norm(h + att)


__all__ = ["HTA", "HTA_SCALES", "masked_adaptive_pool", "pooling_matrix"]
