"""OpenPose keypoint JSON (BODY_25 + face + hands, one file per frame), as How2Sign ships it.

:func:`read_openpose_frame` reads one ``<clip>_<frame number>_keypoints.json`` into (137, 3)
(x, y, confidence of ``people[0]``: 25 body, 70 face, 21 left-hand, 21 right-hand points);
:func:`read_openpose_folder` reads a numbered folder of them; :func:`write_openpose_folder`
writes one (exports). "Not detected" (no person, an empty part) is confidence 0; anything else
malformed is an error naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np

from harness.data.keypoints import LAYOUT_COMPONENTS, OPENPOSE, from_signfuse
from harness.data.readers.common import (
    DatasetFormatError,
    DatasetMissingError,
    checked_numbered,
)

#: OpenPose parts in the order they are stacked, with their joint counts (25 + 70 + 21 + 21).
OPENPOSE_PARTS: tuple[tuple[str, int], ...] = LAYOUT_COMPONENTS[OPENPOSE]
NUM_OPENPOSE_POINTS = sum(n for _, n in OPENPOSE_PARTS)  # 137
DEFAULT_IMAGE_SIZE: tuple[int, int] = (1280, 720)
#: Any ``<prefix>_<frame number>_keypoints.json`` (group 1: the frame number).
ANY_FRAME = re.compile(r".*_(\d+)_keypoints\.json")


def keypoint_pattern(clip: str) -> re.Pattern[str]:
    """File names of ``clip``'s per-frame OpenPose JSON (group 1: the frame number)."""
    return re.compile(re.escape(clip) + r"_(\d+)_keypoints\.json")


def read_openpose_frame(path: Path,
                        image_size: tuple[float, float] | None = DEFAULT_IMAGE_SIZE,
                        source: str = "how2sign") -> np.ndarray:
    """One OpenPose JSON file as a (137, 3) float32 array (docs/components.md, "Keypoints");
    ``image_size`` (width, height) divides x / y (``None``: OpenPose's pixels)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DatasetMissingError(f"{source}: keypoint file {path} is missing") from None
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(f"{source}: keypoint file {path} is not valid UTF-8 "
                                 f"(byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{source}: cannot decode JSON in {path}: {exc.msg} at line "
                                 f"{exc.lineno}, column {exc.colno}") from None
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise DatasetFormatError(f"{source}: {path} has no 'people' list (not an OpenPose "
                                 f"keypoint file?)")
    out = np.zeros((NUM_OPENPOSE_POINTS, 3), dtype=np.float32)
    if not people:
        return out  # nobody detected in this frame: every confidence stays 0
    person = people[0]
    if not isinstance(person, dict):
        raise DatasetFormatError(f"{source}: {path}: people[0] is a {type(person).__name__}, "
                                 f"expected an object")
    start = 0
    for key, joints in OPENPOSE_PARTS:
        if key not in person:
            raise DatasetFormatError(f"{source}: {path}: people[0] lacks {key!r}")
        values = person[key]
        if not isinstance(values, list):
            raise DatasetFormatError(f"{source}: {path}: people[0].{key} is not a list")
        if values:  # an empty list means the part was not estimated: confidence stays 0
            if len(values) != joints * 3:
                raise DatasetFormatError(f"{source}: {path}: people[0].{key} has {len(values)} "
                                         f"numbers, expected {joints * 3} ({joints} joints x 3)")
            if not all(isinstance(v, int | float) and not isinstance(v, bool)
                       and math.isfinite(v) for v in values):
                raise DatasetFormatError(f"{source}: {path}: people[0].{key} holds values that "
                                         f"are not finite numbers")
            out[start:start + joints] = np.asarray(values, dtype=np.float32).reshape(joints, 3)
        start += joints
    if image_size is not None:
        out[:, 0] /= image_size[0]
        out[:, 1] /= image_size[1]
    return out



def read_openpose_folder(folder: Path, image_size: tuple[float, float] | None, source: str,
                         expected: int | None = None,
                         pattern: re.Pattern[str] = ANY_FRAME) -> np.ndarray:
    """(T, 137, 3) from a folder of per-frame JSON numbered from 0 without gaps."""
    paths = checked_numbered(folder, pattern, 0, "keypoint", source, expected=expected)
    return np.stack([read_openpose_frame(p, image_size, source) for p in paths])


def write_openpose_folder(folder: Path, clip: str, keypoints: np.ndarray,
                          image_size: tuple[float, float]) -> None:
    """Write (T, 75, 3) joints as ``<clip>_<12-digit frame>_keypoints.json`` files in pixels of
    ``image_size``; a joint with confidence 0 is written as OpenPose writes "not detected"."""
    points = from_signfuse(keypoints, OPENPOSE)
    points[..., 0] *= image_size[0]
    points[..., 1] *= image_size[1]
    points[points[..., 2] <= 0] = 0.0
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(points):
        person, start = {"person_id": [-1]}, 0
        for key, n in OPENPOSE_PARTS:
            person[key] = [round(float(v), 4) for v in frame[start:start + n].reshape(-1)]
            start += n
        doc = {"version": 1.3, "people": [person]}
        tmp = folder / f".{clip}_{t:012d}.tmp"
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, folder / f"{clip}_{t:012d}_keypoints.json")

