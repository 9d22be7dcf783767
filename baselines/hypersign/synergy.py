"""HyperSign's semantic synergy mechanisms (Sec. 2.3): :class:`SynergyMixin`.

Self-distillation (Sec. 2.3.1): KL_enc(E_v ‖ E_k) (eq. 5) and KL_dec(D_v ‖ D_k) (eq. 6), weighted
by the KL annealing factor w_t. SST contrastive learning (Sec. 2.3.2): a query MLP, the SST
converter of Algorithm 1 (``harness.ops.sst_convert``), InfoNCE between encoder and decoder
features (eq. 7) and L_SST over the (cross-)stream pairs (eq. 8). The readings of KL_enc, the
annealing ramp and the SST scale: ``docs/methods/hypersign.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.hypersign.config import HyperSignConfig
from harness.method import TrainState
from harness.ops import sst_convert

LOGIT_SCALE_MAX = 100.0


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, N, d) over the valid positions of ``mask`` (B, N)."""
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class SynergyMixin:
    """Self-distillation and SST contrastive losses of :class:`HyperSign` (mixed into the
    ``SLTMethod``; ``query_mlp``, ``sst_tokens`` and ``logit_scale`` are built in its
    ``__init__``)."""

    config: HyperSignConfig

    @property
    def sst_scale(self) -> float:
        """Scale of the SST converter's relevances (``sst_scale``, default 1/sqrt(sst_dim))."""
        scale = self.config.sst_scale
        return self.config.sst_dim ** -0.5 if scale is None else float(scale)

    # -------------------------------------------------------------------- self-distillation

    def kl_weight(self, state: TrainState | None) -> float:
        """KL annealing factor w_t = min(1, step / S), step counted within the stage."""
        if state is None:
            return 1.0
        cfg = self.config
        steps = cfg.kl_anneal_steps
        if steps is None:
            steps = cfg.kl_anneal_fraction * max(1, state.total_steps)
        return min(1.0, state.step / max(1.0, float(steps)))

    def kl_enc(self, e_v: torch.Tensor, e_k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """KL_enc(E_v ‖ E_k), eq. (5) (see ``kl_enc_mode``)."""
        if self.config.kl_enc_mode == "pooled":
            log_p, log_q = (F.log_softmax(_masked_mean(e.float(), mask), -1) for e in (e_v, e_k))
            return (log_p.exp() * (log_p - log_q)).sum(-1).mean()
        log_p = F.log_softmax(e_v[mask].float(), -1)
        log_q = F.log_softmax(e_k[mask].float(), -1)
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean()

    def kl_dec(self, l_v: torch.Tensor, l_k: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """KL_dec(D_v ‖ D_k), eq. (6): next-token distributions at valid target positions."""
        log_p = F.log_softmax(l_v[valid].float(), -1)
        log_q = F.log_softmax(l_k[valid].float(), -1)
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean()

    # ------------------------------------------------------------------ SST contrastive loss

    def sst_features(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """f^X (B, sst_dim): the query MLP then the SST converter (or mean pooling)."""
        q = self.query_mlp(states)
        if not self.config.use_sst:
            return _masked_mean(q, mask)
        _, f = sst_convert(q, self.sst_tokens.to(q.dtype), mask, scale=self.sst_scale,
                           pool=self.config.sst_pool)
        return f

    def info_nce(self, f_e: torch.Tensor, f_d: torch.Tensor) -> torch.Tensor:
        """Eq. (7): −mean_k log softmax_m(scale · cos(f_k^E, f_m^D))[k]."""
        scale = self.logit_scale.exp().clamp(max=LOGIT_SCALE_MAX)
        logits = scale * F.normalize(f_e.float(), dim=-1) @ F.normalize(f_d.float(), dim=-1).T
        target = torch.arange(f_e.shape[0], device=f_e.device)
        return F.cross_entropy(logits, target)

    def sst_loss(self, e_v: torch.Tensor, e_k: torch.Tensor, d_v: torch.Tensor,
                 d_k: torch.Tensor, enc_mask: torch.Tensor, dec_mask: torch.Tensor
                 ) -> torch.Tensor:
        """L_SST, eq. (8): mean InfoNCE over the (cross-)stream pairs."""
        f_ev, f_ek = self.sst_features(e_v, enc_mask), self.sst_features(e_k, enc_mask)
        f_dv, f_dk = self.sst_features(d_v, dec_mask), self.sst_features(d_k, dec_mask)
        pairs = [(f_ev, f_dv), (f_ek, f_dk)]
        if self.config.use_cross_pairs:
            pairs += [(f_ev, f_dk), (f_ek, f_dv)]
        return sum(self.info_nce(a, b) for a, b in pairs) / len(pairs)
