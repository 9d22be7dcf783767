"""SignBind-LLM's fusion encoder: manual and lip streams → gated fusion → transformer → CTC.

Paper, Mechanism 2 ("Adaptive Gating for Temporal Asynchrony") and "Design tradeoffs": the
frozen experts' hidden states, projected to the fusion width and aligned in time, are combined
per time step by ``fusion`` — ``gate`` (the paper's adaptive gate, O(T):
``harness.ops.GatedCrossAttention(mode="gate")``, α_t = σ(W_g [m_t; l_t] + b_g),
y_t = LN(α_t ⊙ m_t + (1 − α_t) ⊙ l_t) + (m_t + l_t)/2; α weights the **manual** stream),
``cross`` (the cross-attention variant, O(T²); the same op with ``mode="cross"``) or ``concat``
(y_t = Linear([m_t; l_t])); without lips y_t = m_t. Then a transformer encoder (6 layers in the
paper) and a CTC head over the pseudo-glosses. :meth:`FusionEncoder.alpha` recomputes α (B, T)
averaged over channels for the run JSON's gate statistics.

Design notes: ``docs/methods/signbind.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.signbind.experts import TemporalEncoder
from harness.ops import GatedCrossAttention

FUSIONS: tuple[str, ...] = ("gate", "cross", "concat")


class FusionEncoder(nn.Module):
    """Gated (or cross-attention / concatenation) fusion, transformer, CTC head."""

    def __init__(self, d_model: int, vocab_size: int, *, fusion: str = "gate",
                 use_lips: bool = True, layers: int = 6, heads: int = 4, ffn: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"FusionEncoder: fusion must be one of {FUSIONS}, got {fusion!r}")
        self.fusion_mode = fusion
        self.use_lips = use_lips
        if use_lips:
            if fusion == "concat":
                self.fuse = nn.Linear(2 * d_model, d_model)
            else:
                self.fuse = GatedCrossAttention(d_model, heads, mode=fusion)
        self.encoder = TemporalEncoder(d_model, layers, heads, ffn or 2 * d_model, dropout)
        self.head = nn.Linear(d_model, vocab_size)

    def combine(self, manual: torch.Tensor, lips: torch.Tensor | None, mask: torch.Tensor
                ) -> torch.Tensor:
        """y (B, T, d): the fused stream (padded positions zeroed)."""
        m = mask[..., None].to(manual.dtype)
        if not self.use_lips or lips is None:
            return manual * m
        if self.fusion_mode == "concat":
            y = self.fuse(torch.cat([manual, lips], dim=-1))
        else:
            y = self.fuse(manual, lips, mask, mask)
        return y * m

    def forward(self, manual: torch.Tensor, lips: torch.Tensor | None, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden (B, T, d), CTC logits (B, T, |pseudo-glosses|))."""
        h = self.encoder(self.combine(manual, lips, mask), mask)
        return h, self.head(h)

    @torch.no_grad()
    def alpha(self, manual: torch.Tensor, lips: torch.Tensor | None, mask: torch.Tensor
              ) -> torch.Tensor | None:
        """α per frame (B, T), averaged over channels (gate / cross modes; else None)."""
        if not self.use_lips or lips is None or self.fusion_mode == "concat":
            return None
        fuse = self.fuse
        if self.fusion_mode == "cross":
            a = fuse._attend(fuse.q_v(manual), fuse.k_s(lips), fuse.v_s(lips), mask, None)
            b = fuse._attend(fuse.q_s(lips), fuse.k_v(manual), fuse.v_v(manual), mask, None)
        else:
            a, b = manual, lips
        z = torch.cat([a, b], dim=-1).float() @ fuse.gate.weight.float().t() + fuse.gate.bias
        return torch.sigmoid(z).mean(-1)


__all__ = ["FUSIONS", "FusionEncoder"]
