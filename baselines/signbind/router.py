"""SignBind-LLM's frame router: which expert's output each frame uses.

Paper, Mechanism 2 / "Foundational Learning" (Gumbel-softmax routing): a sequence classifier
labels every frame *rest* / *sign* / *fingerspelling* (the corpus' ``frame_labels`` order, 0 / 1
/ 2); its logits become routing vectors r_t = softmax((log π_t + g_t) / τ), g_t ~ Gumbel(0, 1)
(Jang et al. 2017; Maddison et al. 2017), and the fusion encoder's manual stream is
m_t = r_sign · E_sign(t) + r_fs · E_fs(t) + r_rest · e_rest (``baselines.signbind.model``).
τ anneals exponentially over the fusion stage, τ(p) = τ₀ · (τ_min/τ₀)^p
(:func:`anneal_temperature`); training uses soft samples, inference no noise and a hard one-hot
of the argmax (``gumbel_route(..., noise=False, hard=True)``).

The classifier, its supervision and the temperatures are our choices:
``docs/methods/signbind.md``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ROUTES: tuple[str, ...] = ("rest", "sign", "fingerspelling")  # = FRAME_LABEL_NAMES order


def anneal_temperature(progress: float, tau_start: float = 1.0, tau_end: float = 0.1) -> float:
    """τ(p) = τ_start · (τ_end/τ_start)^p for p ∈ [0, 1] (clamped)."""
    if not (tau_start > 0 and tau_end > 0):
        raise ValueError(f"temperatures must be > 0, got tau_start={tau_start}, "
                         f"tau_end={tau_end}")
    p = min(1.0, max(0.0, float(progress)))
    return tau_start * math.exp(p * math.log(tau_end / tau_start))


def gumbel_route(logits: torch.Tensor, tau: float, *, hard: bool = False, noise: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Routing vectors softmax((logits + g) / τ) over the last dim (g = Gumbel noise when
    ``noise``). ``hard=True``: the one-hot of the argmax in the forward pass with the soft
    sample's gradient (straight-through)."""
    if tau <= 0:
        raise ValueError(f"gumbel_route: tau must be > 0, got {tau}")
    x = logits.float()
    if noise:
        u = torch.rand(x.shape, device=x.device, generator=generator).clamp_(1e-10, 1 - 1e-7)
        x = x - torch.log(-torch.log(u))
    soft = F.softmax(x / tau, dim=-1)
    if not hard:
        return soft.to(logits.dtype)
    one_hot = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return (one_hot - soft.detach() + soft).to(logits.dtype)


class FrameRouter(nn.Module):
    """Per-frame {rest, sign, fingerspelling} classifier: Linear(D → d), two residual temporal
    Conv1d (GELU, length kept), Linear(d → 3)."""

    def __init__(self, in_dim: int, d_model: int, kernel_size: int = 5,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, d_model)
        self.convs = nn.ModuleList([nn.Conv1d(d_model, d_model, kernel_size,
                                              padding=kernel_size // 2) for _ in range(2)])
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, len(ROUTES))

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """feats (B, T, in_dim), mask (B, T) bool → logits (B, T, 3)."""
        m = mask[..., None].to(feats.dtype)
        h = self.proj(feats) * m
        for conv in self.convs:
            h = h + self.dropout(F.gelu(conv(h.transpose(1, 2)).transpose(1, 2)))
            h = h * m
        return self.classifier(h)


def router_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against frame labels (B, T) int64 (−100 = ignored)."""
    if not (labels >= 0).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=-100)


__all__ = ["ROUTES", "FrameRouter", "anneal_temperature", "gumbel_route", "router_loss"]
