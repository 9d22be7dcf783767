"""SignX's five pose formats as synthetic stand-ins with the paper's feature widths.

SignX (and the methods that reproduce it) feed five pose estimators' outputs side by side:
DWPose 384, MediaPipe 258, SMPLer-X 165, PrimeDepth 576 and Sapiens 576 values per frame (1959
in all). Running those estimators is out of scope for a generated corpus, so each format here is
a *fixed, format-specific random linear map* of the observed SignFuse-75 keypoints (x, y,
confidence: 225 values, centred) plus *format noise* (Gaussian, per-format std below times the
corpus's ``pose_noise`` knob). Consequences, by design:

* every format carries the same underlying information in a different basis and at a different
  noise level, so fusing formats helps (noise averages out) but no format is useless;
* the formats inherit keypoint failures: in keypoint-corrupted segments all five are corrupted
  too (pose estimators fail on the same hard frames), while RGB stays clean.

The projections are seeded by the format's name only (not the corpus seed), like a real
estimator's fixed weights. Nothing here mimics the semantics of the real layouts.
"""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np

from harness.data.synthetic.signs import LEXICON_SEED

#: Format name -> feature width (SignX paper).
POSE_FORMATS: dict[str, int] = {
    "dwpose": 384, "mediapipe": 258, "smplerx": 165, "primedepth": 576, "sapiens": 576,
}
#: Format noise std (before the ``pose_noise`` multiplier); projected features have unit scale.
FORMAT_NOISE: dict[str, float] = {
    "dwpose": 0.05, "mediapipe": 0.08, "smplerx": 0.12, "primedepth": 0.1, "sapiens": 0.05,
}
TOTAL_POSE_WIDTH = sum(POSE_FORMATS.values())  # 1959
_IN = 75 * 3


@cache
def projection(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The fixed (225, D) weight and (D,) bias of format ``name``."""
    if name not in POSE_FORMATS:
        raise KeyError(f"unknown pose format {name!r}; expected one of {list(POSE_FORMATS)}")
    rng = np.random.default_rng([LEXICON_SEED, 17, list(POSE_FORMATS).index(name)])
    weight = rng.normal(0.0, 1.0, (_IN, POSE_FORMATS[name])) * (4.0 / np.sqrt(_IN))
    bias = rng.normal(0.0, 0.1, POSE_FORMATS[name])
    return weight.astype(np.float32), bias.astype(np.float32)


@lru_cache(maxsize=1)
def _stacked() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All formats' weights side by side (one matmul), biases and per-column noise std."""
    weights, biases = zip(*(projection(n) for n in POSE_FORMATS), strict=True)
    std = np.concatenate([np.full(w, FORMAT_NOISE[n], np.float32)
                          for n, w in POSE_FORMATS.items()])
    return np.concatenate(weights, axis=1), np.concatenate(biases), std


def project_poses(keypoints: np.ndarray, rng: np.random.Generator,
                  noise_scale: float = 1.0) -> dict[str, np.ndarray]:
    """(T, 75, 3) observed keypoints -> {format: (T, D) float32}."""
    t = len(keypoints)
    weight, bias, std = _stacked()
    z = keypoints.reshape(t, _IN).astype(np.float32) - np.float32(0.5)
    feats = z @ weight + bias
    if noise_scale > 0:
        feats += rng.standard_normal(feats.shape, dtype=np.float32) * (std * noise_scale)
    out, start = {}, 0
    for name, width in POSE_FORMATS.items():
        out[name] = np.ascontiguousarray(feats[:, start:start + width])
        start += width
    return out
