"""SignFuse's visual feature stream (Sec. 3.2, eqs. 2–3).

``VisualStream``: ResNet-50 (``baselines.common.resnet``, timm names; ``base_width`` scales it
for tiny profiles) on every *valid* frame (padded frames are never run), global average pooled
(d_v = 2048 at base width 64) → Conv1D(k = 3, s = 2, padding 1) → BatchNorm1d → ReLU →
(B, ⌈T/2⌉, d). Frames arrive as uint8 (B, T, H, W, 3) and are standardised with the ImageNet
mean / std. Design notes: ``docs/methods/signfuse.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.common.resnet import ResNet
from baselines.signfuse.masks import downsampled_mask, zero_padded

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VisualStream(nn.Module):
    """Frames (B, T, H, W, 3) uint8 or float in [0, 1] + mask → (B, ⌈T/2⌉, d), mask."""

    def __init__(self, d: int = 512, base_width: int = 64,
                 layers: tuple[int, int, int, int] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.backbone = ResNet(layers, "bottleneck", base_width=base_width)
        self.temporal = nn.Conv1d(self.backbone.num_features, d, kernel_size=3, stride=2,
                                  padding=1)
        self.bn = nn.BatchNorm1d(d)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def frame_features(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """F_v (B, T, d_v): GAP(ResNet(v_t)) of the valid frames, zeros at padding."""
        if frames.dim() != 5 or frames.shape[-1] != 3:
            raise ValueError(f"VisualStream: frames must be (B, T, H, W, 3), got "
                             f"{tuple(frames.shape)}")
        if tuple(mask.shape) != tuple(frames.shape[:2]):
            raise ValueError(f"VisualStream: mask has shape {tuple(mask.shape)}, expected "
                             f"{tuple(frames.shape[:2])}")
        x = frames[mask]  # (N, H, W, 3) valid frames only
        x = x.float() / 255.0 if not x.is_floating_point() else x.float()
        x = (x.permute(0, 3, 1, 2) - self.mean) / self.std
        feats = self.backbone(x)  # (N, d_v)
        out = feats.new_zeros(*mask.shape, feats.shape[-1])
        out[mask] = feats
        return out

    def forward(self, frames: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        fv = self.frame_features(frames, mask)
        y = torch.relu(self.bn(self.temporal(fv.transpose(1, 2)))).transpose(1, 2)
        mask2 = downsampled_mask(mask, 2)
        return zero_padded(y, mask2), mask2


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VisualStream"]
