"""Light RGB and keypoint stream encoders (T frames → T/4 features) and the VL-mapper.

HyperSign (Sec. 2.1) follows TS-SLT (Chen et al., 2022b): each stream has its own feature
extractor and VL-mapper, giving F_v and F_k of T/4 × 1024 that the fusion and mBART consume. The
published extractors are S3D networks pre-trained on sign recognition (RGB video and keypoint
heatmaps); SignBench has no such checkpoints and must train on CPU, so these are *light* stand-ins
with the same interface (our choice, recorded here):

* :class:`RGBEncoder` — a per-frame 2D CNN (stride-2 3×3 convs with BatchNorm + GELU; adaptive
  average pooling to ``pool × pool``, flattened so the spatial layout — where the hands are — is
  kept; a linear projection to ``dim``), then :class:`TemporalDownsample`. Only the valid
  (unpadded) frames go through the CNN.
* :class:`KeypointEncoder` — per frame, the (J, 3) keypoints (x, y centred on the image middle and
  scaled ×2; confidence as given) flattened → Linear → GELU → Linear to ``dim``, then
  :class:`TemporalDownsample`.
* ``frame_stride`` (both encoders): 2 groups consecutive frame pairs before the per-frame network
  (halving its cost on CPU; the tiny profile uses it) and leaves one temporal stride-2 step.
* :class:`TemporalDownsample` — two Conv1d(kernel 5, stride 2) blocks with LayerNorm + GELU; the
  time axis shrinks to ceil(ceil(T/2)/2) ≈ T/4 (the S3D stride of the papers). Padded steps are
  zeroed before every convolution so they never leak into valid outputs' neighbours beyond
  the convolution's reach of real zeros; the output mask is recomputed from the lengths.
* :class:`VLMapper` — TS-SLT's visual-language mapper: Linear → GELU → Linear into the language
  model's embedding width (two layers as in MMTLB / TS-SLT; GELU is our choice).

Every module takes ``(x, mask)`` with ``mask`` (B, T) bool, True = valid, and returns
``(features (B, T', dim), mask' (B, T'))``.
"""

from __future__ import annotations

import torch
from torch import nn


def downsampled_lengths(lengths: torch.Tensor, steps: int = 2) -> torch.Tensor:
    """Lengths after ``steps`` stride-2 convolutions with padding k//2: ceil(L / 2) each."""
    out = lengths
    for _ in range(steps):
        out = torch.div(out + 1, 2, rounding_mode="floor")
    return out


def lengths_to_mask(lengths: torch.Tensor, t_max: int) -> torch.Tensor:
    return torch.arange(t_max, device=lengths.device)[None, :] < lengths[:, None]


def _check_mask(x: torch.Tensor, mask: torch.Tensor, where: str) -> None:
    if mask.dtype != torch.bool or mask.shape != x.shape[:2]:
        raise ValueError(f"{where}: mask must be bool (B, T) = {tuple(x.shape[:2])}, got "
                         f"{mask.dtype} {tuple(mask.shape)}")
    if not bool(mask.any(dim=1).all()):
        raise ValueError(f"{where}: a batch item has no valid frame (mask all False)")


class TemporalDownsample(nn.Module):
    """Two Conv1d(k=5, stride 2) + LayerNorm + GELU blocks: (B, T, d) → (B, ≈T/4, d)."""

    def __init__(self, dim: int, kernel: int = 5, steps: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.steps = steps
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, dim, kernel, stride=2, padding=kernel // 2) for _ in range(steps))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(steps))
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = mask.sum(1)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = x * mask[..., None].to(x.dtype)
            x = conv(x.transpose(1, 2)).transpose(1, 2)
            lengths = downsampled_lengths(lengths, 1)
            mask = lengths_to_mask(lengths, x.shape[1])
            x = self.dropout(self.act(norm(x)))
        return x * mask[..., None].to(x.dtype), mask


class RGBEncoder(nn.Module):
    """Per-frame CNN + temporal downsampling: frames (B, T, H, W, 3) → (B, ≈T/4, dim).

    ``frame_stride`` 2 stacks each pair of consecutive frames on the channel axis (6 input
    channels) before the CNN, which halves its cost; one stride-2 temporal convolution then
    completes the T/4 reduction (``frame_stride`` 1: two of them).
    """

    def __init__(self, dim: int, channels: tuple[int, ...] = (16, 32, 64), pool: int = 4,
                 dropout: float = 0.1, frame_stride: int = 1) -> None:
        super().__init__()
        if frame_stride not in (1, 2, 4):
            raise ValueError(f"RGBEncoder: frame_stride must be 1, 2 or 4, got {frame_stride}")
        self.frame_stride = frame_stride
        layers: list[nn.Module] = []
        c_in = 3 * frame_stride
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c), nn.GELU()]
            c_in = c
        layers += [nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Linear(c_in * pool * pool, dim)]
        self.cnn = nn.Sequential(*layers)
        self.temporal = TemporalDownsample(dim, steps=_temporal_steps(frame_stride),
                                           dropout=dropout)
        self.dim = dim

    def forward(self, frames: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(f"RGBEncoder: frames must be (B, T, H, W, 3), got "
                             f"{tuple(frames.shape)}")
        _check_mask(frames, mask, "RGBEncoder")
        frames, mask = stack_frames(frames, mask, self.frame_stride)  # (B, T', s, H, W, 3)
        dtype = self.cnn[-1].weight.dtype
        valid = frames[mask]  # (N_valid, s, H, W, 3): padded steps never enter the CNN
        x = valid.to(dtype)
        if frames.dtype == torch.uint8:
            x = x / 255.0
        x = (x - 0.5) / 0.25
        n, s, h, w, c = x.shape
        feats = self.cnn(x.permute(0, 1, 4, 2, 3).reshape(n, s * c, h, w))
        out = feats.new_zeros(*mask.shape, self.dim)
        out[mask] = feats
        return self.temporal(out, mask)


def _temporal_steps(frame_stride: int) -> int:
    return {1: 2, 2: 1, 4: 0}[frame_stride]


def stack_frames(x: torch.Tensor, mask: torch.Tensor, stride: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, ...) → (B, ceil(T/stride), stride, ...): consecutive steps grouped (zero-padded).

    A group is valid when its first step is (lengths become ceil(L / stride)).
    """
    b, t = x.shape[:2]
    t_out = -(-t // stride)
    if t_out * stride != t:
        pad = x.new_zeros(b, t_out * stride - t, *x.shape[2:])
        x = torch.cat([x, pad], dim=1)
    lengths = torch.div(mask.sum(1) + stride - 1, stride, rounding_mode="floor")
    return x.view(b, t_out, stride, *x.shape[2:]), lengths_to_mask(lengths, t_out)


class KeypointEncoder(nn.Module):
    """Per-frame MLP over (J, 3) keypoints + temporal downsampling → (B, ≈T/4, dim).

    ``frame_stride`` groups consecutive frames (their keypoints concatenated) as ``RGBEncoder``.
    """

    def __init__(self, dim: int, joints: int = 75, hidden: int = 256,
                 dropout: float = 0.1, frame_stride: int = 1) -> None:
        super().__init__()
        if frame_stride not in (1, 2, 4):
            raise ValueError(f"KeypointEncoder: frame_stride must be 1, 2 or 4, got "
                             f"{frame_stride}")
        self.joints, self.frame_stride = joints, frame_stride
        self.frame_mlp = nn.Sequential(nn.Linear(joints * 3 * frame_stride, hidden), nn.GELU(),
                                       nn.Linear(hidden, dim))
        self.temporal = TemporalDownsample(dim, steps=_temporal_steps(frame_stride),
                                           dropout=dropout)

    def forward(self, keypoints: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if keypoints.ndim != 4 or keypoints.shape[2:] != (self.joints, 3):
            raise ValueError(f"KeypointEncoder: keypoints must be (B, T, {self.joints}, 3), got "
                             f"{tuple(keypoints.shape)}")
        _check_mask(keypoints, mask, "KeypointEncoder")
        kp = keypoints.to(self.frame_mlp[0].weight.dtype)
        kp = torch.cat([(kp[..., :2] - 0.5) * 2.0, kp[..., 2:]], dim=-1)
        kp, mask = stack_frames(kp, mask, self.frame_stride)  # (B, T', s, J, 3)
        x = self.frame_mlp(kp.flatten(2)) * mask[..., None].to(kp.dtype)
        return self.temporal(x, mask)


class VLMapper(nn.Module):
    """Visual-language mapper (TS-SLT / MMTLB): Linear → GELU → Linear, mask unchanged."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_in, dim_out), nn.GELU(),
                                 nn.Linear(dim_out, dim_out))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x) * mask[..., None].to(x.dtype), mask


__all__ = ["KeypointEncoder", "RGBEncoder", "TemporalDownsample", "VLMapper",
           "downsampled_lengths", "lengths_to_mask", "stack_frames"]
