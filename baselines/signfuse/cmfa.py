"""SignFuse's Cross-Modal Fusion Attention, CMFA (Sec. 3.4, eqs. 6–12), and its ablations.

``CMFA``: L layers of fusion + FFN (4d, GELU) with residual + LayerNorm (eq. 12). Layer 1 fuses
F̂_v and F̂_s; "after the first layer, both inputs are derived from the fused representation":
layer l > 1 gets (F, F). The fusion of each layer is ``fusion``: ``cmfa`` —
``harness.ops.GatedCrossAttention`` (eqs. 6–11; fused kernels on the native / Triton backends)
— or one of the Sec. 5.4 ablations (``AblationFusion``: ``nogate``, ``v2s``, ``s2v``,
``concat``, ``add``). Padded positions are zeroed after every layer. Design notes (what each
ablation keeps): ``docs/methods/signfuse.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.signfuse.masks import zero_padded
from harness.ops import GatedCrossAttention
from harness.ops.attention import masked_attention

FUSIONS = ("cmfa", "nogate", "v2s", "s2v", "concat", "add")


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, h, d // h).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


class AblationFusion(nn.Module):
    """The Sec. 5.4 fusion alternatives to CMFA, all keeping depth, FFN and the residual
    (F_v + F_s)/2: ``nogate`` (bidirectional, α = ½), ``v2s`` / ``s2v`` (one direction:
    LN(O_v→s) or LN(O_s→v)), ``concat`` (LN(W [F_v; F_s] + b)), ``add`` (LN(F_v + F_s)) — the
    last two have no residual (they already are the sum). The attentions use
    ``harness.ops.masked_attention`` with CMFA's head split."""

    def __init__(self, d: int, heads: int, kind: str) -> None:
        super().__init__()
        if kind not in FUSIONS[1:]:
            raise ValueError(f"AblationFusion: kind must be one of {FUSIONS[1:]}, got {kind!r}")
        self.kind, self.heads = kind, heads
        if kind in ("nogate", "v2s"):
            self.q_v, self.k_s, self.v_s = (nn.Linear(d, d) for _ in range(3))
        if kind in ("nogate", "s2v"):
            self.q_s, self.k_v, self.v_v = (nn.Linear(d, d) for _ in range(3))
        if kind == "concat":
            self.proj = nn.Linear(2 * d, d)
        self.norm = nn.LayerNorm(d)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                key_mask: torch.Tensor | None) -> torch.Tensor:
        h = self.heads
        return _merge(masked_attention(_heads(q, h), _heads(k, h), _heads(v, h), key_mask))

    def forward(self, fv: torch.Tensor, fs: torch.Tensor, mask_v: torch.Tensor | None = None,
                mask_s: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "concat":
            return self.norm(self.proj(torch.cat([fv, fs], dim=-1)))
        if self.kind == "add":
            return self.norm(fv + fs)
        outs = []
        if self.kind in ("nogate", "v2s"):
            outs.append(self._attend(self.q_v(fv), self.k_s(fs), self.v_s(fs), mask_s))
        if self.kind in ("nogate", "s2v"):
            outs.append(self._attend(self.q_s(fs), self.k_v(fv), self.v_v(fv), mask_v))
        return self.norm(sum(outs) / len(outs)) + (fv + fs) / 2


class CMFALayer(nn.Module):
    """Fusion (eqs. 6–11 or an ablation) → F' = LN(F + FFN(F)) (eq. 12)."""

    def __init__(self, d: int, heads: int, ffn: int, fusion: str = "cmfa",
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.fusion = (GatedCrossAttention(d, heads) if fusion == "cmfa"
                       else AblationFusion(d, heads, fusion))
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn, d))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, fv: torch.Tensor, fs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        f = self.fusion(fv, fs, mask, mask)
        f = self.norm(f + self.dropout(self.ffn(f)))
        return zero_padded(f, mask)


class CMFA(nn.Module):
    """L stacked ``CMFALayer``s; layer 1 gets (F̂_v, F̂_s), later layers (F, F)."""

    def __init__(self, d: int = 512, heads: int = 8, layers: int = 3, ffn: int = 2048,
                 fusion: str = "cmfa", dropout: float = 0.1) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"CMFA: fusion must be one of {FUSIONS}, got {fusion!r}")
        if layers < 1:
            raise ValueError(f"CMFA: layers must be >= 1, got {layers}")
        self.layers = nn.ModuleList(CMFALayer(d, heads, ffn, fusion, dropout)
                                    for _ in range(layers))

    def forward(self, fv: torch.Tensor, fs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        f = self.layers[0](fv, fs, mask)
        for layer in self.layers[1:]:
            f = layer(f, f, mask)
        return f


__all__ = ["CMFA", "FUSIONS", "AblationFusion", "CMFALayer"]
