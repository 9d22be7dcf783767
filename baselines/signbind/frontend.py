"""SignBind-LLM's visual front end: per-frame ViT features of the RGB video and the mouth crops.

Paper, "Method Summary" / "Architecture Onboarding": DINOv2 features for signing and
fingerspelling (one shared encoder), a separate ViT for lipreading. Here both are
DINOv2-architecture ViTs (``baselines.common.vit``); every stream is subsampled by
``frame_stride``, each valid frame is encoded (``frame_pooling``: [CLS; mean patch] or all
patches), optionally centred per video (:func:`center_features`), and — while a stage keeps the
encoder frozen — cached per sample inside ``training_step`` only (never in ``generate``).
:class:`VisualFrontend` is the part of :class:`baselines.signbind.model.SignBind` that does this.
Design notes and measurements: ``docs/methods/signbind.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from baselines.common.sample_cache import SampleCache, one_sample
from baselines.common.vit import VisionTransformer
from baselines.signbind.config import SignBindConfig
from harness.data.batching import Batch

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build_vit(img: int, patch: int, dim: int, depth: int, heads: int, init_values: float,
              init: str | None) -> VisionTransformer:
    """A DINOv2-architecture ViT (random init, or the local weights ``init`` names: a file or
    a folder of ``*.safetensors`` — a stand-in's or a timm / DINOv2 checkpoint's — loaded
    strictly: every key must match; only a classifier head / ``mask_token`` is dropped)."""
    vit = VisionTransformer(img_size=img, patch_size=patch, embed_dim=dim, depth=depth,
                            num_heads=heads, init_values=init_values)
    if init is not None:
        from baselines.common.weights import load_weights

        load_weights(vit, init, strict=True)
    return vit


def center_features(feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Subtract each video's mean feature over its valid frames (padding stays zero).

    (B, T, D), mask (B, T) bool → (B, T, D). Per sample, so the result does not depend on what
    else is in the batch (``feature_centering`` in ``docs/methods/signbind.md``)."""
    m = mask[..., None].to(feats.dtype)
    mean = (feats * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)
    return (feats - mean) * m


def masked_stride(x: torch.Tensor, mask: torch.Tensor, stride: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``stride``-th time step of a (B, T, ...) stream and its (B, T) mask."""
    if stride == 1:
        return x, mask
    return x[:, ::stride], mask[:, ::stride]


class VisualFrontend:
    """Frame / lip features of :class:`~baselines.signbind.model.SignBind` (a mixin: it reads
    the model's ``config``, encoders and feature caches)."""

    config: SignBindConfig
    frame_encoder: nn.Module
    lip_encoder: nn.Module
    inputs: tuple[str, ...]
    _feature_cache: dict[str, SampleCache]
    _in_training_step: bool
    nvtx: Callable[[str], Any]

    def _feature_dim(self, img: int, patch: int, dim: int) -> int:
        """Per-frame feature size: 2D for ``cls_mean``, (img/patch)² · D for ``patches``."""
        if self.config.frame_pooling == "patches":
            return (img // patch) ** 2 * dim
        return 2 * dim

    def _stream(self, batch: Batch, stream: str) -> tuple[torch.Tensor, torch.Tensor]:
        if stream not in batch.inputs:
            raise ValueError(f"signbind: the batch lacks the {stream!r} stream (it has "
                             f"{sorted(batch.inputs)}); collate with streams={self.inputs}")
        return batch.inputs[stream], batch.masks[stream]

    def _pixels(self, video: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 or [0, 1] float → (N, 3, H, W) normalised float."""
        if video.dim() != 4 or video.shape[-1] != 3:
            raise ValueError(f"signbind: expected video frames (N, H, W, 3), got "
                             f"{tuple(video.shape)}")
        x = video.float() / 255.0 if video.dtype == torch.uint8 else video.float()
        x = x.permute(0, 3, 1, 2)
        if self.config.imagenet_norm:
            mean = x.new_tensor(IMAGENET_MEAN)[None, :, None, None]
            std = x.new_tensor(IMAGENET_STD)[None, :, None, None]
            return (x - mean) / std
        return (x - 0.5) / 0.5

    def _encode_video(self, vit: nn.Module, video: torch.Tensor, mask: torch.Tensor
                      ) -> torch.Tensor:
        """(B, T, H, W, 3) → (B, T, D') per-frame features (``frame_pooling``; valid frames
        only go through the ViT; padding stays zero)."""
        b, t = mask.shape
        x = self._pixels(video[mask])
        if self.config.frame_pooling == "patches" and x.shape[-1] != vit.img_size:
            raise ValueError(f"signbind: frame_pooling='patches' needs {vit.img_size}×"
                             f"{vit.img_size} inputs for this encoder, got "
                             f"{tuple(x.shape[-2:])} (set frame_img_size / lip_img_size to the "
                             f"data's resolution, or frame_pooling='cls_mean')")
        tokens = vit.forward_features(x)
        if self.config.frame_pooling == "patches":
            feats = tokens[:, 1:].flatten(1)
        else:
            feats = torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], dim=-1)
        out = feats.new_zeros(b, t, feats.shape[-1])
        out[mask] = feats
        return out

    @staticmethod
    def _frozen(module: nn.Module) -> bool:
        return module.training and not any(p.requires_grad for p in module.parameters())

    def _run(self, modules: Sequence[nn.Module], fn: Callable[[], Any]) -> Any:
        """Run ``fn`` with frozen ``modules`` in eval mode without autograd (the paper's frozen
        experts); trainable ones run as they are."""
        if not all(self._frozen(m) for m in modules):
            return fn()
        for m in modules:
            m.eval()
        try:
            with torch.no_grad():
                return fn()
        finally:
            for m in modules:
                m.train()

    def frame_features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Strided frame features (B, T', D) and mask (cached while frozen, ``_cached``)."""
        return self._cached(batch, "frame", lambda b: self._video_features(
            b, "frames", self.frame_encoder, "frontend"))

    def lip_features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Strided mouth-crop features and mask (cached while frozen, ``_cached``)."""
        return self._cached(batch, "lip", lambda b: self._video_features(
            b, "lips", self.lip_encoder, "lip_frontend"))

    def _video_features(self, batch: Batch, stream: str, encoder: nn.Module, stage: str
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """``stream`` strided by ``frame_stride``, encoded by ``encoder`` (ViT per frame) and
        centred per video when ``feature_centering`` is on."""
        video, mask = self._stream(batch, stream)
        video, mask = masked_stride(video, mask, self.config.frame_stride)
        with self.nvtx(stage):
            feats = self._run([encoder], lambda: self._encode_video(encoder, video, mask))
        if self.config.feature_centering:
            feats = center_features(feats, mask)
        return feats, mask

    def _cached(self, batch: Batch, key: str,
                compute: Callable[[Batch], tuple[torch.Tensor, torch.Tensor]]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``compute(batch)`` → (feats (B, T, D), mask), cached per sample name while the stage
        keeps the producing encoder frozen (``training_step`` only, never ``generate``); a
        missing sample is computed alone and unpadded, so its row never depends on its batch
        (exact resume)."""
        cache = self._feature_cache.get(key) if self._in_training_step else None
        if cache is None:
            return compute(batch)
        return cache.fetch(batch.names, lambda i: compute(one_sample(batch, i)),
                           batch.lengths.device)


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VisualFrontend", "build_vit", "center_features",
           "masked_stride"]
