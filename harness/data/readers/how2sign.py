"""``how2sign``: How2Sign (American Sign Language, instructional videos) with OpenPose keypoints.

:func:`load_how2sign` ``(split, root, *, keypoints_dir, image_size, cache)`` lists a split
(``train``, ``dev`` = the ``val`` file, ``test``) as lazy ``Sample`` objects. Layout under
``root``::

    how2sign_realigned_train.csv  how2sign_realigned_val.csv  how2sign_realigned_test.csv
    openpose_output/json/<SENTENCE_NAME>/<SENTENCE_NAME>_000000000000_keypoints.json, ...

* Annotations: tab-separated UTF-8 (header ``VIDEO_ID ... SENTENCE``, no quoting);
  ``SENTENCE_NAME`` → ``name`` and keypoint folder, ``SENTENCE`` → ``text``; ``gloss`` and
  ``signer`` are ``None``; a clip with end ≤ start raises when the split is listed.
* Keypoint folder: ``keypoints_dir`` (default ``openpose_output/json``, relative to ``root`` or
  absolute, ``{split}`` substituted); one OpenPose JSON per frame, numbered from 0 without gaps.
* Keypoints: ``people[0]`` of each frame as (T, 137, 3) float32 ``x, y, confidence`` (BODY_25,
  face, left hand, right hand); ``x``/``y`` divided by ``image_size`` (default (1280, 720);
  ``None`` keeps OpenPose's units). :func:`read_openpose_frame` reads one file.
* "Not detected" (no person, or an empty part) gives confidence 0; anything else malformed is
  an error naming the file.
* Laziness: ``num_frames`` comes from a directory listing; JSON is parsed on
  ``sample.keypoints`` (re-checking the folder); RGB is not decoded (``frames`` is ``None``);
  ``cache=True`` keeps loaded keypoints.

Design notes: docs/components.md (section "harness.data.readers.how2sign").
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from harness.data import register_source
from harness.data.readers.common import (
    DatasetFormatError,
    DatasetMissingError,
    LazySamples,
    PathLike,
    canonical_split,
    checked_numbered,
    read_table,
    require_file,
    require_root,
    scan_numbered,
)
from harness.data.sample import Sample

SOURCE = "how2sign"
COLUMNS: tuple[str, ...] = ("VIDEO_ID", "VIDEO_NAME", "SENTENCE_ID", "SENTENCE_NAME",
                            "START_REALIGNED", "END_REALIGNED", "SENTENCE")
ANNOTATION_FILE = "how2sign_realigned_{split}.csv"
FILE_SPLIT = {"train": "train", "dev": "val", "test": "test"}
DEFAULT_KEYPOINTS_DIR = "openpose_output/json"
DEFAULT_IMAGE_SIZE: tuple[int, int] = (1280, 720)
#: OpenPose parts in the order they are stacked, with their joint counts (25 + 70 + 21 + 21).
OPENPOSE_PARTS: tuple[tuple[str, int], ...] = (
    ("pose_keypoints_2d", 25),
    ("face_keypoints_2d", 70),
    ("hand_left_keypoints_2d", 21),
    ("hand_right_keypoints_2d", 21),
)
NUM_JOINTS = sum(n for _, n in OPENPOSE_PARTS)  # 137
FIRST_FRAME = 0


@dataclass(frozen=True)
class _Row:
    name: str
    text: str
    folder: Path
    pattern: re.Pattern[str]
    image_size: tuple[float, float] | None
    cache: bool


def keypoint_pattern(clip: str) -> re.Pattern[str]:
    """File names of ``clip``'s per-frame OpenPose JSON (group 1: the frame number)."""
    return re.compile(re.escape(clip) + r"_(\d+)_keypoints\.json")


def read_openpose_frame(path: Path,
                        image_size: tuple[float, float] | None = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """One OpenPose JSON file as a (137, 3) float32 array (docs/components.md, "Keypoints")."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DatasetMissingError(f"{SOURCE}: keypoint file {path} is missing") from None
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(f"{SOURCE}: keypoint file {path} is not valid UTF-8 "
                                 f"(byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{SOURCE}: cannot decode JSON in {path}: {exc.msg} at line "
                                 f"{exc.lineno}, column {exc.colno}") from None
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise DatasetFormatError(f"{SOURCE}: {path} has no 'people' list (not an OpenPose "
                                 f"keypoint file?)")
    out = np.zeros((NUM_JOINTS, 3), dtype=np.float32)
    if not people:
        return out  # nobody detected in this frame: every confidence stays 0
    person = people[0]
    if not isinstance(person, dict):
        raise DatasetFormatError(f"{SOURCE}: {path}: people[0] is a {type(person).__name__}, "
                                 f"expected an object")
    start = 0
    for key, joints in OPENPOSE_PARTS:
        if key not in person:
            raise DatasetFormatError(f"{SOURCE}: {path}: people[0] lacks {key!r}")
        values = person[key]
        if not isinstance(values, list):
            raise DatasetFormatError(f"{SOURCE}: {path}: people[0].{key} is not a list")
        if values:  # an empty list means the part was not estimated: confidence stays 0
            if len(values) != joints * 3:
                raise DatasetFormatError(f"{SOURCE}: {path}: people[0].{key} has {len(values)} "
                                         f"numbers, expected {joints * 3} ({joints} joints x 3)")
            if not all(isinstance(v, int | float) and not isinstance(v, bool)
                       and math.isfinite(v) for v in values):
                raise DatasetFormatError(f"{SOURCE}: {path}: people[0].{key} holds values that "
                                         f"are not finite numbers")
            out[start:start + joints] = np.asarray(values, dtype=np.float32).reshape(joints, 3)
        start += joints
    if image_size is not None:
        out[:, 0] /= image_size[0]
        out[:, 1] /= image_size[1]
    return out


def _load_keypoints(row: _Row, expected: int) -> np.ndarray:
    paths = checked_numbered(row.folder, row.pattern, FIRST_FRAME, "keypoint", SOURCE,
                             expected=expected)
    return np.stack([read_openpose_frame(path, row.image_size) for path in paths])


def _build(row: _Row) -> Sample:
    count = len(scan_numbered(row.folder, row.pattern))
    return Sample(name=row.name, num_frames=count, text=row.text, source=SOURCE,
                  cache=row.cache, loaders={"keypoints": partial(_load_keypoints, row, count)})


def _seconds(value: str, path: Path, number: int, column: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: {column} {value!r} is not "
                                 f"a number") from None
    if not math.isfinite(seconds):
        raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: {column} is {value!r}")
    return seconds


@register_source(SOURCE)
def load_how2sign(split: str, root: PathLike | None = None, *,
                  keypoints_dir: str = DEFAULT_KEYPOINTS_DIR,
                  image_size: tuple[float, float] | None = DEFAULT_IMAGE_SIZE,
                  cache: bool = False) -> LazySamples:
    """The ``split`` (train / dev = val / test) of the How2Sign copy at ``root``."""
    split = canonical_split(split, SOURCE)
    base = require_root(root, SOURCE, "how2sign_realigned_<split>.csv and "
                                      f"{DEFAULT_KEYPOINTS_DIR}/")
    file_split = FILE_SPLIT[split]
    path = require_file(base / ANNOTATION_FILE.format(split=file_split), SOURCE,
                        f"{split} annotation file")
    if image_size is not None:
        width, height = (float(v) for v in image_size)
        if not (width > 0 and height > 0):
            raise ValueError(f"{SOURCE}: image_size must be two positive numbers (width, "
                             f"height), got {image_size!r}")
        image_size = (width, height)
    keypoint_root = base / keypoints_dir.format(split=file_split)
    rows = []
    seen: dict[str, int] = {}
    for number, fields in read_table(path, "\t", COLUMNS, SOURCE):
        name = fields["SENTENCE_NAME"].strip()
        if not name:
            raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: empty SENTENCE_NAME")
        if name in seen:
            raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: SENTENCE_NAME {name!r} "
                                     f"already used on line {seen[name]}")
        seen[name] = number
        start = _seconds(fields["START_REALIGNED"], path, number, "START_REALIGNED")
        end = _seconds(fields["END_REALIGNED"], path, number, "END_REALIGNED")
        if end <= start:
            raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: zero-length video "
                                     f"{name!r} (START_REALIGNED {start} >= END_REALIGNED {end})")
        rows.append(_Row(name=name, text=fields["SENTENCE"].strip(),
                         folder=keypoint_root / name, pattern=keypoint_pattern(name),
                         image_size=image_size, cache=cache))
    return LazySamples(rows, _build, f"{SOURCE} {split}")

