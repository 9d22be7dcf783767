"""SignBind-LLM's pretrained parts as ``harness.pretrain`` stand-in declarations.

The paper starts from DINOv2 (signing / fingerspelling frames, one shared encoder), a ViT for the
mouth crops and LLaMA-2 7B with LoRA. :func:`standin_declarations` turns a
:class:`~baselines.signbind.config.SignBindConfig` into one :class:`harness.method.StandIn` per
part, with exactly the architecture :class:`~baselines.signbind.model.SignBind` builds, so the
trained stand-in loads strictly (``frontend.build_vit``, ``baselines.common.llm.build_llama``).
Why, and what it replaced: ``docs/methods/signbind.md`` ("Pretrained stand-ins (issue 20)").
"""

from __future__ import annotations

from typing import Any

from baselines.signbind.config import SignBindConfig
from harness.method import StandIn

VIT_MODULE = "baselines.common.vit:VisionTransformer"
DINOV2 = "DINOv2 ViT-S/14 (facebook/dinov2-small)"
LLAMA = "LLaMA-2 7B (meta-llama/Llama-2-7b-hf)"


def pixel_normalisation(cfg: SignBindConfig) -> dict[str, list[float]]:
    """The mean / std ``VisualFrontend._pixels`` applies (ImageNet, or 0.5 / 0.5)."""
    from baselines.signbind.frontend import IMAGENET_MEAN, IMAGENET_STD

    if cfg.imagenet_norm:
        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    return {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def readouts(cfg: SignBindConfig) -> list[str]:
    """The pretraining readouts matching the feature the experts read (``frame_pooling``)."""
    return ["patches"] if cfg.frame_pooling == "patches" else ["cls_mean"]


def vit_config(cfg: SignBindConfig, stream: str) -> dict[str, Any]:
    """The ``vit`` stand-in config of the frame (``frames``) or lip (``lips``) encoder."""
    pre = "frame" if stream == "frames" else "lip"
    img = getattr(cfg, f"{pre}_img_size")
    out: dict[str, Any] = {
        "module": VIT_MODULE,
        "kwargs": {"img_size": img, "patch_size": getattr(cfg, f"{pre}_patch"),
                   "embed_dim": getattr(cfg, f"{pre}_dim"),
                   "depth": getattr(cfg, f"{pre}_depth"),
                   "num_heads": getattr(cfg, f"{pre}_heads"),
                   "init_values": cfg.vit_init_values},
        "stream": stream, "resolution": img, "normalize": pixel_normalisation(cfg),
        "call": "forward_features", "readouts": readouts(cfg),
        "target": "keypoints" if stream == "frames" else "mouth",
    }
    return out


def standin_declarations(cfg: SignBindConfig, profile: str, vocab_size: int,
                         tokenizer_kind: str | None) -> list[StandIn]:
    """Frame ViT, lip ViT (with ``use_lipreading``) and the LLaMA LM for ``cfg``."""
    out = [StandIn("frame_encoder_init", "vit", vit_config(cfg, "frames"), DINOV2)]
    if cfg.use_lipreading:
        out.append(StandIn("lip_encoder_init", "vit", vit_config(cfg, "lips"),
                           "DINOv2 ViT-S/14 fine-tuned on mouth crops (paper: a ViT for "
                           "lipreading)"))
    out.append(StandIn("llm_init", "llama",
                       {"vocab_size": vocab_size, "tokenizer_kind": tokenizer_kind,
                        "profile": profile, "overrides": dict(cfg.llm_overrides)}, LLAMA))
    return out


__all__ = ["DINOV2", "LLAMA", "VIT_MODULE", "pixel_normalisation", "readouts",
           "standin_declarations", "vit_config"]
