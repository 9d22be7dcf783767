"""HFA's temporal encoder: a local-window (w = 7) transformer with RoPE and one downsampling.

Paper Sec. 3.1 / 4.2: frame features F (T* × D*) → four layers (hidden 512, 8 heads, FFN 2048),
local self-attention of window seven, Rotary Position Embedding, temporal downsampling after the
second layer → segment features Z (T × D). Where the paper is silent we follow Sign2GPT's sign
encoder, on which HFA builds: post-LN blocks with LayerScale (:class:`TemporalBlock`), RoPE on
q and k in the rotate-half layout (:func:`apply_rope`), average-pool downsampling k 3 / s 2 / p 1
(:func:`downsample`), and a final Linear to the mBART width.

:class:`RoPELocalWindowAttention` reuses ``harness.ops.LocalWindowSelfAttention``'s projections
and runs ``harness.ops.masked_attention(..., window=7)``, so the torch / native / triton backends
compute the same maths. Padded positions are zeroed after every block. Details and the reasons:
``docs/methods/hfa.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.ops import LocalWindowSelfAttention, masked_attention

ROPE_BASE = 10_000.0


# ------------------------------------------------------------------------------------ RoPE


def rope_angles(positions: torch.Tensor, dim: int, base: float = ROPE_BASE) -> torch.Tensor:
    """θ_{p,i} = p · base^(−2i/dim) for i < dim/2: (..., dim/2) float32 angles of ``positions``."""
    if dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {dim}")
    inv_freq = base ** (-torch.arange(0, dim, 2, device=positions.device,
                                      dtype=torch.float32) / dim)
    return positions.to(torch.float32)[..., None] * inv_freq


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
    """Rotate ``x`` (..., T, d_h) by its positions (T,) or (B, T) (``rotate-half`` layout:
    pairs (x_i, x_{i + d/2}) rotate by θ_i), so ⟨R_m q, R_n k⟩ depends on m − n only."""
    d = x.shape[-1]
    ang = rope_angles(positions, d, base)  # (T, d/2) or (B, T, d/2)
    if ang.dim() == 3 and x.dim() == 4:
        ang = ang[:, None]  # broadcast over heads
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


# ------------------------------------------------------------------------------------ blocks


class RoPELocalWindowAttention(LocalWindowSelfAttention):
    """``LocalWindowSelfAttention`` (same parameters ``q k v out``) with RoPE on q and k."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                backend: str | None = None, positions: torch.Tensor | None = None
                ) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"RoPELocalWindowAttention: x must be (B, T, {self.d_model}), got "
                             f"{tuple(x.shape)}")
        B, T, _ = x.shape
        H = self.n_heads
        if positions is None:
            positions = torch.arange(T, device=x.device)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, T, H, self.d_model // H).transpose(1, 2)

        q = apply_rope(heads(self.q(x)), positions)
        k = apply_rope(heads(self.k(x)), positions)
        att = masked_attention(q, k, heads(self.v(x)), mask, window=self.window, backend=backend)
        return self.out(att.transpose(1, 2).reshape(B, T, self.d_model))


class TemporalBlock(nn.Module):
    """Post-LN transformer block with LayerScale (Sign2GPT's ``meta_block``):
    x = LN(x + γ₁ ⊙ Attn(x)), x = LN(x + γ₂ ⊙ MLP(x)), MLP = Linear → GELU → Dropout → Linear."""

    def __init__(self, dim: int, heads: int, ffn: int, window: int = 7, dropout: float = 0.1,
                 layer_scale: float = 1e-5) -> None:
        super().__init__()
        self.attn = RoPELocalWindowAttention(dim, heads, window)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.gamma1 = nn.Parameter(torch.full((dim,), float(layer_scale)))
        self.gamma2 = nn.Parameter(torch.full((dim,), float(layer_scale)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.gamma1 * self.attn(x, mask)))
        x = self.norm2(x + self.dropout(self.gamma2 * self.mlp(x)))
        return x * mask[..., None].to(x.dtype)


def downsample(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average pooling k = 3, s = 2, p = 1 over time: (B, T, d) → (B, ⌈T/2⌉, d), new mask."""
    x = x * mask[..., None].to(x.dtype)
    y = F.avg_pool1d(x.transpose(1, 2), 3, stride=2, padding=1).transpose(1, 2)
    lengths = downsampled_lengths(mask.sum(1))
    m = torch.arange(y.shape[1], device=mask.device)[None] < lengths[:, None]
    return y, m


def downsampled_lengths(lengths: torch.Tensor, times: int = 1) -> torch.Tensor:
    """Lengths after ``times`` downsamplings: ⌈L/2⌉ each."""
    for _ in range(times):
        lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
    return lengths


class TemporalEncoder(nn.Module):
    """F (B, T*, in_dim) + mask → Z (B, ⌈T*/2⌉, out_dim) + mask (Sec. 3.1)."""

    def __init__(self, in_dim: int, dim: int = 512, layers: int = 4, heads: int = 8,
                 ffn: int = 2048, window: int = 7, downsample_after: int = 2,
                 out_dim: int | None = None, dropout: float = 0.1,
                 layer_scale: float = 1e-5) -> None:
        super().__init__()
        if not 0 <= downsample_after <= layers:
            raise ValueError(f"TemporalEncoder: downsample_after={downsample_after} is outside "
                             f"[0, layers={layers}]")
        self.input = nn.Identity() if in_dim == dim else nn.Linear(in_dim, dim)
        self.blocks = nn.ModuleList(TemporalBlock(dim, heads, ffn, window, dropout, layer_scale)
                                    for _ in range(layers))
        self.downsample_after = downsample_after
        out_dim = out_dim or dim
        self.output = nn.Identity() if out_dim == dim else nn.Linear(dim, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if mask.dtype != torch.bool or mask.shape != x.shape[:2]:
            raise ValueError(f"TemporalEncoder: mask must be bool {tuple(x.shape[:2])}, got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        x = self.input(x) * mask[..., None].to(x.dtype)
        for i, block in enumerate(self.blocks):
            if i == self.downsample_after:
                x, mask = downsample(x, mask)
            x = block(x, mask)
        if self.downsample_after == len(self.blocks):
            x, mask = downsample(x, mask)
        return self.output(x) * mask[..., None].to(x.dtype), mask


__all__ = ["RoPELocalWindowAttention", "TemporalBlock", "TemporalEncoder", "apply_rope",
           "downsample", "downsampled_lengths", "rope_angles"]
