"""``how2sign``: How2Sign (American Sign Language, instructional videos) with OpenPose keypoints.

:func:`load_how2sign` ``(split, root, *, keypoints_dir, image_size, keypoint_layout, labels,
require, cache)`` lists a split (``train``, ``dev`` = the ``val`` file, ``test``) as lazy
``Sample`` objects. Layout under ``root``::

    how2sign_realigned_train.csv  how2sign_realigned_val.csv  how2sign_realigned_test.csv
    openpose_output/json/<SENTENCE_NAME>/<SENTENCE_NAME>_000000000000_keypoints.json, ...

* Annotations: tab-separated UTF-8 (header ``VIDEO_ID ... SENTENCE``, no quoting);
  ``SENTENCE_NAME`` → ``name`` and keypoint folder, ``SENTENCE`` → ``text`` (empty: an error
  naming the line while ``"text"`` is in ``require``); ``gloss`` and ``signer`` are ``None``; a
  clip with end ≤ start raises when the split is listed.
* Keypoint folder: ``keypoints_dir`` (default ``openpose_output/json``, relative to ``root`` or
  absolute, ``{split}`` substituted); per clip a folder of OpenPose JSON (one per frame, numbered
  from 0 without gaps) or a ``<SENTENCE_NAME>.pose`` file.
* Keypoints: ``people[0]`` of each frame mapped onto the 75 joints (``keypoint_layout=
  "signfuse75"``, the default; ``"openpose137"`` keeps all 137 BODY_25 + face + hand points);
  ``x``/``y`` divided by ``image_size`` (default (1280, 720); ``None`` keeps OpenPose's units).
  "Not detected" gives confidence 0; anything else malformed is an error naming the file.
* Derived streams (``harness.data.readers.streams``): SignX's MediaPipe poses and frame labels;
  no RGB (``frames`` and ``lips`` are absent).
* Laziness: ``num_frames`` comes from a directory listing (or the ``.pose`` header); JSON is
  parsed on ``sample.keypoints``; ``cache=True`` keeps loaded keypoints.

Design notes: docs/components.md (section "harness.data.readers.how2sign"), docs/data.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from harness.data import register_source
from harness.data.keypoints import OPENPOSE, to_signfuse
from harness.data.readers.common import (
    DatasetFormatError,
    LazySamples,
    PathLike,
    canonical_split,
    read_table,
    require_file,
    require_root,
    required_field,
    scan_numbered,
)
from harness.data.readers.openpose import (  # noqa: F401  (read_openpose_frame: public here too)
    DEFAULT_IMAGE_SIZE,
    OPENPOSE_PARTS,
    keypoint_pattern,
    read_openpose_folder,
    read_openpose_frame,
)
from harness.data.readers.streams import (
    KeypointEntry,
    StreamOptions,
    derived_loaders,
    load_keypoints,
    options,
)
from harness.data.sample import Sample

SOURCE = "how2sign"
COLUMNS: tuple[str, ...] = ("VIDEO_ID", "VIDEO_NAME", "SENTENCE_ID", "SENTENCE_NAME",
                            "START_REALIGNED", "END_REALIGNED", "SENTENCE")
ANNOTATION_FILE = "how2sign_realigned_{split}.csv"
FILE_SPLIT = {"train": "train", "dev": "val", "test": "test"}
DEFAULT_KEYPOINTS_DIR = "openpose_output/json"
NUM_JOINTS = sum(n for _, n in OPENPOSE_PARTS)  # 137
KEYPOINT_LAYOUTS = ("signfuse75", OPENPOSE)


@dataclass(frozen=True)
class _Row:
    name: str
    text: str | None
    folder: Path
    pattern: re.Pattern[str]
    image_size: tuple[float, float] | None
    layout: str
    cache: bool
    streams: StreamOptions


def _load_keypoints(row: _Row, expected: int) -> np.ndarray:
    points = read_openpose_folder(row.folder, row.image_size, SOURCE, expected=expected,
                                  pattern=row.pattern)
    return points if row.layout == OPENPOSE else to_signfuse(points, OPENPOSE)


def _no_size() -> None:
    return None  # .pose files carry their own frame size


def _build(row: _Row) -> Sample:
    pose = row.folder.with_name(row.name + ".pose")
    if pose.is_file():
        entry = KeypointEntry(pose, "pose")
        count = entry.count(SOURCE)
        keypoints = partial(load_keypoints, entry, SOURCE, count, _no_size)
    else:
        count = len(scan_numbered(row.folder, row.pattern))
        keypoints = partial(_load_keypoints, row, count)
    loaders = derived_loaders(row.streams, row.name, count, keypoints=keypoints)
    if row.layout == OPENPOSE:
        loaders.pop("poses")  # the MediaPipe format is derived from the 75 joints
    return Sample(name=row.name, num_frames=count, text=row.text, source=SOURCE,
                  cache=row.cache, loaders=loaders)


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
                  keypoint_layout: str = "signfuse75", labels: PathLike | None = None,
                  require: tuple[str, ...] = ("text",), cache: bool = False) -> LazySamples:
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
    if keypoint_layout not in KEYPOINT_LAYOUTS:
        raise ValueError(f"{SOURCE}: keypoint_layout must be one of {KEYPOINT_LAYOUTS}, got "
                         f"{keypoint_layout!r}")
    keypoint_root = base / str(keypoints_dir).format(split=file_split)
    streams = options(SOURCE, base, split, labels=labels)
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
        text = required_field(fields["SENTENCE"], "text", require,
                              f"{path}, line {number} ({name!r})", SOURCE)
        rows.append(_Row(name=name, text=text, folder=keypoint_root / name,
                         pattern=keypoint_pattern(name), image_size=image_size,
                         layout=keypoint_layout, cache=cache, streams=streams))
    return LazySamples(rows, _build, f"{SOURCE} {split}")

