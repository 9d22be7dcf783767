"""SignX's continuous recogniser in the latent space (Sec. 4, Algorithms 1-2, Appendix 0.C).

In the order a latent sequence z (B, T, D) meets them:

* :class:`PoseAwareFeatureCompilation` (Algorithm 1): LayerNorm, cross-frame covariance
  whitening (γ), stochastic frame drop (ρ) that keeps each frame's place in time;
  :func:`gloss_align` is GlossAlign (uniform segmentation, for analysis).
* :class:`AdaptiveFeaturePruning` (eqs. 7-8): a shape-preserving variance mask over latent
  dimensions, recomputed every ``prune_every`` epochs.
* Gloss-aware latent distillation (Algorithm 2): the student MLP on compiled frames,
  :func:`distillation_kl` weighted by :func:`gloss_prior_weights`, against the frozen
  :class:`ResNetTeacher` (ResNet-34 per frame, K5 temporal conv, gloss classifier, CTC-trained).
* :class:`MultiScaleTemporalConv` (eq. 15, kernels {3, 5, 7}, T → ⌊⌊T/2⌋/2⌋), then a BiLSTM.
* The CTC-constrained Transformer refinement (:class:`LatentRecognizer`): encoder + CTC head
  (:func:`ctc_loss_checked`, :func:`ctc_greedy`), gloss decoder over the gloss codebook,
  :func:`smoothness_loss` (the Lipschitz-ball regulariser), and a translation decoder of the
  same shape over the text tokenizer's ids.

How CrossCov, the frame drop, GlossAlign, the pruning threshold, the KD weighting and the
smoothness hinge are read from the paper: ``docs/methods/signx.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.resnet import resnet34
from baselines.signx.layers import Decoder, Encoder, sinusoidal_positions


class CTCLengthError(ValueError):
    """A sample has fewer CTC input steps than target glosses (CTC cannot align it)."""


def ctc_loss_checked(logits: torch.Tensor, input_lengths: torch.Tensor, targets: torch.Tensor,
                     target_lengths: torch.Tensor, blank: int = 0,
                     where: str = "ctc") -> torch.Tensor:
    """Mean CTC loss of (B, T, C) ``logits``; raises :class:`CTCLengthError` naming the samples
    whose input length T_b is shorter than their target length (CTC is undefined there)."""
    if logits.ndim != 3:
        raise ValueError(f"{where}: logits must be (B, T, C), got {tuple(logits.shape)}")
    short = (input_lengths < target_lengths).nonzero().flatten().tolist()
    if short:
        pairs = ", ".join(f"#{i}: T={int(input_lengths[i])} < L={int(target_lengths[i])}"
                          for i in short[:5])
        raise CTCLengthError(f"{where}: {len(short)} sample(s) have fewer input steps than "
                             f"target glosses ({pairs}); CTC needs T >= target length — use "
                             f"longer videos or less temporal downsampling")
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=blank,
                      reduction="mean", zero_infinity=True)


def ctc_greedy(logits: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path CTC decoding: argmax, collapse repeats, drop blanks."""
    best = logits.argmax(-1).tolist()
    out = []
    for row, n in zip(best, lengths.tolist(), strict=True):
        seq, prev = [], None
        for c in row[:n]:
            if c != prev and c != blank:
                seq.append(c)
            prev = c
        out.append(seq)
    return out


def gloss_align(lengths: torch.Tensor, gloss_lengths: torch.Tensor, t_max: int) -> torch.Tensor:
    """GlossAlign: (B, T) gloss index per frame by uniform segmentation (−1 on padding)."""
    t = torch.arange(t_max, device=lengths.device)[None].float()
    a = torch.floor(t * gloss_lengths[:, None].float() / lengths[:, None].clamp_min(1).float())
    return torch.where(t < lengths[:, None], a.long(), torch.full_like(a.long(), -1))


class PoseAwareFeatureCompilation(nn.Module):
    """Algorithm 1: LayerNorm, cross-frame covariance whitening (γ), stochastic frame drop (ρ)."""

    def __init__(self, dim: int, gamma: float = 0.1, rho: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"frame drop probability rho must be in [0, 1), got {rho}")
        self.norm = nn.LayerNorm(dim)
        self.gamma, self.rho = gamma, rho

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_compiled, m) for z (B, T, D) and its frame mask (B, T)."""
        z = self.norm(z)
        prev = F.pad(z, (0, 0, 1, 0))[:, :-1]  # z_{t-1}, zeros at t = 1
        r = (z * prev).mean(-1, keepdim=True)
        z = z - self.gamma * r * prev
        m = mask.clone()
        if self.training and self.rho > 0:
            m = m & (torch.rand(mask.shape, device=z.device) >= self.rho)
        return z * m[..., None].to(z.dtype), m


class AdaptiveFeaturePruning(nn.Module):
    """Eqs. (7)-(8): a variance mask over latent dimensions that keeps tensor shapes."""

    def __init__(self, dim: int, keep_ratio: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < keep_ratio <= 1.0:
            raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
        self.keep_ratio = keep_ratio
        self.register_buffer("mask", torch.ones(dim))
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("total", torch.zeros(dim))
        self.register_buffer("total_sq", torch.zeros(dim))

    @torch.no_grad()
    def observe(self, z: torch.Tensor, mask: torch.Tensor) -> None:
        """Accumulate per-dimension statistics of the valid frames of z (B, T, D)."""
        x = z[mask].double() if z.dtype != torch.float64 else z[mask]
        self.count += len(x)
        self.total += x.sum(0).to(self.total.dtype)
        self.total_sq += (x * x).sum(0).to(self.total_sq.dtype)

    def variance(self) -> torch.Tensor:
        n = self.count.clamp_min(1.0)
        mean = self.total / n
        return (self.total_sq / n - mean * mean).clamp_min(0.0)

    @torch.no_grad()
    def prune(self) -> dict[str, float]:
        """Recompute M from the statistics since the last call (no-op without statistics)."""
        if float(self.count) < 2:
            return {"kept": float(self.mask.sum()), "tau": float("nan")}
        var = self.variance()
        tau = torch.quantile(var.float(), 1.0 - self.keep_ratio)
        self.mask.copy_((var >= tau).to(self.mask.dtype))
        self.count.zero_()
        self.total.zero_()
        self.total_sq.zero_()
        return {"kept": float(self.mask.sum()), "tau": float(tau)}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.mask.to(z.dtype)


class MultiScaleTemporalConv(nn.Module):
    """Eq. (15): branches k ∈ kernels of two [Conv1d_k → BN → ReLU → MaxPool(2)] blocks."""

    def __init__(self, in_dim: int, out_dim: int, kernels: Sequence[int] = (3, 5, 7)) -> None:
        super().__init__()
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"temporal kernels must be odd, got {tuple(kernels)}")
        self.kernels = tuple(kernels)

        def block(cin: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(cin, out_dim, k, padding=k // 2),
                                 nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True),
                                 nn.MaxPool1d(2))

        self.branches = nn.ModuleList(nn.Sequential(block(in_dim, k), block(out_dim, k))
                                      for k in self.kernels)
        self.proj = nn.Linear(len(self.kernels) * out_dim, out_dim)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(torch.div(lengths, 2, rounding_mode="floor"), 2, rounding_mode="floor")

    def forward(self, z: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h (B, T', out), lengths') for z (B, T, in); T' = ⌊⌊T/2⌋/2⌋."""
        if z.shape[1] < 4:
            raise ValueError(f"signx TemporalConv: sequences of {z.shape[1]} frames are too short "
                             f"for two stride-2 poolings (need >= 4)")
        x = z.transpose(1, 2)
        h = torch.cat([branch(x) for branch in self.branches], dim=1).transpose(1, 2)
        return self.proj(h), self.output_lengths(lengths).clamp_min(1)


class ResNetTeacher(nn.Module):
    """f_ResNet: ResNet-34 per frame → Conv1d(k=5) over time → gloss logits per frame."""

    def __init__(self, num_glosses: int, base_width: int = 64, hidden: int = 256,
                 image_size: int | None = None) -> None:
        super().__init__()
        self.image_size = image_size
        self.backbone = resnet34(base_width=base_width)
        self.temporal = nn.Conv1d(self.backbone.num_features, hidden, 5, padding=2)
        self.classifier = nn.Linear(hidden, num_glosses)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        feats = frame_features(self.backbone, frames, mask, self.image_size)
        h = F.relu(self.temporal(feats.transpose(1, 2))).transpose(1, 2)
        return self.classifier(h)


def frame_features(backbone: nn.Module, frames: torch.Tensor, mask: torch.Tensor,
                   image_size: int | None = None) -> torch.Tensor:
    """Pooled per-frame CNN features (B, T, F) of the valid frames (padding stays 0); frames are
    resized (area interpolation) to ``image_size`` first when given."""
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"signx: frames have shape {tuple(frames.shape)}, expected "
                         f"(B, T, H, W, 3)")
    x = frames[mask].float()
    if frames.dtype == torch.uint8:
        x = x / 255.0
    x = x.permute(0, 3, 1, 2)
    if image_size is not None and tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="area")
    f = backbone(x)
    out = f.new_zeros(*mask.shape, f.shape[-1])
    out[mask] = f
    return out


def gloss_prior_weights(counts: Sequence[int], num_classes: int, blank: int = 0) -> torch.Tensor:
    """w_c = (n_c / n̄)^−½ over glosses seen in training (mean 1), 1 for blank/specials/unseen."""
    # Built on the CPU explicitly: the counts are data, and a model built under
    # ``torch.device("meta")`` (``signbench params``) must still get real weights here.
    w = torch.ones(num_classes, device="cpu")
    n = torch.tensor([float(c) for c in counts], device="cpu")
    seen = n > 0
    if seen.any():
        raw = (n[seen] / n[seen].mean()).pow(-0.5)
        raw = raw / raw.mean()
        idx = torch.arange(num_classes - len(counts), num_classes, device="cpu")[seen]
        w[idx] = raw
    w[blank] = 1.0
    return w


def distillation_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor,
                    prior: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Prior-weighted KL(p_teacher ‖ p_student) per frame, averaged over ``mask`` frames."""
    log_s = F.log_softmax(student.float() / temperature, -1)
    log_t = F.log_softmax(teacher.float() / temperature, -1)
    p_t = log_t.exp()
    kl = (p_t * (log_t - log_s)).sum(-1)
    w = p_t @ prior.to(p_t)
    m = mask.to(kl.dtype)
    return (w * kl * m).sum() / m.sum().clamp_min(1.0) * temperature ** 2


def smoothness_loss(states: torch.Tensor, mask: torch.Tensor, radius: float) -> torch.Tensor:
    """Hinge on ‖e_t − e_{t−1}‖ beyond radius·√d over consecutive valid encoder states."""
    d = states.shape[-1]
    diff = (states[:, 1:] - states[:, :-1]).float().norm(dim=-1)
    pair = (mask[:, 1:] & mask[:, :-1]).float()
    excess = F.relu(diff - radius * d ** 0.5) ** 2 / d
    return (excess * pair).sum() / pair.sum().clamp_min(1.0)


class LatentRecognizer(nn.Module):
    """Compile → prune → (TemporalConv → BiLSTM) → Transformer encoder + CTC → decoders.

    ``hybrid=False`` drops compile/prune/TemporalConv/BiLSTM: the "Transformer + visual encoder"
    baseline of Table 6 (the encoder reads the input at frame rate)."""

    def __init__(self, in_dim: int, num_glosses: int, text_vocab: int | None, *, tconv_dim: int,
                 lstm_hidden: int, lstm_layers: int, d_model: int, enc_layers: int,
                 dec_layers: int, heads: int, ffn: int, p_attn: float, p_relu: float,
                 p_res: float, kernels: Sequence[int] = (3, 5, 7), gamma: float = 0.1,
                 rho: float = 0.1, keep_ratio: float = 0.5, student_hidden: int = 256,
                 hybrid: bool = True) -> None:
        super().__init__()
        self.hybrid = hybrid
        self.num_glosses = num_glosses
        self.bos_id, self.eos_id = num_glosses, num_glosses + 1
        if hybrid:
            self.compilation = PoseAwareFeatureCompilation(in_dim, gamma, rho)
            self.pruning = AdaptiveFeaturePruning(in_dim, keep_ratio)
            self.student = nn.Sequential(nn.Linear(in_dim, student_hidden), nn.ReLU(),
                                         nn.Linear(student_hidden, num_glosses))
            self.tconv = MultiScaleTemporalConv(in_dim, tconv_dim, kernels)
            self.lstm = nn.LSTM(tconv_dim, lstm_hidden, num_layers=lstm_layers,
                                bidirectional=True, batch_first=True,
                                dropout=p_res if lstm_layers > 1 else 0.0)
            self.proj = nn.Linear(2 * lstm_hidden, d_model)
        else:
            self.proj = nn.Linear(in_dim, d_model)
        self.encoder = Encoder(d_model, enc_layers, heads, ffn, p_attn, p_relu, p_res)
        self.ctc_head = nn.Linear(d_model, num_glosses)
        self.gloss_decoder = Decoder(num_glosses + 2, d_model, dec_layers, heads, ffn, p_attn,
                                     p_relu, p_res)
        self.text_decoder = (Decoder(text_vocab, d_model, dec_layers, heads, ffn, p_attn, p_relu,
                                     p_res) if text_vocab else None)

    def compile_latent(self, z: torch.Tensor, mask: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Algorithm 1 then the pruning mask (statistics observed in training)."""
        zc, m = self.compilation(z, mask)
        if self.training:
            self.pruning.observe(zc.detach(), m)
        return self.pruning(zc), m

    def encode(self, z: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything up to the encoder: states, mask, lengths, CTC logits (+ compiled latent)."""
        lengths = mask.sum(1)
        out: dict[str, torch.Tensor] = {}
        if self.hybrid:
            zc, m = self.compile_latent(z, mask)
            out["compiled"], out["frame_mask"] = zc, m
            h, lengths = self.tconv(zc, lengths)
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            u, _ = self.lstm(packed)
            u, _ = nn.utils.rnn.pad_packed_sequence(u, batch_first=True, total_length=h.shape[1])
            x = self.proj(u)
        else:
            x = self.proj(z)
        enc_mask = torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]
        x = x + sinusoidal_positions(x.shape[1], x.shape[-1], x.device, x.dtype)[None]
        states = self.encoder(x, enc_mask)
        out.update(states=states, mask=enc_mask, lengths=lengths, ctc=self.ctc_head(states))
        return out


__all__ = ["AdaptiveFeaturePruning", "CTCLengthError", "LatentRecognizer",
           "MultiScaleTemporalConv", "PoseAwareFeatureCompilation", "ResNetTeacher",
           "ctc_greedy", "ctc_loss_checked", "distillation_kl", "frame_features", "gloss_align",
           "gloss_prior_weights", "smoothness_loss"]
