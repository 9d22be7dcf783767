"""Complementary, seeded corruption: keypoints fail where RGB is clean, and vice versa.

Real pose estimators fail on frames a camera still captures (fast motion, hands crossing), and
video suffers blur or occlusion the keypoints (estimated from a better view or cleaned up) may
survive. The synthetic corpus reproduces that split so fusing both streams beats either alone:

* ``sample_segments`` places non-overlapping segments (5–12 frames, at least one clean frame
  between) until about ``rate`` of the video is covered, alternating the stream they hit;
* **keypoint** segments (modes): ``drop`` — both hands and ~30% of the other joints get
  x = y = 0 and confidence 0; ``jitter`` — all joints get N(0, 0.06) noise and confidence
  ×U(0.1, 0.3). Pose formats are computed from these corrupted keypoints. Frames and mouth crops
  in these segments are exactly the clean rendering;
* **rgb** segments (modes): ``blur`` — three box blurs of radius ``resolution // 12`` (and the
  mouth crops blurred too); ``occlude`` — a flat grey box over both hands' extent in the
  segment (mouth crops untouched). Keypoints in these segments are exactly the clean ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.keypoints import LEFT_HAND, RIGHT_HAND

KEYPOINT_MODES = ("drop", "jitter")
RGB_MODES = ("blur", "occlude")


@dataclass(frozen=True)
class CorruptionSegment:
    """Frames ``[start, end)`` of ``stream`` ("keypoints" or "rgb") are corrupted by ``mode``."""

    start: int
    end: int
    stream: str
    mode: str


def sample_segments(num_frames: int, rate: float, rng: np.random.Generator
                    ) -> list[CorruptionSegment]:
    """Non-overlapping segments covering about ``rate`` of ``num_frames``, streams alternating."""
    if rate <= 0 or num_frames < 7:
        return []
    target = rate * num_frames
    taken = np.zeros(num_frames + 2, dtype=bool)  # padded so neighbours stay clean
    segments: list[CorruptionSegment] = []
    stream_i = int(rng.integers(2))
    covered = 0
    for _ in range(60):
        if covered >= target:
            break
        length = int(rng.integers(5, 13))
        length = min(length, max(1, num_frames // 3))
        start = int(rng.integers(0, num_frames - length + 1))
        if taken[start:start + length + 2].any():
            continue
        taken[start + 1:start + length + 1] = True
        stream = ("keypoints", "rgb")[stream_i]
        modes = KEYPOINT_MODES if stream == "keypoints" else RGB_MODES
        segments.append(CorruptionSegment(start, start + length, stream,
                                          modes[int(rng.integers(len(modes)))]))
        stream_i = 1 - stream_i
        covered += length
    return sorted(segments, key=lambda s: s.start)


def corrupt_keypoints(keypoints: np.ndarray, segments: list[CorruptionSegment],
                      rng: np.random.Generator) -> np.ndarray:
    """A corrupted copy of (T, 75, 3) ``keypoints`` (only the keypoint segments change)."""
    out = keypoints.copy()
    for seg in segments:
        if seg.stream != "keypoints":
            continue
        block = out[seg.start:seg.end]
        n, j = block.shape[:2]
        if seg.mode == "drop":
            lost = rng.random((n, j)) < 0.3
            lost[:, LEFT_HAND] = True
            lost[:, RIGHT_HAND] = True
            block[lost] = 0.0
        else:
            block[..., :2] += rng.normal(0.0, 0.06, (n, j, 2)).astype(out.dtype)
            block[..., 2] *= rng.uniform(0.1, 0.3, (n, j)).astype(out.dtype)
    return out


def box_blur(images: np.ndarray, radius: int, axes: tuple[int, int] = (1, 2)) -> np.ndarray:
    """Box blur (float) of side ``2 * radius + 1`` along ``axes``, edges replicated."""
    out = images.astype(np.float32)
    for axis in axes:
        pad = [(radius + 1, radius) if i == axis else (0, 0) for i in range(out.ndim)]
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis, dtype=np.float32)
        n = out.shape[axis]
        hi = np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        out = (hi - lo) / (2 * radius + 1)
    return out


def corrupt_frames(frames: np.ndarray, lips: np.ndarray, joints: np.ndarray,
                   segments: list[CorruptionSegment]) -> tuple[np.ndarray, np.ndarray]:
    """Corrupted copies of frames (T, H, W, 3) and mouth crops for the rgb segments; ``joints``
    (T, 75, 2) are the clean image-space joints (to place occluders over the hands)."""
    frames, lips = frames.copy(), lips.copy()
    res = frames.shape[1]
    for seg in segments:
        if seg.stream != "rgb":
            continue
        sl = slice(seg.start, seg.end)
        if seg.mode == "blur":
            block = frames[sl]
            for _ in range(3):
                block = box_blur(block, max(2, res // 12))
            frames[sl] = np.clip(block + 0.5, 0, 255).astype(np.uint8)
            lb = lips[sl]
            for _ in range(2):
                lb = box_blur(lb, max(1, lips.shape[1] // 6))
            lips[sl] = np.clip(lb + 0.5, 0, 255).astype(np.uint8)
        else:
            hands = np.concatenate([joints[sl, LEFT_HAND], joints[sl, RIGHT_HAND]], axis=1)
            lo = np.clip(((hands.min(axis=(0, 1)) - 0.06) * res).astype(int), 0, res)
            hi = np.clip(((hands.max(axis=(0, 1)) + 0.06) * res).astype(int) + 1, 0, res)
            frames[sl, lo[1]:hi[1], lo[0]:hi[0]] = 128
    return frames, lips
