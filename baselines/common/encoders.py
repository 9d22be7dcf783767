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
* :class:`KeypointEncoder` — per frame, normalised keypoints (:func:`normalize_keypoints`)
  flattened → Linear → GELU → Linear to ``dim``, then :class:`TemporalDownsample`.
* :func:`normalize_keypoints` (``normalize="body"``, the default, for the SignFuse-75 layout of
  ``harness.data.keypoints``) — why: raw image coordinates mix what a sign is (hand shape and
  where the hands move relative to the body) with who signs and where they stand (signer scale
  0.27–0.33 of the image, offset ±0.03 in the synthetic corpus; camera framing in real data), and
  a hand's finger configuration is a ~0.01–0.03 ripple on top of a ~0.2 wrist trajectory. So,
  per sample: (a) every joint relative to the shoulder midpoint, divided by the shoulder width
  (both the mean over frames where both shoulders are detected: a signer-size frame that does not
  jitter with per-frame noise); (b) in addition, each hand's 21 joints relative to its own wrist
  (joint 0 of the hand) in the same unit, ×``HAND_GAIN`` (3) so the hand shape is on the scale of
  the body coordinates; (c) undetected joints (confidence 0) are zeroed in both and keep their
  confidence 0 as a feature. Per frame 75·3 + 42·2 = 309 values. Other layouts, or
  ``normalize="image"``: x, y centred on the image middle and ×2, confidence as given (J·3).
  Pose normalisation of this kind is standard for keypoint SLT/SLR (e.g. centring on the neck and
  scaling by shoulder width in OpenPose-based models); the exact recipe here is our choice.
* ``frame_stride`` (both encoders): 2 groups consecutive frame pairs before the per-frame network
  (halving its cost on CPU; the tiny profile uses it) and leaves one temporal stride-2 step.
* :class:`TemporalDownsample` — two Conv1d(kernel 5, stride 2) blocks with LayerNorm + GELU; the
  time axis shrinks to ceil(ceil(T/2)/2) ≈ T/4 (the S3D stride of the papers). Padded steps are
  zeroed before every convolution so they never leak into valid outputs' neighbours beyond
  the convolution's reach of real zeros; the output mask is recomputed from the lengths.
* :class:`VLMapper` — TS-SLT's visual-language mapper: Linear → GELU → Linear into the language
  model's embedding width (two layers as in MMTLB / TS-SLT; GELU is our choice), plus a skip
  path (our addition, measured necessary from scratch; see the class).

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


#: SignFuse-75 layout (``harness.data.keypoints``): hands 0–20 / 21–41 (wrist first), upper body
#: 42–64 (MediaPipe pose order: shoulders at 42 + 11 / 42 + 12), face 65–74.
SIGNFUSE_JOINTS = 75
_HANDS = (slice(0, 21), slice(21, 42))
_SHOULDERS = (42 + 11, 42 + 12)
HAND_GAIN = 3.0
KEYPOINT_NORMALIZATIONS = ("body", "image")


def keypoint_feature_width(joints: int, normalize: str = "body") -> int:
    """Per-frame feature width :func:`normalize_keypoints` produces."""
    if normalize == "body" and joints == SIGNFUSE_JOINTS:
        return joints * 3 + 2 * 21 * 2
    return joints * 3


def shoulder_frame(xy: torch.Tensor, seen: torch.Tensor, shoulders: tuple[int, int]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The signer's clip-level frame: (B, 2) mean mid-shoulder and (B,) mean shoulder width over
    the frames where ``seen`` (B, T, J) marks both shoulders; the image frame (centre 0.5, unit
    0.5) for a clip with no such frame. ``xy`` is (B, T, J, 2)."""
    left, right = shoulders
    both = seen[..., left] * seen[..., right]  # (B, T)
    n = both.sum(1).clamp_min(1.0)  # (B,)
    mid = ((xy[:, :, left] + xy[:, :, right]) / 2 * both[..., None]).sum(1) / n[:, None]
    width = ((xy[:, :, left] - xy[:, :, right]).norm(dim=-1) * both).sum(1) / n
    has = both.sum(1) > 0
    mid = torch.where(has[:, None], mid, torch.full_like(mid, 0.5))
    width = torch.where(has, width, torch.full_like(width, 0.5)).clamp_min(1e-3)
    return mid, width


def normalize_keypoints(kp: torch.Tensor, mask: torch.Tensor, normalize: str = "body"
                        ) -> torch.Tensor:
    """(B, T, J, 3) keypoints → (B, T, F) per-frame features (module docstring; F from
    :func:`keypoint_feature_width`). Padded frames (``mask`` False) come out as zeros."""
    if normalize not in KEYPOINT_NORMALIZATIONS:
        raise ValueError(f"normalize_keypoints: normalize must be one of "
                         f"{KEYPOINT_NORMALIZATIONS}, got {normalize!r}")
    joints = kp.shape[2]
    xy, conf = kp[..., :2], kp[..., 2:]
    valid = mask[..., None, None].to(kp.dtype)
    if normalize == "image" or joints != SIGNFUSE_JOINTS:
        return (torch.cat([(xy - 0.5) * 2.0, conf], dim=-1) * valid).flatten(2)
    seen = (conf[..., 0] > 0).to(kp.dtype) * mask.to(kp.dtype)[..., None]  # (B, T, J)
    mid, width = shoulder_frame(xy, seen, _SHOULDERS)
    body = (xy - mid[:, None, None, :]) / width[:, None, None, None] * seen[..., None]
    hands = []
    for hand in _HANDS:
        h = (xy[:, :, hand] - xy[:, :, hand][:, :, :1]) / width[:, None, None, None]
        hands.append(h * HAND_GAIN * seen[:, :, hand, None] * seen[:, :, hand][:, :, :1, None])
    feats = torch.cat([torch.cat([body, conf], -1).flatten(2), *(h.flatten(2) for h in hands)],
                      dim=-1)
    return feats * mask[..., None].to(kp.dtype)


class KeypointEncoder(nn.Module):
    """Per-frame MLP over normalised keypoints + temporal downsampling → (B, ≈T/4, dim).

    ``normalize``: ``"body"`` (signer-centred + hand-local coordinates; SignFuse-75 only, see
    :func:`normalize_keypoints`) or ``"image"``. ``frame_stride`` groups consecutive frames (their
    features concatenated) as ``RGBEncoder``.
    """

    def __init__(self, dim: int, joints: int = 75, hidden: int = 256,
                 dropout: float = 0.1, frame_stride: int = 1, normalize: str = "body") -> None:
        super().__init__()
        if frame_stride not in (1, 2, 4):
            raise ValueError(f"KeypointEncoder: frame_stride must be 1, 2 or 4, got "
                             f"{frame_stride}")
        if normalize not in KEYPOINT_NORMALIZATIONS:
            raise ValueError(f"KeypointEncoder: normalize must be one of "
                             f"{KEYPOINT_NORMALIZATIONS}, got {normalize!r}")
        self.joints, self.frame_stride, self.normalize = joints, frame_stride, normalize
        width = keypoint_feature_width(joints, normalize)
        self.frame_mlp = nn.Sequential(nn.Linear(width * frame_stride, hidden), nn.GELU(),
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
        feats = normalize_keypoints(kp, mask, self.normalize)  # (B, T, F)
        feats, mask = stack_frames(feats, mask, self.frame_stride)  # (B, T', s, F)
        x = self.frame_mlp(feats.flatten(2)) * mask[..., None].to(feats.dtype)
        return self.temporal(x, mask)


class VLMapper(nn.Module):
    """Visual-language mapper (TS-SLT / MMTLB): a two-layer MLP (Linear → GELU → Linear) plus a
    skip path (identity, or a bias-free Linear when the widths differ); mask unchanged.

    Why the skip (our addition): trained from scratch, the plain MLP mapper kept the translator
    from ever using its input. Measured on the synthetic corpus (tiny mBART, 200 steps, *oracle*
    frozen gloss embeddings as input): with the plain MLP the decoder's dev loss with the real
    encoder states equalled the loss with the states zeroed (1.65 vs 1.68 — the sentence prior
    only), with the skip it fell to 1.13 (2.17 zeroed), as with a single Linear (0.98 / 2.24). The
    published mappers start from pre-trained recognition features *and* a G2T-pre-trained mBART;
    the skip gives the from-scratch tiny profile the same well-conditioned starting point.
    """

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_in, dim_out), nn.GELU(),
                                 nn.Linear(dim_out, dim_out))
        self.skip = nn.Identity() if dim_in == dim_out else nn.Linear(dim_in, dim_out, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.skip(x) + self.net(x)) * mask[..., None].to(x.dtype), mask


__all__ = ["KEYPOINT_NORMALIZATIONS", "KeypointEncoder", "RGBEncoder", "TemporalDownsample",
           "VLMapper", "downsampled_lengths", "keypoint_feature_width", "lengths_to_mask",
           "normalize_keypoints", "stack_frames"]
