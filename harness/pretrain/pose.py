"""Pose-estimator stand-in (kind ``pose``): frames → the poses a method reads, supervised.

Stands in for the pretrained pose estimators SignX's paper runs on the video (DWPose,
MediaPipe, SMPLer-X, PrimeDepth, Sapiens: the five formats of its pose latent), i.e. the
network that turns RGB into poses before anything sign-specific happens. Real estimators are
trained on annotated human images; here the part learns, once, from windows of the synthetic
*training split*, to output what the corpus's estimators give: the five pose formats
(``targets: poses``; a part that returns ``{format: (B, T, D)}``, e.g. SignX's ``Vid2Pose``)
or the keypoints' x, y (``targets: keypoints``; a part returning (N, J·2), (N, J·3) or
(N, J, 2|3), e.g. a ResNet with a ``num_classes = 2J`` head). Input ``clip``: the part takes
(B, T, H, W, 3) frames in [0, 1] and the (B, T) mask and standardises them itself; input
``frame``: (N, 3, r, r) frames standardised with ``normalize``. Loss: MSE per output column
divided by the column's variance over the training windows (outputs stay in the format's own
units), over the frames whose keypoints were detected (≥ ``min_seen`` of the joints with
confidence > ``min_confidence``; failed estimates are not learnt) or, for keypoints, the
detected joints. The whole part is saved (an estimator's head is part of it).
Keys, recipe and measurements: docs/pretrain.md ("Vision, keypoint and pose stand-ins").
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.method import StandIn
from harness.pretrain.loop import count_parameters, fit, threads
from harness.pretrain.parts import (
    THREADS,
    StandInConfigError,
    build_part,
    check_config,
    options,
    pixels,
    read_features,
    sample_frames,
    sample_windows,
    save_part,
    standardise,
    usable,
)
from harness.pretrain.types import PretrainData, Recipe, TrainReport

INPUTS, TARGETS = ("clip", "frame"), ("poses", "keypoints")
EXTRA_KEYS = ("input", "targets")
DEFAULT_OPTIONS: dict[str, Any] = {"clips": 384, "clip_len": 8, "frames": 512,
                                   "frames_per_video": 4, "min_confidence": 0.5,
                                   "min_seen": 0.5}
RECIPES: dict[str, Recipe] = {"pose": Recipe(epochs=30, lr=2e-3, batch_size=16)}


def outputs(out: Any) -> dict[str, torch.Tensor] | torch.Tensor:
    """What the part returns, its first element when it returns a tuple."""
    return out[0] if isinstance(out, tuple | list) else out


def keypoint_xy(pred: torch.Tensor, joints: int) -> torch.Tensor:
    """A keypoint estimate (..., J·2 | J·3) or (..., J, 2 | 3) → (..., J, 2)."""
    if pred.shape[-1] in (2, 3) and pred.dim() >= 2 and pred.shape[-2] == joints:
        return pred[..., :2]
    if pred.shape[-1] in (2 * joints, 3 * joints):
        return pred.unflatten(-1, (joints, -1))[..., :2]
    raise StandInConfigError(f"pose stand-in: output of shape {tuple(pred.shape)} is not "
                             f"{joints} keypoints (J·2, J·3 or (J, 2|3) values per frame)")


def clip_batch(windows: Sequence[Mapping[str, Any]], length: int, resolution: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame windows → (C, length, r, r, 3) float in [0, 1] (bilinear resize when needed),
    zero-padded, and the (C, length) mask."""
    out = torch.zeros(len(windows), length, resolution, resolution, 3)
    mask = torch.zeros(len(windows), length, dtype=torch.bool)
    for i, w in enumerate(windows):
        x = torch.from_numpy(np.ascontiguousarray(w["frames"])).float().div(255.0)
        if x.shape[1:3] != (resolution, resolution):
            x = F.interpolate(x.permute(0, 3, 1, 2), size=(resolution, resolution),
                              mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        out[i, :len(x)], mask[i, :len(x)] = x, True
    return out, mask


def pad_stack(arrays: Sequence[np.ndarray], length: int) -> torch.Tensor:
    """Arrays (t_i, ...) → (C, length, ...) zero-padded float tensor."""
    out = torch.zeros(len(arrays), length, *arrays[0].shape[1:])
    for i, a in enumerate(arrays):
        out[i, :len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return out


def detected(kp: torch.Tensor, min_confidence: float, min_seen: float) -> torch.Tensor:
    """(..., J, 3) keypoints → (...) bool: enough joints detected for the frame's poses."""
    return (kp[..., 2] > min_confidence).float().mean(-1) >= min_seen


def _data(cfg: Mapping[str, Any], data: PretrainData, opts: Mapping[str, Any], seed: int,
          field: str) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor],
                               torch.Tensor]:
    """Inputs, clip mask (None for frames), targets {name: (..., D)} and the (..., J, 3)
    keypoints of the same frames."""
    if cfg["input"] == "clip":
        length = int(opts["clip_len"])
        streams = ("frames", "keypoints", *(("poses",) if cfg["targets"] == "poses" else ()))
        wins = sample_windows(data.samples, streams, int(opts["clips"]), length, seed, field)
        x, mask = clip_batch(wins, length, cfg["resolution"])
        kp = pad_stack([w["keypoints"] for w in wins], length)
        poses = ({n: pad_stack([w["poses"][n] for w in wins], length) for n in wins[0]["poses"]}
                 if cfg["targets"] == "poses" else {})
        return x, mask, poses, kp
    fr = sample_frames(data.samples, "frames", int(opts["frames"]),
                       int(opts["frames_per_video"]), seed, field)
    x = pixels(torch.from_numpy(fr["images"]), cfg["resolution"], cfg["normalize"])
    poses: dict[str, list[np.ndarray]] = {}
    if cfg["targets"] == "poses":
        for i, t in fr["index"]:
            for n, a in data.samples[int(i)].poses.items():
                poses.setdefault(n, []).append(a[int(t)])
    return (x, None, {n: torch.from_numpy(np.stack(v)) for n, v in poses.items()},
            torch.from_numpy(fr["keypoints"]).float())


def train_pose(standin: StandIn, data: PretrainData, out_dir: Path, *, recipe: Recipe,
               progress: bool) -> TrainReport:
    """Train a ``pose`` stand-in (module docstring) and save it in ``out_dir``."""
    began = time.perf_counter()
    cfg = check_config(standin, EXTRA_KEYS, streams=("frames",))
    cfg.setdefault("call", "forward")
    cfg.setdefault("input", "frame")
    cfg.setdefault("targets", "keypoints")
    for key, allowed in (("input", INPUTS), ("targets", TARGETS)):
        if cfg[key] not in allowed:
            raise StandInConfigError(f"stand-in {standin.field!r}: config {key!r} must be one "
                                     f"of {allowed}, got {cfg[key]!r}")
    if cfg["input"] == "clip" and cfg["normalize"] is not None:
        raise StandInConfigError(f"stand-in {standin.field!r}: input 'clip' gives the part "
                                 f"frames in [0, 1] to standardise itself; 'normalize' must be "
                                 f"null")
    opts = options(recipe, DEFAULT_OPTIONS, standin.field)
    x, mask, poses, kp = _data(cfg, data, opts, recipe.seed, standin.field)
    min_conf = float(opts["min_confidence"])
    frame_ok = detected(kp, min_conf, float(opts["min_seen"]))
    if mask is not None:
        frame_ok &= mask
    if cfg["targets"] == "keypoints":
        targets = {"keypoints": kp[..., :2].flatten(-2)}
        seen = {"keypoints": (kp[..., 2:] > min_conf).expand(*kp.shape[:-1], 2).flatten(-2)
                .float() * frame_ok[..., None].float()}
    else:
        targets = poses
        seen = {n: frame_ok[..., None].float().expand_as(v) for n, v in poses.items()}
    scale = {n: standardise(v.flatten(0, -2), seen[n].flatten(0, -2))[1] for n, v in
             targets.items()}
    joints = kp.shape[-2]
    with threads(THREADS), torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        part = build_part(cfg)

        def loss_fn(indices: list[int], epoch: int) -> torch.Tensor:
            idx = torch.tensor(indices)
            args = (x[idx],) if mask is None else (x[idx], mask[idx])
            out = outputs(read_features(part, cfg["call"], *args))
            if cfg["targets"] == "keypoints":
                if not isinstance(out, torch.Tensor):
                    raise StandInConfigError("pose stand-in: targets 'keypoints' need a tensor "
                                             "output")
                out = {"keypoints": keypoint_xy(out, joints).flatten(-2)}
            elif not isinstance(out, Mapping):
                raise StandInConfigError("pose stand-in: targets 'poses' need a part that "
                                         "returns {format: (B, T, D)}")
            losses = []
            for name, pred in out.items():
                if name not in targets:
                    raise StandInConfigError(f"pose stand-in: the part outputs {name!r}; the "
                                             f"data has {sorted(targets)}")
                w = seen[name][idx]
                err = ((pred.float() - targets[name][idx]) / scale[name]) ** 2
                losses.append((err * w).sum() / w.sum().clamp_min(1.0))
            return torch.stack(losses).mean()

        step_losses, epoch_losses = fit(part, usable(len(x), recipe.batch_size), loss_fn,
                                        recipe, progress=progress,
                                        desc=f"pretrain {standin.field} (pose)")
    part.eval()
    files = save_part(part, standin, cfg, out_dir)
    return TrainReport(step_losses=step_losses, epoch_losses=epoch_losses,
                       parameters=count_parameters(part), files=files,
                       extra={"items": len(x), "input": cfg["input"],
                              "targets": sorted(targets),
                              "frames_used": int(frame_ok.sum()),
                              "seconds": round(time.perf_counter() - began, 2)})


TRAINERS: dict[str, Any] = {"pose": train_pose}

__all__ = ["DEFAULT_OPTIONS", "RECIPES", "TRAINERS", "clip_batch", "detected", "keypoint_xy",
           "outputs", "pad_stack", "train_pose"]
