"""SignFuse's Sign-Language Adapter, SLA (Sec. 3.6, eqs. 18–19).

Adaptive average pooling T'' → N_s sign tokens, Linear(d → hidden) → GELU → Linear(hidden →
d_LLM) → LayerNorm(d_LLM). ``hidden`` defaults to d_LLM (the paper gives W'_1 no size);
``out_scale`` is the LayerNorm's initial gain, set by the model to the LM's input-embedding RMS
(a bug fix: with gain 1 the sign tokens were ~30× larger than every text embedding). Why, and
the parameter budget this choice gives: ``docs/methods/signfuse.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.signfuse.hta import masked_adaptive_pool


class SLA(nn.Module):
    """Sign-Language Adapter (eqs. 18–19): (B, T'', d) → (B, N_s, d_LLM)."""

    def __init__(self, d: int = 512, d_llm: int = 4096, tokens: int = 32,
                 hidden: int | None = None, out_scale: float = 1.0) -> None:
        super().__init__()
        if not out_scale > 0:
            raise ValueError(f"SLA: out_scale must be > 0, got {out_scale}")
        self.tokens = tokens
        hidden = hidden or d_llm
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d_llm))
        self.norm = nn.LayerNorm(d_llm)
        with torch.no_grad():  # the LN gain starts at the LM's embedding scale (docstring)
            self.norm.weight.fill_(out_scale)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            z = F.adaptive_avg_pool1d(h.transpose(1, 2), self.tokens).transpose(1, 2)
        else:
            z = masked_adaptive_pool(h, mask, self.tokens)
        return self.norm(self.mlp(z))


__all__ = ["SLA"]
