"""``phoenix14t``: the RWTH-PHOENIX-Weather 2014 T layout (German weather forecasts, DGS).

Layout under ``root`` (as published)::

    annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv
    features/fullFrame-210x260px/{train,dev,test}/<name>/images0001.png, images0002.png, ...

The corpus files are ``|``-separated UTF-8 text with the header
``name|video|start|end|speaker|orth|translation`` (no quoting). Per row: ``name`` → ``Sample.name``,
``speaker`` → ``signer``, ``orth`` (the gloss sequence) → ``gloss``, ``translation`` → ``text``;
``video``/``start``/``end`` are not used (the frame folder is found from the split and the name).

Split sizes are whatever the files hold (the published release has 7096 / 519 / 642 rows); nothing
is hard-coded, so cut-down or exported copies (``signbench data export``) read the same way.

Frames load lazily: ``Sample.num_frames`` is the number of ``images<NNNN>.png`` files found in the
sample's folder when the sample is indexed (a directory listing, no decoding; 0 when the folder is
missing or empty). Reading ``sample.frames`` lists the folder again, checks the frames are
numbered 1, 2, ... without gaps and that their count still matches, and decodes them with Pillow to
(T, 260, 210, 3) uint8 RGB (any size is accepted as long as all frames of a sample agree). A
missing folder, zero frames, a gap, or an undecodable PNG raises, naming the folder or file.

Derived streams (``harness.data.readers.streams``): ``keypoints_dir`` (default
``keypoints/<split>`` when present) of ``<name>.pose`` files or ``<name>/`` OpenPose folders gives
keypoints, SignX's MediaPipe poses and mouth crops; ``labels`` a frame-labels file. An empty
``orth`` / ``translation`` in a column named in ``require`` (default both) raises naming the line.
A keypoint folder whose frame count differs from the frame folder's (e.g. a deleted last frame)
raises when the split is listed. ``cache`` keeps decoded frames on the Sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from harness.data import register_source
from harness.data.readers.common import (
    DatasetFormatError,
    LazySamples,
    PathLike,
    canonical_split,
    checked_numbered,
    frame_size,
    load_frames,
    read_table,
    require_file,
    require_root,
    required_field,
    scan_numbered,
)
from harness.data.readers.streams import StreamOptions, derived_loaders, options
from harness.data.sample import Sample

SOURCE = "phoenix14t"
COLUMNS: tuple[str, ...] = ("name", "video", "start", "end", "speaker", "orth", "translation")
CORPUS_FILE = "annotations/manual/PHOENIX-2014-T.{split}.corpus.csv"
FRAMES_DIR = "features/fullFrame-210x260px/{split}"
FRAME_PATTERN = re.compile(r"images(\d{4,})\.png")
FIRST_FRAME = 1
LAYOUT = "annotations/manual/PHOENIX-2014-T.<split>.corpus.csv and features/fullFrame-210x260px/"
KEYPOINTS_DIR = "keypoints/{split}"


@dataclass(frozen=True)
class _Row:
    name: str
    signer: str
    gloss: str | None
    text: str | None
    folder: Path
    cache: bool
    streams: StreamOptions


def corpus_path(root: PathLike, split: str) -> Path:
    """The annotation file of ``split`` (``train``/``dev``/``test``) under ``root``."""
    return Path(root) / CORPUS_FILE.format(split=canonical_split(split, SOURCE))


def frames_folder(root: PathLike, split: str, name: str) -> Path:
    """The folder holding the PNG frames of sample ``name``."""
    return Path(root) / FRAMES_DIR.format(split=canonical_split(split, SOURCE)) / name


def _load_frames(folder: Path, expected: int) -> np.ndarray:
    paths = checked_numbered(folder, FRAME_PATTERN, FIRST_FRAME, "frame", SOURCE,
                             expected=expected)
    return load_frames(paths, folder, SOURCE)


def _first_frame_size(folder: Path) -> tuple[float, float]:
    entries = scan_numbered(folder, FRAME_PATTERN)
    if not entries:
        raise DatasetFormatError(f"{SOURCE}: frame folder {folder} holds no frames")
    return frame_size(entries[0][1], SOURCE)


def _build(row: _Row) -> Sample:
    count = len(scan_numbered(row.folder, FRAME_PATTERN))
    loaders = derived_loaders(row.streams, row.name, count,
                              frames=partial(_load_frames, row.folder, count),
                              frame_size=partial(_first_frame_size, row.folder))
    return Sample(name=row.name, num_frames=count, signer=row.signer, gloss=row.gloss,
                  text=row.text, source=SOURCE, cache=row.cache, loaders=loaders)


@register_source(SOURCE)
def load_phoenix14t(split: str, root: PathLike | None = None, *, keypoints_dir: str | None = None,
                    labels: PathLike | None = None,
                    require: tuple[str, ...] = ("gloss", "text"),
                    cache: bool = False) -> LazySamples:
    """The ``split`` (train / dev / test; ``val`` = dev) of the PHOENIX-2014T copy at ``root``."""
    split = canonical_split(split, SOURCE)
    base = require_root(root, SOURCE, LAYOUT)
    path = require_file(corpus_path(base, split), SOURCE, f"{split} annotation file")
    streams = options(SOURCE, base, split, keypoints_dir=keypoints_dir,
                      default_keypoints_dir=KEYPOINTS_DIR, labels=labels)
    rows = []
    names: dict[str, int] = {}
    for number, fields in read_table(path, "|", COLUMNS, SOURCE):
        name = fields["name"].strip()
        if not name:
            raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: empty 'name' field")
        if name in names:
            raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: sample name {name!r} "
                                     f"already used on line {names[name]}")
        names[name] = number
        where = f"{path}, line {number} ({name!r})"
        rows.append(_Row(name=name, signer=fields["speaker"].strip(),
                         gloss=required_field(fields["orth"], "gloss", require, where, SOURCE),
                         text=required_field(fields["translation"], "text", require, where,
                                             SOURCE),
                         folder=frames_folder(base, split, name), cache=cache, streams=streams))
    return LazySamples(rows, _build, f"{SOURCE} {split}")
