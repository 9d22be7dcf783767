"""Streams every reader derives the same way: keypoints from a ``keypoints_dir``, SignX's
MediaPipe pose format from them, mouth crops cut from the frames around the face keypoints, and
frame labels (``sign`` for every frame unless a labels file says otherwise).

* ``keypoints_dir`` holds one entry per video: ``<name>.pose`` (pose-format; OpenPose or
  MediaPipe Holistic layout) or a folder ``<name>/`` of per-frame OpenPose JSON (How2Sign's
  layout). Both are mapped onto the 75 joints (``harness.data.keypoints``). OpenPose pixels are
  divided by the video's frame size (read from its first frame) or the reader's ``image_size``.
  When a video has both frames and keypoints, their frame counts must agree: a deleted or extra
  frame file is an error naming both folders.
* ``poses``: ``{"mediapipe": (T, 258)}`` (``keypoints.mediapipe_feature``); SignX's other four
  formats come from estimators the keypoints cannot stand in for.
* ``lips``: per frame, a square of side ``max(3 x mouth width, min(H, W) / 6)`` centred on the
  confident mouth points (lip corners and midpoints), nearest-neighbour resized to
  ``max(8, H // 4)`` pixels (the synthetic corpus's crop size); frames where the mouth was not
  detected reuse the nearest detected frame's box; a video with no detected mouth is an error.
* ``frame_labels``: a labels file (tab-separated, header ``name<TAB>frame_labels``, one token
  ``rest`` / ``sign`` / ``fingerspelling`` per frame) or ``sign`` everywhere.
Mapping tables and the folder layouts: docs/data.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.keypoints import (
    FACE,
    OPENPOSE,
    UPPER_BODY_NAMES,
    mediapipe_feature,
    to_signfuse,
)
from harness.data.readers.common import (
    DatasetFormatError,
    DatasetMissingError,
    read_table,
    require_file,
    scan_numbered,
)
from harness.data.readers.openpose import ANY_FRAME, DEFAULT_IMAGE_SIZE, read_openpose_folder
from harness.data.readers.posefile import read_pose_file
from harness.data.sample import FRAME_FINGERSPELLING, FRAME_REST, FRAME_SIGN

LABEL_COLUMNS: tuple[str, ...] = ("name", "frame_labels")
LABEL_TOKENS: dict[str, int] = {"rest": FRAME_REST, "sign": FRAME_SIGN,
                                "fingerspelling": FRAME_FINGERSPELLING}
#: Joints of the 75 the mouth crop is centred on: the lip corners and midpoints of the face.
MOUTH_JOINTS: tuple[int, ...] = tuple(range(FACE.start + 4, FACE.stop))
_BODY_MOUTH = tuple(42 + UPPER_BODY_NAMES.index(n) for n in ("mouth_left", "mouth_right"))
MIN_CONFIDENCE = 0.1


@dataclass(frozen=True)
class StreamOptions:
    """A split's options for the derived streams (resolved once, shared by its samples)."""

    source: str
    keypoints_root: Path | None = None
    labels: dict[str, tuple[int, str]] | None = None
    labels_path: Path | None = None
    image_size: tuple[float, float] | None = None


def resolve_keypoints_root(base: Path, keypoints_dir: str | os.PathLike[str] | None,
                           default: str | None, split: str, source: str) -> Path | None:
    """The split's keypoint folder: ``keypoints_dir`` (relative to ``base`` or absolute,
    ``{split}`` substituted) must exist; without it, ``default`` is used when present."""
    if keypoints_dir is None:
        if default is None:
            return None
        folder = base / default.format(split=split)
        return folder if folder.is_dir() else None
    folder = base / str(keypoints_dir).format(split=split)
    if not folder.is_dir():
        raise DatasetMissingError(f"{source}: keypoints_dir {folder} is not a folder (expected "
                                  f"<name>.pose files or <name>/ folders of OpenPose JSON)")
    return folder


def read_labels_file(path: str | os.PathLike[str] | None, base: Path,
                     source: str) -> tuple[dict[str, tuple[int, str]] | None, Path | None]:
    """``{name: (line number, labels text)}`` of a frame-labels file (None without one)."""
    if path is None:
        return None, None
    file = require_file(base / Path(path).expanduser(), source, "frame labels file")
    rows = {}
    for number, fields in read_table(file, "\t", LABEL_COLUMNS, source):
        rows[fields["name"].strip()] = (number, fields["frame_labels"])
    return rows, file


def options(source: str, base: Path, split: str, *, keypoints_dir: Any = None,
            default_keypoints_dir: str | None = None, labels: Any = None,
            image_size: tuple[float, float] | None = None) -> StreamOptions:
    """The :class:`StreamOptions` of a split from a reader's keyword arguments."""
    label_rows, label_path = read_labels_file(labels, base, source)
    return StreamOptions(source=source, labels=label_rows, labels_path=label_path,
                         keypoints_root=resolve_keypoints_root(base, keypoints_dir,
                                                               default_keypoints_dir, split,
                                                               source),
                         image_size=image_size)


def pose_frame_count(path: Path, source: str) -> int:
    """Frames of a ``.pose`` file, from its header (the body is not decoded)."""
    from pose_format import Pose
    from pose_format.pose_body import EmptyPoseBody

    try:
        with open(path, "rb") as handle:
            return int(Pose.read(handle, pose_body=EmptyPoseBody).body.data.shape[0])
    except Exception as exc:
        raise DatasetFormatError(f"{source}: cannot read {path} as a .pose file (damaged or "
                                 f"truncated?): {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class KeypointEntry:
    """One video's keypoints: a ``.pose`` file or a folder of OpenPose JSON."""

    path: Path
    kind: str  # "pose" | "openpose"

    def count(self, source: str) -> int:
        if self.kind == "openpose":
            return len(scan_numbered(self.path, ANY_FRAME))
        return pose_frame_count(self.path, source)


def find_keypoints(root: Path | None, name: str) -> KeypointEntry | None:
    """``<root>/<name>.pose`` or ``<root>/<name>/`` (None when neither exists)."""
    if root is None:
        return None
    pose = root / f"{name}.pose"
    if pose.is_file():
        return KeypointEntry(pose, "pose")
    folder = root / name
    if folder.is_dir():
        return KeypointEntry(folder, "openpose")
    return None


def load_keypoints(entry: KeypointEntry, source: str, expected: int | None,
                   image_size: Callable[[], tuple[float, float] | None]) -> np.ndarray:
    """(T, 75, 3) keypoints of ``entry`` (``expected``: the frame count they must have)."""
    if entry.kind == "pose":
        keypoints = read_pose_file(entry.path)
        if expected is not None and len(keypoints) != expected:
            raise DatasetFormatError(f"{source}: {entry.path} holds {len(keypoints)} frame(s) "
                                     f"but the video has {expected} (a frame file deleted or "
                                     f"added?)")
        return keypoints
    points = read_openpose_folder(entry.path, image_size(), source, expected=expected)
    return to_signfuse(points, OPENPOSE)


def _parse_labels(text: str, where: str, frames: int) -> np.ndarray:
    tokens = text.split()
    unknown = sorted(set(tokens) - set(LABEL_TOKENS))
    if unknown:
        raise DatasetFormatError(f"{where}: unknown frame label(s) {unknown}; expected "
                                 f"{sorted(LABEL_TOKENS)}")
    if len(tokens) != frames:
        raise DatasetFormatError(f"{where}: {len(tokens)} frame label(s) for a video of "
                                 f"{frames} frame(s)")
    return np.array([LABEL_TOKENS[t] for t in tokens], dtype=np.int8)


def _frame_labels(opts: StreamOptions, name: str, frames: int) -> np.ndarray:
    if opts.labels is None:
        return np.full(frames, FRAME_SIGN, dtype=np.int8)
    if name not in opts.labels:
        raise DatasetFormatError(f"{opts.source}: frame labels file {opts.labels_path} has no "
                                 f"row for {name!r}")
    number, text = opts.labels[name]
    return _parse_labels(text, f"{opts.source}: {opts.labels_path}, line {number}", frames)


def crop_mouths(frames: np.ndarray, keypoints: np.ndarray, where: str) -> np.ndarray:
    """(T, s, s, 3) uint8 mouth crops (module docstring) of (T, H, W, 3) frames."""
    t, h, w = frames.shape[:3]
    if len(keypoints) != t:
        raise DatasetFormatError(f"{where}: {len(keypoints)} keypoint frame(s) for {t} video "
                                 f"frame(s)")
    joints = keypoints[:, MOUTH_JOINTS + _BODY_MOUTH]
    seen = joints[..., 2] > MIN_CONFIDENCE
    detected = seen.any(axis=1)
    if not detected.any():
        raise DatasetFormatError(f"{where}: no frame has confident mouth keypoints to cut the "
                                 f"mouth crops around (face keypoints missing?)")
    xy = joints[..., :2] * np.array([w, h], dtype=np.float32)
    centre = np.zeros((t, 2), np.float32)
    width = np.zeros(t, np.float32)
    for i in np.flatnonzero(detected):
        pts = xy[i][seen[i]]
        centre[i] = pts.mean(axis=0)
        width[i] = float(np.ptp(pts[:, 0])) if len(pts) > 1 else 0.0
    valid = np.flatnonzero(detected)
    nearest = valid[np.abs(np.arange(t)[:, None] - valid[None, :]).argmin(axis=1)]
    centre, width = centre[nearest], width[nearest]
    size = max(8, h // 4)
    out = np.empty((t, size, size, 3), dtype=np.uint8)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    for i in range(t):
        side = max(3.0 * width[i], min(h, w) / 6.0)
        ys = np.clip(np.floor(centre[i, 1] + grid * side), 0, h - 1).astype(np.int64)
        xs = np.clip(np.floor(centre[i, 0] + grid * side), 0, w - 1).astype(np.int64)
        out[i] = frames[i][ys[:, None], xs[None, :]]
    return out


def _fixed(value: Any) -> Any:
    return value


def _poses(keypoints: Callable[[], np.ndarray]) -> dict[str, np.ndarray]:
    return {"mediapipe": mediapipe_feature(keypoints())}


def _lips(frames: Callable[[], np.ndarray], keypoints: Callable[[], np.ndarray],
          where: str) -> np.ndarray:
    return crop_mouths(frames(), keypoints(), where)


def _labels(opts: StreamOptions, name: str, num_frames: int,
            keypoints: Callable[[], np.ndarray] | None) -> np.ndarray:
    frames = num_frames if num_frames > 0 or keypoints is None else len(keypoints())
    return _frame_labels(opts, name, frames)


def derived_loaders(opts: StreamOptions, name: str, num_frames: int,
                    frames: Callable[[], np.ndarray] | None = None,
                    frame_size: Callable[[], tuple[float, float]] | None = None,
                    keypoints: Callable[[], np.ndarray] | None = None,
                    ) -> dict[str, Callable[[], Any]]:
    """Loaders for ``keypoints`` / ``poses`` / ``lips`` / ``frame_labels`` of video ``name``
    (module-level functions and partials, so samples pickle for DataLoader workers).

    ``frames``: the reader's frame loader (None without RGB); ``frame_size``: (width, height)
    of its frames without decoding them; ``keypoints``: the source's own keypoint loader, used
    when the keypoints folder has no entry for the video.
    """
    entry = find_keypoints(opts.keypoints_root, name)
    where = f"{opts.source}: {name!r}"
    loaders: dict[str, Callable[[], Any]] = {}
    if entry is not None:
        if frames is not None and entry.kind == "openpose":
            count = entry.count(opts.source)
            if count != num_frames:
                raise DatasetFormatError(
                    f"{where}: keypoint folder {entry.path} holds {count} frame(s) but the "
                    f"video has {num_frames} (a frame or keypoint file deleted or added?)")
        if opts.image_size is not None:
            size: Callable[[], Any] = partial(_fixed, opts.image_size)
        else:
            size = frame_size or partial(_fixed, DEFAULT_IMAGE_SIZE)
        keypoints = partial(load_keypoints, entry, opts.source,
                            num_frames if frames is not None else None, size)
    if keypoints is not None:
        loaders["keypoints"] = keypoints
        loaders["poses"] = partial(_poses, keypoints)
        if frames is not None:
            loaders["lips"] = partial(_lips, frames, keypoints, where)
    loaders["frame_labels"] = partial(_labels, opts, name, num_frames, keypoints)
    if frames is not None:
        loaders["frames"] = frames
    return loaders
