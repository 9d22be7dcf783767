"""ResNet-18/34/50 (He et al., 2016) with timm / torchvision parameter names, written by hand.

Why hand-written: timm (the library the methods' papers use for ResNet-50) cannot be installed on
the reference machine — it needs torchvision, and only CUDA torchvision wheels exist, which fail
to import against the CPU torch build. The architecture below is timm's / torchvision's ResNet
v1.5 with the *same parameter names* (``conv1``, ``bn1``, ``layer1``..``layer4``.{i}.``conv1`` /
``bn1`` / ``conv2`` / ``bn2`` / ``conv3`` / ``bn3`` / ``downsample.0`` / ``downsample.1``,
``fc``), so a local timm or torchvision checkpoint (state dict) loads with
:func:`baselines.common.weights.load_weights` (its classifier ``fc`` is dropped when
``num_classes=0``).

Architecture (v1.5, as timm ``resnet50`` and torchvision): stem conv 7×7 stride 2 → BN → ReLU →
max-pool 3×3 stride 2; four stages of ``layers`` blocks with widths ``base_width × (1, 2, 4, 8)``
and stride (1, 2, 2, 2); BasicBlock (two 3×3 convs, expansion 1) for ResNet-18/34, Bottleneck
(1×1 → 3×3 → 1×1, expansion 4) for ResNet-50 with the stride on the 3×3 conv (v1.5); projection
shortcut (1×1 conv stride s → BN) when the shape changes. ``num_features`` =
``8 · base_width · expansion`` (2048 for ResNet-50 at ``base_width=64``).

``base_width`` (our knob, *not* timm's ``base_width`` which is the bottleneck width per group):
scales the stem and every stage width, so tiny CPU profiles can use e.g. ``base_width=8``
(ResNet-50 then has ~370 K parameters instead of 23.5 M). At 64 the model is exactly timm's:
ResNet-50 without ``fc`` has 23,508,032 parameters (timm ``resnet50(num_classes=0)``).

Initialisation (torchvision's): Kaiming-normal (fan_out, ReLU) convs, BN γ = 1 and β = 0, the
classifier PyTorch's default. ``zero_init_last=True`` sets the last BN γ of every residual branch
to 0 (each block starts as the identity; Goyal et al., 2017) — timm's default, torchvision's
option; we default to ``False`` (torchvision) and record it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

BlockKind = Literal["basic", "bottleneck"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs (stride on the first) with an identity or projection shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act2(y + shortcut)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (stride here: ResNet v1.5) → 1×1 expand ×4, plus the shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = _conv1x1(width, out)
        self.bn3 = nn.BatchNorm2d(out)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.act2(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.act3(y + shortcut)


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


class ResNet(nn.Module):
    """ResNet v1.5 (timm / torchvision names). See the module docstring.

    ``forward_features(x)``: (B, in_chans, H, W) → (B, num_features, H/32, W/32) (ceil-ish: each
    stride-2 step maps h to ⌊(h − 1)/2⌋ + 1). ``forward(x)``: global average pool → (B,
    num_features), or logits (B, num_classes) through ``fc`` when ``num_classes > 0``.
    """

    def __init__(self, layers: Sequence[int], block: BlockKind, *, base_width: int = 64,
                 in_chans: int = 3, num_classes: int = 0, zero_init_last: bool = False) -> None:
        super().__init__()
        if block not in _BLOCKS:
            raise ValueError(f"ResNet block must be one of {sorted(_BLOCKS)}, got {block!r}")
        layers = tuple(int(n) for n in layers)
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"ResNet layers must be 4 positive block counts, got {layers}")
        if base_width < 1 or in_chans < 1 or num_classes < 0:
            raise ValueError(
                f"ResNet needs base_width >= 1, in_chans >= 1, num_classes >= 0; got "
                f"base_width={base_width}, in_chans={in_chans}, num_classes={num_classes}"
            )
        cls = _BLOCKS[block]
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = base_width
        for i, (n, stride) in enumerate(zip(layers, (1, 2, 2, 2), strict=True)):
            width = base_width * 2**i
            out = width * cls.expansion
            down = None
            if stride != 1 or cin != out:
                down = nn.Sequential(_conv1x1(cin, out, stride), nn.BatchNorm2d(out))
            blocks = [cls(cin, width, stride, down)]
            blocks += [cls(out, width) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = out
        self.num_features: int = cin
        self.fc: nn.Module = nn.Linear(cin, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck):
                    nn.init.zeros_(m.last_bn().weight)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"ResNet expects input (B, {self.in_chans}, H, W), got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"ResNet expects a floating-point input, got dtype {x.dtype}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean(dim=(2, 3)))


def resnet18(**kw) -> ResNet:
    """ResNet-18: BasicBlock, (2, 2, 2, 2); 11,176,512 parameters without ``fc`` at base 64."""
    return ResNet((2, 2, 2, 2), "basic", **kw)


def resnet34(**kw) -> ResNet:
    """ResNet-34: BasicBlock, (3, 4, 6, 3); 21,284,672 parameters without ``fc`` at base 64."""
    return ResNet((3, 4, 6, 3), "basic", **kw)


def resnet50(**kw) -> ResNet:
    """ResNet-50 v1.5: Bottleneck, (3, 4, 6, 3); 23,508,032 parameters without ``fc`` at base 64."""
    return ResNet((3, 4, 6, 3), "bottleneck", **kw)
