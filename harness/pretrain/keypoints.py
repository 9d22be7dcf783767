"""Keypoint-encoder stand-in (kind ``keypoint``): masked-frame / masked-joint reconstruction.

Stands in for the pretrained skeleton encoders the papers start from — HyperSign's keypoint
extractor (TS-SLT's S3D on keypoint heatmaps, pretrained on sign recognition), SignFuse's
ST-GCN skeletal stream — with the self-supervised objective of pose pretraining such as
SignBERT(+) (Hu et al., 2021/2023): short windows of the training split's keypoints go in with
spans of frames and single joints hidden (x = y = confidence = 0: "not detected", which every
encoder of ``baselines`` already understands), and a linear head on the encoder's (down-sampled)
features reconstructs every frame of its step: each joint's (x, y) in the signer frame
(mid-shoulder centre, shoulder-width unit, as the encoders normalise) plus the hand-local
finger offsets, standardised per coordinate. The loss is the MSE over the hidden entries plus
``visible_weight`` × the MSE over the visible ones (so visible frames are encoded too); only
joints with confidence > ``min_confidence`` count. Labels are never read. The head is not saved.
Keys, recipe and the measured probes: docs/pretrain.md ("Vision, keypoint and pose stand-ins").
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.data.keypoints import NUM_SIGNFUSE
from harness.method import StandIn
from harness.pretrain.loop import count_parameters, fit, threads
from harness.pretrain.parts import (
    HANDS,
    THREADS,
    build_part,
    check_config,
    clip_frame,
    keypoint_targets,
    options,
    read_features,
    sample_windows,
    save_part,
    standardise,
    usable,
)
from harness.pretrain.types import PretrainData, Recipe, TrainReport

DEFAULT_OPTIONS: dict[str, Any] = {"clips": 192, "clip_len": 32, "frame_mask_ratio": 0.3,
                                   "span": 4, "joint_mask_ratio": 0.15, "visible_weight": 0.25,
                                   "min_confidence": 0.5}
RECIPES: dict[str, Recipe] = {"keypoint": Recipe(epochs=15, lr=2e-3, batch_size=16)}


def windows_tensor(windows: Sequence[Mapping[str, Any]], length: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoint windows → (C, length, J, 3) zero-padded and the (C, length) valid mask."""
    joints = windows[0]["keypoints"].shape[1]
    kp = torch.zeros(len(windows), length, joints, 3)
    mask = torch.zeros(len(windows), length, dtype=torch.bool)
    for i, w in enumerate(windows):
        t = len(w["keypoints"])
        kp[i, :t] = torch.from_numpy(np.asarray(w["keypoints"], dtype=np.float32))
        mask[i, :t] = True
    return kp, mask


def window_targets(kp: torch.Tensor, mask: torch.Tensor, min_confidence: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, L, J, 3) windows → signer-frame targets (C, L, K) and ``seen`` (padding unseen)."""
    c, length = mask.shape
    frames = [clip_frame(kp[i][mask[i]].numpy()) for i in range(c)]
    centre = torch.tensor(np.stack([f[0] for f in frames]), dtype=torch.float32)
    unit = torch.tensor([f[1] for f in frames], dtype=torch.float32)
    values, seen = keypoint_targets(kp.flatten(0, 1), centre.repeat_interleave(length, 0),
                                    unit.repeat_interleave(length, 0), min_confidence)
    seen = seen * mask.flatten().to(seen.dtype)[:, None]
    return values.view(c, length, -1), seen.view(c, length, -1)


def joint_columns(joints: int) -> torch.Tensor:
    """(J, K) 0/1: which target columns of :func:`keypoint_targets` each joint enters."""
    cols = [torch.eye(joints).repeat_interleave(2, dim=1)]
    if joints == NUM_SIGNFUSE:
        for hand in HANDS:
            inc = torch.zeros(joints, 20)
            inc[hand.start + 1:hand.stop] = torch.eye(20)
            inc[hand.start] = 1.0  # the wrist enters every offset of its hand
            cols.append(inc.repeat_interleave(2, dim=1))
    return torch.cat(cols, dim=1)


def hide(kp: torch.Tensor, mask: torch.Tensor, frame_ratio: float, span: int,
         joint_ratio: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide spans of ``span`` frames (≈ ``frame_ratio`` of each window's valid frames) and single
    joints (``joint_ratio``): returns the input with them zeroed and the (C, L, J) hidden map."""
    c, length, joints, _ = kp.shape
    hidden = torch.rand(c, length, joints, generator=generator) < joint_ratio
    lengths = mask.sum(1)
    for i in range(c):
        n = math.ceil(frame_ratio * int(lengths[i]) / span) if frame_ratio > 0 else 0
        starts = torch.randint(0, max(1, int(lengths[i]) - span + 1), (n,), generator=generator)
        for s in starts.tolist():
            hidden[i, s:s + span] = True
    hidden &= mask[..., None]
    return kp * (~hidden)[..., None].to(kp.dtype), hidden


def sequence_features(part: nn.Module, call: str, kp: torch.Tensor, mask: torch.Tensor
                      ) -> torch.Tensor:
    """The encoder's (B, T', D) features (a returned ``(features, mask)`` tuple is unpacked)."""
    out = read_features(part, call, kp, mask)
    return out[0] if isinstance(out, tuple | list) else out


def stride_of(part: nn.Module, call: str, kp: torch.Tensor, mask: torch.Tensor) -> int:
    """Input frames per output step (``ceil(L / T')`` on a full-length window)."""
    was = part.training
    part.eval()
    with torch.no_grad():
        t_out = sequence_features(part, call, kp, mask).shape[1]
    part.train(was)
    return math.ceil(kp.shape[1] / t_out)


def per_frame(pred: torch.Tensor, stride: int, length: int) -> torch.Tensor:
    """(B, T', stride · K) head output → (B, length, K): step t' predicts frames t'·s … t'·s+s−1."""
    b, t_out, _ = pred.shape
    return pred.view(b, t_out * stride, -1)[:, :length]


def train_keypoint(standin: StandIn, data: PretrainData, out_dir: Path, *,
                   recipe: Recipe, progress: bool) -> TrainReport:
    """Train a ``keypoint`` stand-in (module docstring) and save it in ``out_dir``."""
    began = time.perf_counter()
    cfg = check_config(standin, (), streams=("keypoints",), needs_resolution=False)
    cfg.setdefault("call", "forward")
    opts = options(recipe, DEFAULT_OPTIONS, standin.field)
    length = int(opts["clip_len"])
    kp, mask = windows_tensor(sample_windows(data.samples, ("keypoints",), int(opts["clips"]),
                                             length, recipe.seed, standin.field), length)
    y, seen = window_targets(kp, mask, float(opts["min_confidence"]))
    mean, std = standardise(y.flatten(0, 1), seen.flatten(0, 1))
    y = (y - mean) / std * seen
    incidence = joint_columns(kp.shape[2])
    vis_w = float(opts["visible_weight"])
    with threads(THREADS), torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        part = build_part(cfg)
        stride = stride_of(part, cfg["call"], kp[:2], mask[:2])
        d = sequence_features(part.eval(), cfg["call"], kp[:2], mask[:2]).shape[-1]
        head = nn.Linear(d, stride * y.shape[-1])
        gen = torch.Generator().manual_seed(recipe.seed)

        def loss_fn(indices: list[int], epoch: int) -> torch.Tensor:
            idx = torch.tensor(indices)
            inp, hidden = hide(kp[idx], mask[idx], float(opts["frame_mask_ratio"]),
                               int(opts["span"]), float(opts["joint_mask_ratio"]), gen)
            feats = sequence_features(part, cfg["call"], inp, mask[idx])
            pred = per_frame(head(feats), stride, length)
            hid_cols = (hidden.float() @ incidence > 0).float()
            w = seen[idx] * (hid_cols + vis_w * (1 - hid_cols))
            return ((pred - y[idx]) ** 2 * w).sum() / w.sum().clamp_min(1.0)

        step_losses, epoch_losses = fit(nn.ModuleDict({"part": part, "head": head}),
                                        usable(len(kp), recipe.batch_size), loss_fn, recipe,
                                        progress=progress,
                                        desc=f"pretrain {standin.field} (keypoint)")
    part.eval()
    files = save_part(part, standin, cfg, out_dir)
    return TrainReport(step_losses=step_losses, epoch_losses=epoch_losses,
                       parameters=count_parameters(part), files=files,
                       extra={"clips": len(kp), "clip_len": length, "stride": stride,
                              "target_dim": int(y.shape[-1]),
                              "seconds": round(time.perf_counter() - began, 2)})


TRAINERS = {"keypoint": train_keypoint}

__all__ = ["DEFAULT_OPTIONS", "RECIPES", "TRAINERS", "hide", "joint_columns", "per_frame",
           "sequence_features", "stride_of", "train_keypoint", "window_targets",
           "windows_tensor"]
