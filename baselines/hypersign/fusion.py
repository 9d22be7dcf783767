"""HyperSign's dynamic feature fusion (Sec. 2.2): F_f and the partial shortcut connection.

:meth:`FusionMixin.fuse` computes F_f from F_v and F_k — the hypernetwork of eqs. (1)–(3)
(``harness.ops.HyperFusion``, variants DSG / DShG / PIG / CIG of Table 3) or one of Table 2's
fusion ablations (``mixup``, ``gated``, ``linear_relu``). The partial shortcut (eq. 4) mixes
P_i = α F_i + (1 − α) F_f in training, with α drawn by :func:`truncated_normal_alpha` from
N_[0,1](0, σ_t²), σ_t = max(1 − t/T, ε) (:meth:`FusionMixin.alpha_sigma`), or by one of Table 2's
strategies. How t and T are counted: ``docs/methods/hypersign.md``.
"""

from __future__ import annotations

import math

import torch

from baselines.hypersign.config import HyperSignConfig
from harness.method import TrainState


def truncated_normal_alpha(shape: tuple[int, ...], sigma: float, *,
                           device: torch.device | str = "cpu",
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """α ~ N(0, σ²) truncated to [0, 1], sampled exactly by the inverse CDF: u ~ U(Φ(0), Φ(1/σ)),
    α = σ Φ⁻¹(u) — no clipping, no rejection loop."""
    if sigma <= 0:
        raise ValueError(f"truncated_normal_alpha: sigma must be > 0, got {sigma}")
    hi = 0.5 * (1.0 + math.erf(1.0 / (sigma * math.sqrt(2.0))))  # Φ(1/σ)
    u = torch.rand(shape, device=device, generator=generator, dtype=torch.float64)
    u = 0.5 + u * (hi - 0.5)
    alpha = sigma * torch.special.ndtri(u)
    return alpha.clamp_(0.0, 1.0).float()  # clamp only guards float round-off at the ends


class FusionMixin:
    """F_f and the α of the partial shortcut for :class:`HyperSign` (mixed into the
    ``SLTMethod``; the fusion modules are built in its ``__init__``)."""

    config: HyperSignConfig

    def fuse(self, fv: torch.Tensor, fk: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """F_f from F_v and F_k by ``config.fusion`` (padded positions zeroed)."""
        cfg = self.config
        with self.nvtx("fusion"):
            if cfg.fusion == "hypernetwork":
                ff = self.fusion(fv, fk)
            elif cfg.fusion == "mixup":
                if self.training:
                    lam = torch.rand(fv.shape[0], 1, 1, device=fv.device, dtype=fv.dtype)
                else:
                    lam = torch.full((fv.shape[0], 1, 1), 0.5, device=fv.device, dtype=fv.dtype)
                ff = lam * fv + (1 - lam) * fk
            elif cfg.fusion == "gated":
                ff = self.gate_v * fv + self.gate_k * fk
            else:
                ff = torch.relu(self.fusion(torch.cat([fv, fk], dim=-1)))
        return ff * mask[..., None].to(ff.dtype)

    def alpha_sigma(self, state: TrainState | None) -> float:
        """σ_t = max(1 − t/T, ε) with t and T in epochs of the stage (``alpha_T_fraction`` of
        it, or ``alpha_T_epochs``); 1 without a ``TrainState``."""
        cfg = self.config
        if state is None:
            return 1.0
        epochs = max(1, state.stage.epochs)
        t = state.progress * epochs
        T = cfg.alpha_T_epochs if cfg.alpha_T_epochs is not None else cfg.alpha_T_fraction * epochs
        return max(1.0 - t / max(T, 1e-9), cfg.alpha_eps)

    def sample_alpha(self, batch_size: int, state: TrainState | None,
                     device: torch.device) -> torch.Tensor:
        """α of eq. (4), (batch_size,) in [0, 1], by ``config.alpha_strategy``."""
        strategy = self.config.alpha_strategy
        if strategy == "progressive":
            return truncated_normal_alpha((batch_size,), self.alpha_sigma(state), device=device)
        if strategy == "fixed":
            return torch.full((batch_size,), 0.5, device=device)
        if strategy == "rdrop":
            return torch.zeros(batch_size, device=device)
        return torch.rand(batch_size, device=device)
