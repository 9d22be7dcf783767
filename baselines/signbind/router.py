"""SignBind-LLM's frame router: which expert's output each frame uses.

A sequence classifier labels every frame as *sign*, *fingerspelling* or *rest* (the synthetic
corpus' ``frame_labels`` order: ``FRAME_REST`` = 0, ``FRAME_SIGN`` = 1, ``FRAME_FINGERSPELLING`` =
2). Its logits become **routing vectors** r_t ∈ Δ² by the Gumbel-softmax (Jang et al. 2017;
Maddison et al. 2017): r_t = softmax((log π_t + g_t) / τ), g_t ~ Gumbel(0, 1) i.i.d.; at low τ
r_t is near one-hot and still differentiable. The manual stream of the fusion encoder is then
m_t = r_t,sign · E_sign(t) + r_t,fs · E_fs(t) + r_t,rest · e_rest (``baselines.signbind``).

Choices where the paper is vague:

* **Classifier**: a small temporal model over the shared frame features — Linear(D → d), two
  temporal Conv1d (kernel 5, GELU, padding so the length is kept), Linear(d → 3). Temporal context
  is needed: a letter handshape held still and a sign hold look alike frame by frame.
* **Supervision**: cross-entropy against ``frame_labels`` where present (padding, label −100,
  ignored), trained with the manual experts; during fusion it keeps training through the
  Gumbel-softmax (the fusion CTC's gradient) plus the same cross-entropy.
* **Temperature annealing**: exponential from τ₀ = 1 to τ_min = 0.1 over the stage,
  τ(p) = τ₀ · (τ_min/τ₀)^p, p ∈ [0, 1] the stage progress (Jang et al. anneal exponentially too;
  the end value is ours). **Soft** samples in training (``hard=False``); at inference no noise and
  a hard one-hot of the argmax (deterministic outputs; ``gumbel_route(..., noise=False,
  hard=True)``).
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
    """Per-frame {rest, sign, fingerspelling} classifier (module docstring)."""

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
