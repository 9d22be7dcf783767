"""``csl-daily``: the CSL-Daily layout (Chinese Sign Language, daily-life sentences).

Layout under ``root`` (as published)::

    sentence_label/csl2020ct_v2.pkl          pickle: dict, ['info'] = list of per-video dicts
    sentence_label/split_1.txt               one "name|split" line per video (train/dev/test)
    sentence_frames-512x512/<name>/000000.jpg, 000001.jpg, ...   (numbered from 0)

Per video the label pickle's ``info`` entry gives ``name``, ``length`` (frame count),
``label_gloss`` (list of glosses), ``label_char`` (list of characters) and ``label_word`` (list of
words; not used). ``Sample.gloss`` = ``" ".join(label_gloss)``; ``Sample.text`` =
``"".join(label_char)`` (the character string, scored character-level); ``num_frames`` =
``length``; ``signer`` = the ``P<digits>`` part of names shaped like ``S000000_P0000_T00``
(sentence / performer / take), else ``None``.

The split file may start with a header line (``Name|Split``, any case) or go straight to data;
both are handled. Every other line must be ``name|split`` with split ``train``, ``dev`` (``val``
accepted) or ``test``, and every name must have an ``info`` entry; samples come in split-file
order.

The label file is a pickle, and unpickling can run arbitrary code, so it is read only with
``trust_pickle=True`` (the error otherwise says so). A ``length`` of 0 is a zero-length video and
raises when the split is listed. Frames load lazily on ``sample.frames``: the folder must exist and
hold exactly ``length`` JPGs numbered 0 … length-1 (a missing folder, zero frames, a gap or a count
that disagrees with ``length`` raises, naming the folder); they decode with Pillow to
(T, 512, 512, 3) uint8 RGB. ``cache=True`` keeps decoded frames on the Sample. Derived streams
(``harness.data.readers.streams``): ``keypoints_dir`` (default ``keypoints/`` when present),
``labels``; an empty gloss / text in ``require`` (default both) raises naming the entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import register_source
from harness.data.readers.common import (
    SPLIT_ALIASES,
    DatasetFormatError,
    LazySamples,
    PathLike,
    canonical_split,
    checked_numbered,
    frame_size,
    load_frames,
    load_trusted_pickle,
    read_lines,
    require_file,
    require_root,
    require_str,
    required_field,
)
from harness.data.readers.streams import StreamOptions, derived_loaders, options
from harness.data.sample import Sample

SOURCE = "csl-daily"
LABEL_FILE = "sentence_label/csl2020ct_v2.pkl"
SPLIT_FILE = "sentence_label/split_1.txt"
FRAMES_DIR = "sentence_frames-512x512"
FRAME_PATTERN = re.compile(r"(\d{6,})\.jpg")
FIRST_FRAME = 0
INFO_KEYS: tuple[str, ...] = ("name", "length", "label_gloss", "label_char")
_SIGNER = re.compile(r"(?:^|_)(P\d+)(?:_|$)")
LAYOUT = f"{LABEL_FILE}, {SPLIT_FILE} and {FRAMES_DIR}/"
KEYPOINTS_DIR = "keypoints"


@dataclass(frozen=True)
class _Row:
    name: str
    length: int
    gloss: str | None
    text: str | None
    folder: Path
    cache: bool
    streams: StreamOptions


def read_split_file(path: Path) -> list[tuple[int, str, str]]:
    """``(line number, name, canonical split)`` for every data line of ``split_1.txt``."""
    lines = read_lines(path, SOURCE)
    if lines and [f.strip().lower() for f in lines[0][1].split("|")] == ["name", "split"]:
        lines = lines[1:]
    rows: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for number, text in lines:
        fields = [f.strip() for f in text.split("|")]
        if len(fields) != 2:
            raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: {len(fields)} "
                                     f"'|'-separated field(s), expected 2 (name|split)")
        name, split = fields
        if split.lower() not in SPLIT_ALIASES:
            raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: unknown split {split!r} "
                                     f"for {name!r} (expected train, dev or test)")
        if name in seen:
            raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: {name!r} already listed "
                                     f"on line {seen[name]}")
        seen[name] = number
        rows.append((number, name, SPLIT_ALIASES[split.lower()]))
    return rows


def _text_list(value: Any, where: str, key: str) -> list[str]:
    if not isinstance(value, list | tuple):
        raise DatasetFormatError(f"{SOURCE}: {where}: {key!r} should be a list of strings, "
                                 f"found {type(value).__name__}")
    return [require_str(item, SOURCE, where, key) for item in value]


def read_info(path: Path, trust_pickle: bool,
              require: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """The label pickle's ``info`` entries by name (after checking their keys and types)."""
    labels = load_trusted_pickle(path, SOURCE, trust_pickle)
    if not isinstance(labels, dict) or "info" not in labels:
        kind = f"a dict with keys {sorted(map(str, labels))}" if isinstance(labels, dict) \
            else f"a {type(labels).__name__}"
        raise DatasetFormatError(f"{SOURCE}: {path} holds {kind}; expected a dict with an "
                                 f"'info' list")
    info = labels["info"]
    if not isinstance(info, list | tuple):
        raise DatasetFormatError(f"{SOURCE}: {path}: 'info' is a {type(info).__name__}, "
                                 f"expected a list of dicts")
    by_name: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(info):
        where = f"{path}, info[{index}]"
        if not isinstance(entry, dict):
            raise DatasetFormatError(f"{SOURCE}: {where} is a {type(entry).__name__}, "
                                     f"expected a dict")
        missing = [key for key in INFO_KEYS if key not in entry]
        if missing:
            raise DatasetFormatError(f"{SOURCE}: {where} lacks key(s) {missing}")
        name = require_str(entry["name"], SOURCE, where, "name")
        where = f"{path}, info[{index}] ({name!r})"
        length = entry["length"]
        if isinstance(length, bool) or not isinstance(length, int | np.integer):
            raise DatasetFormatError(f"{SOURCE}: {where}: 'length' should be an integer frame "
                                     f"count, found {length!r}")
        if length <= 0:
            raise DatasetFormatError(f"{SOURCE}: {where}: zero-length video (length {length})")
        by_name[name] = {
            "length": int(length),
            "gloss": required_field(" ".join(_text_list(entry["label_gloss"], where,
                                                        "label_gloss")),
                                    "gloss", require, where, SOURCE),
            "text": required_field("".join(_text_list(entry["label_char"], where,
                                                      "label_char")),
                                   "text", require, where, SOURCE),
        }
    return by_name


def _load_frames(folder: Path, length: int) -> np.ndarray:
    paths = checked_numbered(folder, FRAME_PATTERN, FIRST_FRAME, "frame", SOURCE,
                             expected=length)
    return load_frames(paths, folder, SOURCE)


def _first_frame_size(folder: Path) -> tuple[float, float]:
    return frame_size(folder / f"{FIRST_FRAME:06d}.jpg", SOURCE)


def _build(row: _Row) -> Sample:
    match = _SIGNER.search(row.name)
    loaders = derived_loaders(row.streams, row.name, row.length,
                              frames=partial(_load_frames, row.folder, row.length),
                              frame_size=partial(_first_frame_size, row.folder))
    return Sample(name=row.name, num_frames=row.length,
                  signer=match.group(1) if match else None, gloss=row.gloss, text=row.text,
                  source=SOURCE, cache=row.cache, loaders=loaders)


@register_source(SOURCE)
def load_csl_daily(split: str, root: PathLike | None = None, *, trust_pickle: bool = False,
                   keypoints_dir: str | None = None, labels: PathLike | None = None,
                   require: tuple[str, ...] = ("gloss", "text"),
                   cache: bool = False) -> LazySamples:
    """The ``split`` (train / dev / test; ``val`` = dev) of the CSL-Daily copy at ``root``."""
    split = canonical_split(split, SOURCE)
    base = require_root(root, SOURCE, LAYOUT)
    split_path = require_file(base / SPLIT_FILE, SOURCE, "split file")
    label_path = require_file(base / LABEL_FILE, SOURCE, "label file")
    info = read_info(label_path, trust_pickle, require)
    streams = options(SOURCE, base, split, keypoints_dir=keypoints_dir,
                      default_keypoints_dir=KEYPOINTS_DIR, labels=labels)
    rows = []
    for number, name, row_split in read_split_file(split_path):
        if row_split != split:
            continue
        if name not in info:
            raise DatasetFormatError(f"{SOURCE}: {split_path}, line {number}: {name!r} has no "
                                     f"entry in the label file {label_path}")
        entry = info[name]
        rows.append(_Row(name=name, length=entry["length"], gloss=entry["gloss"],
                         text=entry["text"], folder=base / FRAMES_DIR / name, cache=cache,
                         streams=streams))
    return LazySamples(rows, _build, f"{SOURCE} {split}")
