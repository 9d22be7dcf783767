"""DINOv2 Vision Transformer (Oquab et al., 2023) with timm parameter names, written by hand.

Why hand-written: timm (whose ``vit_small_patch14_dinov2`` HFA's frame encoder is) cannot be
installed on the reference machine — it needs torchvision, and only CUDA torchvision wheels exist,
which fail to import against the CPU torch build. This module is timm's ``VisionTransformer`` as
configured for DINOv2, with the *same parameter names* (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``blocks.{i}.norm1`` / ``.attn.qkv`` / ``.attn.proj`` / ``.ls1.gamma`` /
``.norm2`` / ``.mlp.fc1`` / ``.mlp.fc2`` / ``.ls2.gamma``, ``norm``), so a local timm checkpoint
— or Meta's original ``dinov2_vits14_pretrain.pth``, which uses the same names plus an unused
``mask_token`` — loads with :func:`baselines.common.weights.load_weights`.

Architecture (timm ``vit_small_patch14_dinov2``, ``num_classes=0``): patch embedding = Conv2d
(kernel = stride = 14, bias) → tokens; a learned CLS token is prepended and a learned absolute
position embedding for 1 + 37×37 tokens (``img_size`` 518 / 14) is added; ``depth`` pre-norm
blocks ``x += ls1(attn(norm1(x))); x += ls2(mlp(norm2(x)))`` with multi-head self-attention (qkv
bias, ``torch.nn.functional.scaled_dot_product_attention``), MLP Linear → GELU (exact) → Linear
with ratio 4, LayerScale (per-channel γ, ``init_values`` 1e-5), LayerNorm eps 1e-6 (timm's); a
final LayerNorm. No register tokens, no dropout / drop-path (DINOv2 fine-tuning settings vary; a
method can add them). ViT-S/14: 384 wide, 12 blocks, 6 heads, 22,056,192 parameters
(patch embed 226,176 + CLS 384 + position 526,080 + 12 × 1,775,232 + norm 768) — timm's count;
Meta's torch-hub ``dinov2_vits14`` reports 22,056,576 because it also holds the (1, 384)
``mask_token`` of its masked-image pretraining, which :func:`load_weights` drops.

Input size: any ``H``, ``W`` that are multiples of ``patch_size``; otherwise ``ValueError`` (the
shape is named). When the patch grid differs from the trained ``img_size / patch_size`` grid, the
patch part of ``pos_embed`` is resampled with bicubic interpolation (antialiased, in fp32; the CLS
entry is kept) — timm's ``resample_abs_pos_embed``, as used with ``dynamic_img_size=True``.
(Meta's original code adds a 0.1 offset to the scale factor and does not antialias; we follow
timm, whose checkpoints these are.)

Initialisation (timm's default ``init_weights``): ``pos_embed`` truncated normal std 0.02, CLS
normal std 1e-6, Linear weights truncated normal std 0.02 with zero bias, LayerNorm 1 / 0,
LayerScale γ = ``init_values``, the patch conv PyTorch's default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` patches → ``embed_dim`` tokens (timm's ``PatchEmbed``)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, D, H/p, W/p)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm names ``qkv``, ``proj``)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    """Per-channel learned scale γ (Touvron et al., 2021), initialised to ``init_values``."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.init_values = init_values
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """Linear → GELU → Linear (timm names ``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, init_values: float | None,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.ls1: nn.Module = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2: nn.Module = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def resample_pos_embed(pos_embed: torch.Tensor, new_grid: tuple[int, int],
                       old_grid: tuple[int, int], num_prefix_tokens: int = 1) -> torch.Tensor:
    """Bicubic (antialiased, fp32) resampling of the patch part of ``pos_embed`` (1, P+N, D)."""
    if tuple(new_grid) == tuple(old_grid):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    d = grid.shape[-1]
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", antialias=True)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, d).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


class VisionTransformer(nn.Module):
    """DINOv2-style ViT (timm names). See the module docstring.

    ``forward_features(x)``: (B, in_chans, H, W) → (B, 1 + N, D) tokens after the final norm
    (CLS first, then the N = (H/p)·(W/p) patch tokens in row-major order). ``forward(x)``: the CLS
    token (B, D).
    """

    def __init__(self, *, img_size: int = 518, patch_size: int = 14, embed_dim: int = 384,
                 depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0,
                 init_values: float | None = 1e-5, in_chans: int = 3,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        if patch_size < 1 or img_size < patch_size or img_size % patch_size:
            raise ValueError(
                f"VisionTransformer img_size ({img_size}) must be a positive multiple of "
                f"patch_size ({patch_size})"
            )
        if min(embed_dim, depth, num_heads, in_chans) < 1:
            raise ValueError(
                f"VisionTransformer needs embed_dim, depth, num_heads, in_chans >= 1; got "
                f"{embed_dim}, {depth}, {num_heads}, {in_chans}"
            )
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.num_features = embed_dim
        self.num_prefix_tokens = 1
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        n = self.grid_size[0] * self.grid_size[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + n, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, init_values, qkv_bias) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"VisionTransformer expects input (B, {self.in_chans}, H, W), got shape "
                f"{tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size or h == 0 or w == 0:
            raise ValueError(
                f"VisionTransformer input H, W must be positive multiples of patch_size "
                f"{self.patch_size}; got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"VisionTransformer expects a floating-point input, got {x.dtype}")

    def pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position embedding (1, 1 + gh·gw, D) for a ``grid`` = (gh, gw) patch grid."""
        return resample_pos_embed(self.pos_embed, grid, self.grid_size, self.num_prefix_tokens)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x = self.patch_embed(x)  # (B, D, gh, gw)
        grid = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed_for(grid)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[:, 0]


def vit_small_patch14_dinov2(**kw) -> VisionTransformer:
    """ViT-S/14 as DINOv2 (timm ``vit_small_patch14_dinov2``): 384 wide, 12 blocks, 6 heads."""
    args = dict(img_size=518, patch_size=14, embed_dim=384, depth=12, num_heads=6,
                init_values=1e-5)
    return VisionTransformer(**{**args, **kw})


def vit_tiny(**kw) -> VisionTransformer:
    """A CPU-sized DINOv2-style ViT for tiny profiles: 112 px, patch 14, 64 wide, 2 blocks, 2 heads.

    Same architecture and names as :func:`vit_small_patch14_dinov2`; any keyword overrides.
    """
    args = dict(img_size=112, patch_size=14, embed_dim=64, depth=2, num_heads=2, init_values=1e-5)
    return VisionTransformer(**{**args, **kw})
