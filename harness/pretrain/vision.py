"""Frame-encoder stand-ins (kinds ``resnet`` and ``vit``): pose-supervised on training frames.

Stands in for the ImageNet-pretrained ResNet-50 of SignFuse's visual stream (``resnet_init``),
the DINOv2 ViT-S/14 of HFA (``vit_init``) and SignBind-LLM's DINOv2 frame and lip encoders
(``frame_encoder_init``, ``lip_encoder_init``). Real checkpoints come from large image corpora;
here the part learns, once, on a few hundred frames sampled from the synthetic *training split*,
what a sign-language front end needs from such features: where the body, hands and fingers are.

Objective: the frame's keypoints (x, y of every joint, plus each hand's joints relative to its
wrist, standardised per coordinate over the sampled frames) regressed by one linear head per
readout (ResNet: the pooled features; ViT: the CLS token and the patch tokens), masked MSE over
the joints with confidence > ``min_confidence``. Mouth crops (``stream: lips``) regress the
mouth's shape instead (the eight lip points relative to their centre; target ``mouth``). A ViT
can add masked-patch reconstruction (``ssl_weight`` > 0; MAE-style, pixels of half the patches).
The heads are never saved: ``model.safetensors`` holds exactly the part's ``state_dict()``.
Keys, recipes and the measured probes: docs/pretrain.md ("Vision, keypoint and pose stand-ins").
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.method import StandIn
from harness.pretrain.loop import count_parameters, fit, threads
from harness.pretrain.parts import (
    THREADS,
    StandInConfigError,
    build_part,
    check_config,
    keypoint_targets,
    masked_mse,
    mouth_targets,
    options,
    pixels,
    read_features,
    readout,
    sample_frames,
    save_part,
    standardise,
    usable,
)
from harness.pretrain.types import PretrainData, Recipe, TrainReport

TARGETS = ("keypoints", "mouth", "none")
#: kind-specific config keys (docs/pretrain.md)
EXTRA_KEYS = ("target", "readouts")
#: recipe options of both kinds and their defaults
DEFAULT_OPTIONS: dict[str, Any] = {"frames": 512, "frames_per_video": 4, "min_confidence": 0.5,
                                   "ssl_weight": 0.0, "mask_ratio": 0.5}
#: the recipes ``signbench pretrain`` uses by default (tiny parts: well under a minute on CPU)
RECIPES: dict[str, Recipe] = {
    "resnet": Recipe(epochs=24, lr=3e-3, batch_size=32, weight_decay=1e-4),
    "vit": Recipe(epochs=12, lr=2e-3, batch_size=32, weight_decay=0.05,
                  options={"frames": 2048, "frames_per_video": 8}),
}


def _targets(cfg: Mapping[str, Any], frames: Mapping[str, Any], min_conf: float
             ) -> tuple[torch.Tensor, torch.Tensor]:
    kp = torch.from_numpy(frames["keypoints"]).float()
    if cfg["target"] == "none":  # self-supervised only
        return torch.zeros(len(kp), 0), torch.zeros(len(kp), 0)
    unit = torch.from_numpy(frames["unit"]).float()
    if cfg["target"] == "mouth":
        return mouth_targets(kp, unit, min_conf)
    # image coordinates: the frame shows where things are, not where they are w.r.t. the signer
    return keypoint_targets(kp, torch.zeros(len(kp), 2), torch.ones(len(kp)), min_conf)


class _PatchDecoder(nn.Module):
    """MAE-style pixel decoder: every patch token → its patch's normalised pixels."""

    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Linear(dim, 3 * patch * patch)

    @staticmethod
    def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, (h // p) * (w // p), c * p * p)

    def loss(self, part: nn.Module, call: str, x: torch.Tensor, ratio: float,
             generator: torch.Generator) -> torch.Tensor:
        p, prefix = self.patch, int(getattr(part, "num_prefix_tokens", 1))
        gh, gw = x.shape[-2] // p, x.shape[-1] // p
        keep = max(1, round(gh * gw * (1 - ratio)))
        order = torch.rand(len(x), gh * gw, generator=generator).argsort(1)
        masked = torch.ones(len(x), gh * gw)
        masked.scatter_(1, order[:, :keep], 0.0)
        pix = masked.view(-1, 1, gh, 1, gw, 1).expand(-1, 1, gh, p, gw, p)
        tokens = read_features(part, call, x * (1 - pix.reshape(len(x), 1, gh * p, gw * p)))
        pred = self.proj(tokens[:, prefix:])
        target = self.patchify(x, p)
        err = ((pred - target) ** 2).mean(-1)
        return (err * masked).sum() / masked.sum().clamp_min(1.0)


def train_frame_encoder(standin: StandIn, data: PretrainData, out_dir: Path, *,
                        recipe: Recipe, progress: bool) -> TrainReport:
    """Train a ``resnet`` / ``vit`` stand-in (module docstring) and save it in ``out_dir``."""
    began = time.perf_counter()
    vit = standin.kind == "vit"
    cfg = check_config(standin, EXTRA_KEYS, streams=("frames", "lips"))
    cfg.setdefault("call", "forward_features" if vit else "forward")
    cfg.setdefault("target", "keypoints" if cfg["stream"] == "frames" else "mouth")
    cfg["readouts"] = list(cfg.get("readouts") or (["cls", "patches"] if vit else ["pool"]))
    if cfg["target"] not in TARGETS:
        raise StandInConfigError(f"stand-in {standin.field!r}: config 'target' must be one of "
                                 f"{TARGETS}, got {cfg['target']!r}")
    opts = options(recipe, DEFAULT_OPTIONS, standin.field)
    frames = sample_frames(data.samples, cfg["stream"], int(opts["frames"]),
                           int(opts["frames_per_video"]), recipe.seed, standin.field)
    x = pixels(torch.from_numpy(frames["images"]), cfg["resolution"], cfg["normalize"])
    y, seen = _targets(cfg, frames, float(opts["min_confidence"]))
    mean, std = standardise(y, seen)
    y = (y - mean) / std * seen
    n = usable(len(x), recipe.batch_size)
    with threads(THREADS), torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        part = build_part(cfg).eval()
        with torch.no_grad():  # the feature shapes (eval: BatchNorm statistics stay untouched)
            probe = read_features(part, cfg["call"], x[:2])
        model = nn.ModuleDict({"part": part, "heads": nn.ModuleList(
            nn.Linear(readout(probe, r).shape[-1], y.shape[1])
            for r in cfg["readouts"] if y.shape[1])})
        if cfg["target"] == "none" and float(opts["ssl_weight"]) <= 0:
            raise StandInConfigError(f"stand-in {standin.field!r}: target 'none' trains nothing "
                                     f"without the self-supervised term (ssl_weight > 0)")
        if float(opts["ssl_weight"]) > 0:
            if not vit or probe.dim() != 3:
                raise StandInConfigError(f"stand-in {standin.field!r}: ssl_weight > 0 needs a "
                                         f"ViT whose 'call' returns tokens")
            model["decoder"] = _PatchDecoder(probe.shape[-1], int(part.patch_size))
        gen = torch.Generator().manual_seed(recipe.seed)

        def loss_fn(indices: list[int], epoch: int) -> torch.Tensor:
            idx = torch.tensor(indices)
            feats = read_features(part, cfg["call"], x[idx])
            heads = model["heads"]
            loss = torch.zeros(())
            if len(heads):
                loss = torch.stack([masked_mse(head(readout(feats, r)), y[idx], seen[idx])
                                    for head, r in zip(heads, cfg["readouts"], strict=True)]
                                   ).mean()
            if "decoder" in model:
                loss = loss + float(opts["ssl_weight"]) * model["decoder"].loss(
                    part, cfg["call"], x[idx], float(opts["mask_ratio"]), gen)
            return loss

        step_losses, epoch_losses = fit(model, n, loss_fn, recipe, progress=progress,
                                        desc=f"pretrain {standin.field} ({standin.kind})")
    part.eval()
    files = save_part(part, standin, cfg, out_dir)
    return TrainReport(step_losses=step_losses, epoch_losses=epoch_losses,
                       parameters=count_parameters(part), files=files,
                       extra={"frames": len(x), "target": cfg["target"],
                              "target_dim": int(y.shape[1]), "readouts": cfg["readouts"],
                              "seconds": round(time.perf_counter() - began, 2)})


train_resnet = train_frame_encoder
train_vit = train_frame_encoder

TRAINERS = {"resnet": train_resnet, "vit": train_vit}

__all__ = ["DEFAULT_OPTIONS", "RECIPES", "TARGETS", "TRAINERS", "train_frame_encoder",
           "train_resnet", "train_vit"]
