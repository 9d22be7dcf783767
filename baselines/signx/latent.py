"""SignX's pose-rich latent space (Sec. 3): the Pose2Gloss encoder (stage 1) and Vid2Pose (stage 2).

* :class:`PoseEncoder` (Sec. 3.2, eqs. 1-3): per-format encoders E_i (:class:`FormatEncoder`),
  multi-head attention fusion of the five format tokens per frame, PadMatch (zero-padding to
  ``latent_dim`` + projection, optionally ``padmatch_norm``) and pre-LN ViT layers → z_latent.
* :class:`Pose2Gloss` (Appendix 0.B.1, eqs. 10-13, Table 8): the encoder + a codebook decoder
  over the gloss vocabulary, trained with L_text + L_word + L_contrast and scheduled sampling
  (teacher-forcing ratio ``tf_start`` → ``tf_end``).
* :class:`Vid2Pose` (Sec. 3.3, eqs. 4-6): per-channel standardised frames → spatial ViT (CLS) →
  temporal self-attention → one Linear head per format; :func:`vid2pose_loss` is eq. (14). The
  pose encoder is frozen while Vid2Pose trains; inference reads RGB only:
  z = PoseEncoder(Vid2Pose(frames)).

Every choice where the paper is vague (E_i, fusion pooling, PadMatch, L_word over tokens,
τ = 0.3, scheduled sampling, pixel standardisation, plain ViT) and the measurements behind
``padmatch_norm`` and the ImageNet standardisation: ``docs/methods/signx.md``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from baselines.signx.layers import Decoder, Encoder, masked_mean, sinusoidal_positions
from harness.ops import masked_attention

#: ViT input standardisation per RGB channel (the ImageNet statistics every ViT uses)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class FormatEncoder(nn.Module):
    """E_i: LayerNorm → Linear(D_i, d_h) → GELU → Linear(d_h, d_h)."""

    def __init__(self, width: int, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim), nn.GELU(),
                                 nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PoseEncoder(nn.Module):
    """E_pose: five pose formats (B, T, D_i) → z_latent (B, T, latent_dim), eqs. (1)-(3)."""

    def __init__(self, formats: Mapping[str, int], format_dim: int, fusion_heads: int,
                 latent_dim: int, vit_layers: int, vit_heads: int, dropout: float = 0.0,
                 padmatch_norm: bool = False) -> None:
        super().__init__()
        if format_dim > latent_dim:
            raise ValueError(f"PadMatch pads format_dim {format_dim} up to latent_dim "
                             f"{latent_dim}; format_dim must not exceed it")
        if format_dim % fusion_heads:
            raise ValueError(f"format_dim {format_dim} is not divisible by {fusion_heads} heads")
        self.formats = dict(formats)
        self.format_dim, self.latent_dim, self.fusion_heads = format_dim, latent_dim, fusion_heads
        self.encoders = nn.ModuleDict({n: FormatEncoder(w, format_dim)
                                       for n, w in self.formats.items()})
        self.format_embed = nn.Parameter(torch.randn(len(self.formats), format_dim) * 0.02)
        self.fusion_qkv = nn.Linear(format_dim, 3 * format_dim)
        self.fusion_out = nn.Linear(format_dim, format_dim)
        self.padmatch = nn.Linear(latent_dim, latent_dim)
        self.padmatch_norm = nn.LayerNorm(latent_dim) if padmatch_norm else nn.Identity()
        self.vit = Encoder(latent_dim, vit_layers, vit_heads, 4 * latent_dim, dropout, dropout,
                           dropout)

    def check(self, poses: Mapping[str, torch.Tensor]) -> None:
        for name, width in self.formats.items():
            if name not in poses:
                raise ValueError(f"signx: the batch's poses lack format {name!r} (have "
                                 f"{sorted(poses)}); SignX reads all of {list(self.formats)}")
            x = poses[name]
            if x.ndim != 3 or x.shape[-1] != width:
                raise ValueError(f"signx: pose format {name!r} has shape {tuple(x.shape)}, "
                                 f"expected (B, T, {width})")

    def fuse(self, poses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """f_fused (B, T, d_h): per-frame multi-head attention over the five format tokens."""
        f = torch.stack([self.encoders[n](poses[n].float()) for n in self.formats], dim=2)
        b, t, n, d = f.shape
        tokens = (f + self.format_embed).reshape(b * t, n, d)
        h = self.fusion_heads
        q, k, v = (y.view(b * t, n, h, d // h).transpose(1, 2)
                   for y in self.fusion_qkv(tokens).chunk(3, dim=-1))
        att = masked_attention(q, k, v).transpose(1, 2).reshape(b * t, n, d)
        return (tokens + self.fusion_out(att)).mean(1).view(b, t, d)

    def forward(self, poses: Mapping[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        self.check(poses)
        fused = self.fuse(poses)
        z = self.padmatch(F.pad(fused, (0, self.latent_dim - self.format_dim)))  # eq. (2)
        z = self.padmatch_norm(z)  # unit scale before the unit-amplitude positions are added
        z = z + sinusoidal_positions(z.shape[1], self.latent_dim, z.device, z.dtype)[None]
        return self.vit(z, mask)  # eq. (3)


class Pose2Gloss(nn.Module):
    """Stage 1: PoseEncoder + codebook decoder + the L_text / L_word / L_contrast objective."""

    def __init__(self, encoder: PoseEncoder, vocab_size: int, dec_dim: int, dec_layers: int,
                 dec_heads: int, contrast_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.bridge = nn.Linear(encoder.latent_dim, dec_dim)
        self.decoder = Decoder(vocab_size, dec_dim, dec_layers, dec_heads, 4 * dec_dim,
                               dropout, dropout, dropout)
        self.pose_proj = nn.Linear(encoder.latent_dim, contrast_dim)
        self.text_proj = nn.Linear(dec_dim, contrast_dim)

    def losses(self, z: torch.Tensor, mask: torch.Tensor, inputs: torch.Tensor,
               targets: torch.Tensor, tmask: torch.Tensor, *, label_smoothing: float,
               tau: float, tf_ratio: float = 1.0) -> dict[str, torch.Tensor]:
        """L_text, L_word, L_contrast for decoder ``inputs`` (BOS …) and ``targets`` (… EOS)."""
        memory = self.bridge(z)
        if tf_ratio < 1.0:  # two-pass scheduled sampling (docs/methods/signx.md)
            with torch.no_grad():
                logits0, _, _ = self.decoder(inputs, tmask, memory, mask)
            pred = logits0.argmax(-1)
            shifted = torch.cat([inputs[:, :1], pred[:, :-1]], dim=1)
            use_model = torch.rand(inputs.shape, device=inputs.device) >= tf_ratio
            use_model[:, 0] = False
            inputs = torch.where(use_model & tmask, shifted, inputs)
        logits, _, _ = self.decoder(inputs, tmask, memory, mask)
        valid = tmask
        l_text = F.cross_entropy(logits[valid].float(), targets[valid],
                                 label_smoothing=label_smoothing)
        table = self.decoder.embed.weight
        e_pred = torch.softmax(logits[valid].float(), -1) @ table.float()
        e_true = table[targets[valid]].float()
        l_word = (1 - F.cosine_similarity(e_pred, e_true, dim=-1)).mean()
        z_pose = F.normalize(self.pose_proj(masked_mean(z, mask)).float(), dim=-1)
        e_text = F.normalize(self.text_proj(masked_mean(table[targets], valid)).float(), dim=-1)
        sim = z_pose @ e_text.T / tau
        l_contrast = F.cross_entropy(sim, torch.arange(len(sim), device=sim.device))
        return {"loss_text": l_text, "loss_word": l_word, "loss_contrast": l_contrast}


class Vid2Pose(nn.Module):
    """Stage 2: frames (B, T, H, W, 3) in [0, 1] → predicted pose formats {name: (B, T, D_i)}."""

    def __init__(self, formats: Mapping[str, int], image_size: int, patch_size: int, dim: int,
                 depth: int, heads: int, temporal_layers: int, dropout: float = 0.0) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"Vid2Pose: image_size {image_size} is not a multiple of "
                             f"patch_size {patch_size}")
        self.formats = dict(formats)
        self.image_size, self.patch_size, self.dim = image_size, patch_size, dim
        n = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.spatial = Encoder(dim, depth, heads, 4 * dim, dropout, dropout, dropout)
        self.temporal = Encoder(dim, temporal_layers, heads, 4 * dim, dropout, dropout, dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(dim, w) for name, w in self.formats.items()})
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD), persistent=False)

    def frame_features(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """v_t (B, T, dim) from the spatial ViT (eq. 4), computed on the valid frames only."""
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(f"signx Vid2Pose: frames have shape {tuple(frames.shape)}, expected "
                             f"(B, T, H, W, 3)")
        b, t, h, w, _ = frames.shape
        x = frames[mask].float()
        if frames.dtype == torch.uint8:
            x = x / 255.0
        x = ((x - self.pixel_mean) / self.pixel_std).permute(0, 3, 1, 2)
        if (h, w) != (self.image_size, self.image_size):  # e.g. PHOENIX 210x260 → square
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False)
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        cls = self.spatial(x)[:, 0]
        out = cls.new_zeros(b, t, self.dim)
        out[mask] = cls
        return out

    def forward(self, frames: torch.Tensor, mask: torch.Tensor
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """({format: P̂_i}, V_temp) for ``frames`` with frame ``mask`` (B, T)."""
        v = self.frame_features(frames, mask)
        v = v + sinusoidal_positions(v.shape[1], self.dim, v.device, v.dtype)[None]
        v_temp = self.temporal(v, mask)  # eq. (5)
        return {name: head(v_temp) for name, head in self.heads.items()}, v_temp


def vid2pose_loss(pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                  mask: torch.Tensor) -> torch.Tensor:
    """Eq. (14): Σ_i mean-squared error of format i over the valid frames."""
    total = torch.zeros((), device=mask.device)
    for name, p in pred.items():
        if name not in target:
            raise ValueError(f"signx: Vid2Pose needs ground-truth pose format {name!r}; the "
                             f"batch has {sorted(target)}")
        total = total + F.mse_loss(p[mask].float(), target[name][mask].float())
    return total


__all__ = ["FormatEncoder", "Pose2Gloss", "PoseEncoder", "Vid2Pose", "vid2pose_loss"]
