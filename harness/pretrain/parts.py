"""What the vision, keypoint and pose stand-in trainers share (docs/pretrain.md, "Vision,
keypoint and pose stand-ins").

* the configured part: :func:`check_config` (keys per kind, clear errors), :func:`build_part`
  (``"package.module:Class"`` + ``kwargs``), :func:`pixels` (uint8 frames → the float input the
  method feeds the part), :func:`read_features` (``call``) and :func:`readout`;
* the training data, sampled from the training split (never every frame of every video):
  :func:`sample_frames` (single frames) and :func:`sample_windows` (short clips), seeded;
* keypoint targets: :func:`keypoint_targets` (x, y per joint plus hand-local offsets for the
  SignFuse-75 layout), :func:`mouth_targets` (mouth-centred lip points), :func:`standardise`;
* the loop is ``harness.pretrain.loop.fit`` (:func:`usable` keeps BatchNorm from a one-item
  batch);
* the output: :func:`save_part` writes ``model.safetensors`` (the part's ``state_dict()``, its
  own names: timm's for the hand-written ResNet / ViT) and ``config.json``, then loads the file
  strictly into a fresh part to prove it matches.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.encoders import shoulder_frame
from baselines.common.weights import load_weights, save_weights
from harness.data.keypoints import FACE, NUM_SIGNFUSE, UPPER_BODY
from harness.data.sample import Sample
from harness.method import StandIn
from harness.pretrain.loop import count_parameters
from harness.pretrain.types import Recipe

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
#: keys every vision / keypoint / pose config may carry
COMMON_KEYS = ("module", "kwargs", "stream", "resolution", "normalize", "call")
STREAMS = ("frames", "lips", "keypoints")
#: intra-op threads of these trainers (tiny parts: one is fastest on a shared CPU)
THREADS = 1
#: SignFuse-75 joints: shoulders (left, right), hand wrists, the eight lip points
SHOULDERS = (UPPER_BODY.start + 11, UPPER_BODY.start + 12)
HANDS = (slice(0, 21), slice(21, 42))
MOUTH = (UPPER_BODY.start + 9, UPPER_BODY.start + 10, *range(FACE.start + 4, FACE.start + 10))


class StandInConfigError(ValueError):
    """A stand-in's ``config`` cannot be trained (the message names the key and what it takes)."""


# ----------------------------------------------------------------------------- the part


def check_config(standin: StandIn, extra: Sequence[str], *, streams: Sequence[str],
                 needs_resolution: bool = True) -> dict[str, Any]:
    """``standin.config`` as a dict, after checking its keys; raises :class:`StandInConfigError`."""
    cfg = dict(standin.config)
    where = f"stand-in {standin.field!r} (kind {standin.kind!r})"
    unknown = sorted(set(cfg) - set(COMMON_KEYS) - set(extra))
    if unknown:
        raise StandInConfigError(f"{where}: unknown config key(s) {unknown}; it takes "
                                 f"{sorted({*COMMON_KEYS, *extra})}")
    if not isinstance(cfg.get("module"), str) or ":" not in cfg["module"]:
        raise StandInConfigError(f"{where}: config 'module' must be 'package.module:Class', got "
                                 f"{cfg.get('module')!r}")
    if not isinstance(cfg.setdefault("kwargs", {}), Mapping):
        raise StandInConfigError(f"{where}: config 'kwargs' must be a mapping, got "
                                 f"{type(cfg['kwargs']).__name__}")
    cfg.setdefault("stream", streams[0])
    if cfg["stream"] not in streams:
        raise StandInConfigError(f"{where}: config 'stream' must be one of {list(streams)}, got "
                                 f"{cfg['stream']!r}")
    if needs_resolution and not (isinstance(cfg.get("resolution"), int)
                                 and cfg["resolution"] > 0):
        raise StandInConfigError(f"{where}: config 'resolution' (the input side the method "
                                 f"feeds the part) must be a positive int, got "
                                 f"{cfg.get('resolution')!r}")
    norm = cfg.setdefault("normalize", None)
    if norm is not None and not (isinstance(norm, Mapping) and set(norm) == {"mean", "std"}
                                 and len(norm["mean"]) == 3 and len(norm["std"]) == 3
                                 and min(norm["std"]) > 0):
        raise StandInConfigError(f"{where}: config 'normalize' must be null or "
                                 f"{{'mean': [3 values], 'std': [3 values > 0]}}, got {norm!r}")
    return cfg


def build_part(cfg: Mapping[str, Any]) -> nn.Module:
    """A fresh, randomly initialised ``cfg['module']`` built with ``cfg['kwargs']``."""
    spec = cfg["module"]
    mod_name, _, cls_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise StandInConfigError(f"stand-in module {spec!r} cannot be imported ({exc})") from exc
    try:
        part = cls(**dict(cfg.get("kwargs", {})))
    except (TypeError, ValueError) as exc:
        raise StandInConfigError(f"stand-in module {spec!r} rejects kwargs "
                                 f"{dict(cfg.get('kwargs', {}))} ({exc})") from exc
    if not isinstance(part, nn.Module):
        raise StandInConfigError(f"stand-in module {spec!r} is not a torch.nn.Module")
    return part


def pixels(images: torch.Tensor, resolution: int, normalize: Mapping[str, Any] | None
           ) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, r, r) float: /255, bilinear resize when the side differs
    (as SignFuse, HFA and SignX do), then ``(x - mean) / std`` unless ``normalize`` is null."""
    x = images.float().div(255.0).permute(0, 3, 1, 2)
    if x.shape[-2:] != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    if normalize is not None:
        mean = x.new_tensor(normalize["mean"]).view(1, 3, 1, 1)
        std = x.new_tensor(normalize["std"]).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x.contiguous()


def read_features(part: nn.Module, call: str, *args: torch.Tensor) -> Any:
    """``part.<call>(*args)`` (``forward`` goes through ``__call__``)."""
    if call == "forward":
        return part(*args)
    fn = getattr(part, call, None)
    if not callable(fn):
        raise StandInConfigError(f"{type(part).__name__} has no method {call!r} (config 'call')")
    return fn(*args)


READOUTS = ("pool", "cls", "patches", "mean", "cls_mean")


def readout(feats: torch.Tensor, name: str, prefix: int = 1) -> torch.Tensor:
    """One per-frame feature vector from what ``call`` returned: (B, C) as is; (B, C, h, w)
    global-average pooled (``pool``); tokens (B, P + N, D): ``cls`` (first token), ``patches``
    (the N patch tokens flattened), ``mean`` (their mean), ``cls_mean`` ([CLS; mean])."""
    if feats.dim() == 2:
        if name != "pool":
            raise StandInConfigError(f"readout {name!r} needs tokens; the part gives vectors")
        return feats
    if feats.dim() == 4:
        if name != "pool":
            raise StandInConfigError(f"readout {name!r} needs tokens; the part gives maps")
        return feats.mean(dim=(2, 3))
    if feats.dim() != 3:
        raise StandInConfigError(f"cannot read features of shape {tuple(feats.shape)}")
    patches = feats[:, prefix:]
    table = {"cls": lambda: feats[:, 0], "patches": lambda: patches.flatten(1),
             "mean": lambda: patches.mean(1), "pool": lambda: patches.mean(1),
             "cls_mean": lambda: torch.cat([feats[:, 0], patches.mean(1)], dim=-1)}
    if name not in table:
        raise StandInConfigError(f"unknown readout {name!r}; expected one of {READOUTS}")
    return table[name]()


# ----------------------------------------------------------------------------- the data


def _need(samples: Sequence[Sample], streams: Iterable[str], field: str) -> None:
    if not samples:
        raise ValueError(f"stand-in {field!r}: the training split is empty")
    for stream in streams:
        if not samples[0].has(stream):
            raise ValueError(f"stand-in {field!r}: the training samples lack the {stream!r} "
                             f"stream (sample {samples[0].name!r})")


def _video_order(n: int, rng: np.random.Generator, videos: int) -> list[int]:
    """``videos`` indices cycling through a random permutation of the ``n`` videos."""
    order = rng.permutation(n)
    return [int(order[i % n]) for i in range(videos)]


def sample_frames(samples: Sequence[Sample], stream: str, count: int, per_video: int,
                  seed: int, field: str = "") -> dict[str, np.ndarray]:
    """``count`` frames of ``stream`` (``frames`` / ``lips``) with their keypoints, ``per_video``
    random frames from each of ``ceil(count / per_video)`` videos (a seeded permutation of the
    split, repeated if it is short). Returns ``images`` (N, h, w, 3) uint8, ``keypoints``
    (N, J, 3), each frame's clip-level shoulder frame ``centre`` (N, 2) / ``unit`` (N,) and
    ``index`` (N, 2): (sample, frame) it came from."""
    _need(samples, (stream, "keypoints"), field)
    rng = np.random.default_rng([seed, 1])
    images, kps, centres, units, where = [], [], [], [], []
    for i in _video_order(len(samples), rng, math.ceil(count / per_video)):
        s = samples[i]
        video, kp = s.load(stream), s.keypoints
        t = min(len(video), len(kp))
        pick = rng.choice(t, size=min(per_video, t), replace=False)
        centre, unit = clip_frame(kp[:t])
        images.append(video[pick])
        kps.append(kp[pick])
        centres.append(np.repeat(centre[None], len(pick), 0))
        units.append(np.full(len(pick), unit, np.float32))
        where.append(np.stack([np.full(len(pick), i), pick], axis=1))
    out = {"images": np.concatenate(images), "keypoints": np.concatenate(kps),
           "centre": np.concatenate(centres), "unit": np.concatenate(units),
           "index": np.concatenate(where)}
    return {k: v[:count] for k, v in out.items()}


def sample_windows(samples: Sequence[Sample], streams: Sequence[str], count: int, length: int,
                   seed: int, field: str = "") -> list[dict[str, Any]]:
    """``count`` windows of at most ``length`` consecutive steps of ``streams`` from videos
    in a seeded order (one random start per visit), each ``{stream: array}`` (``poses`` a dict
    of formats)."""
    _need(samples, streams, field)
    rng = np.random.default_rng([seed, 2])
    out = []
    for i in _video_order(len(samples), rng, count):
        data = {s: samples[i].load(s) for s in streams}
        t = min(len(next(iter(v.values()))) if isinstance(v, dict) else len(v)
                for v in data.values())
        start = int(rng.integers(0, max(1, t - length + 1)))
        cut = slice(start, min(t, start + length))
        out.append({s: ({k: a[cut] for k, a in v.items()} if isinstance(v, dict) else v[cut])
                    for s, v in data.items()})
    return out


def clip_frame(kp: np.ndarray) -> tuple[np.ndarray, float]:
    """The clip's signer frame: mean mid-shoulder (2,) and shoulder width (the keypoint
    encoders' ``shoulder_frame``); the image frame (0.5, 0.5) without two shoulders."""
    if kp.shape[1] != NUM_SIGNFUSE:
        return np.full(2, 0.5, np.float32), 0.5
    x = torch.from_numpy(np.ascontiguousarray(kp[None], dtype=np.float32))
    mid, width = shoulder_frame(x[..., :2], (x[..., 2] > 0).float(), SHOULDERS)
    return mid[0].numpy(), float(width[0])


# ----------------------------------------------------------------------------- targets


def keypoint_targets(kp: torch.Tensor, centre: torch.Tensor, unit: torch.Tensor,
                     min_confidence: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, J, 3) keypoints → (values (N, K), seen (N, K) float). Values: every joint's (x, y)
    as ``(xy - centre) / unit`` (centre (N, 2), unit (N,)); for the SignFuse-75 layout also each
    hand's joints 1–20 relative to its wrist (the hand shape, which image coordinates bury under
    the wrist trajectory). ``seen``: confidence > ``min_confidence`` (both ends for offsets)."""
    xy = (kp[..., :2] - centre[:, None]) / unit[:, None, None]
    seen = (kp[..., 2] > min_confidence).to(xy.dtype)  # (N, J)
    values, masks = [xy.flatten(1)], [seen[..., None].expand(-1, -1, 2).flatten(1)]
    if kp.shape[1] == NUM_SIGNFUSE:
        for hand in HANDS:
            h, s = xy[:, hand], seen[:, hand]
            values.append((h[:, 1:] - h[:, :1]).flatten(1))
            masks.append((s[:, 1:] * s[:, :1])[..., None].expand(-1, -1, 2).flatten(1))
    return torch.cat(values, 1), torch.cat(masks, 1)


def mouth_targets(kp: torch.Tensor, unit: torch.Tensor, min_confidence: float = 0.0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 75, 3) keypoints → the eight lip points (pose mouth corners and face lip corners /
    midpoints) relative to their mean, in shoulder widths (N, 16), and ``seen`` — the mouth's
    shape, which a mouth crop shows, without where the mouth is in the frame."""
    if kp.shape[1] != NUM_SIGNFUSE:
        raise ValueError(f"target 'mouth' needs the SignFuse-75 keypoint layout, got "
                         f"{kp.shape[1]} joints")
    pts, conf = kp[:, list(MOUTH), :2], kp[:, list(MOUTH), 2]
    seen = (conf > min_confidence).to(pts.dtype)
    n = seen.sum(1, keepdim=True).clamp_min(1.0)
    centre = (pts * seen[..., None]).sum(1, keepdim=True) / n[..., None]
    values = (pts - centre) / unit[:, None, None]
    return values.flatten(1), seen[..., None].expand(-1, -1, 2).flatten(1)


def standardise(values: torch.Tensor, seen: torch.Tensor, floor: float = 1e-4
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and std of ``values`` over the ``seen`` entries (std ≥ ``floor``)."""
    count = seen.sum(0).clamp_min(1.0)
    mean = (values * seen).sum(0) / count
    std = (((values - mean) ** 2 * seen).sum(0) / count).sqrt().clamp_min(floor)
    return mean, std


def masked_mse(pred: torch.Tensor, target: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the ``seen`` entries (0 when none is)."""
    return ((pred.float() - target) ** 2 * seen).sum() / seen.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------- the loop


def usable(n: int, batch_size: int) -> int:
    """Items to train on so that no batch holds a single item (BatchNorm cannot train on one):
    ``n``, or ``n - 1`` when the last batch of ``loop.fit`` would be a single item."""
    return n - 1 if n > 1 and n % batch_size == 1 else n


def options(recipe: Recipe, defaults: Mapping[str, Any], field: str) -> dict[str, Any]:
    """``recipe.options`` over ``defaults``; an option the trainer does not know is an error."""
    unknown = sorted(set(recipe.options) - set(defaults))
    if unknown:
        raise ValueError(f"stand-in {field!r}: unknown recipe option(s) {unknown}; this kind "
                         f"takes {sorted(defaults)}")
    return {**defaults, **recipe.options}


# ----------------------------------------------------------------------------- the output


def save_part(part: nn.Module, standin: StandIn, cfg: Mapping[str, Any], out_dir: Path,
              extra: Mapping[str, Any] | None = None) -> list[str]:
    """Write ``model.safetensors`` (``part.state_dict()``, nothing else) and ``config.json``
    (the architecture as the method builds it, timm-style ``pretrained_cfg``), then load the
    file strictly into a fresh part; returns the file names."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_weights(part, out_dir / WEIGHTS_FILE)
    norm = cfg.get("normalize")
    meta = {
        "architecture": cfg["module"], "kind": standin.kind, "field": standin.field,
        "paper": standin.paper, "config": dict(cfg),
        "num_features": getattr(part, "num_features", None),
        "parameters": count_parameters(part),
        "pretrained_cfg": {
            "input_size": ([3, cfg["resolution"], cfg["resolution"]]
                           if cfg.get("resolution") else None),
            "interpolation": "bilinear",
            "mean": list(norm["mean"]) if norm else None,
            "std": list(norm["std"]) if norm else None,
        },
        **dict(extra or {}),
    }
    (out_dir / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
    fresh = build_part(cfg)
    load_weights(fresh, out_dir / WEIGHTS_FILE, strict=True)
    return [WEIGHTS_FILE, CONFIG_FILE]


__all__ = ["CONFIG_FILE", "READOUTS", "STREAMS", "THREADS", "WEIGHTS_FILE",
           "StandInConfigError", "build_part", "check_config", "clip_frame", "keypoint_targets",
           "masked_mse", "mouth_targets", "options", "pixels", "read_features", "readout",
           "sample_frames", "sample_windows", "save_part", "standardise", "usable"]
