"""``pose``: a folder of ``.pose`` files (the ``pose-format`` library) plus a TSV index.

Layout under ``root``::

    index.tsv          tab-separated, header with name, split, text and optionally gloss, signer
    <name>.pose        one pose-format file per video (OpenPose BODY_25 + face + hands, or
                       MediaPipe Holistic with or without POSE_WORLD_LANDMARKS)

Each index row of the requested split becomes a ``Sample``: ``keypoints`` (T, 75, 3) read with
pose-format and mapped onto the 75 joints (``harness.data.readers.posefile``; confidence kept),
SignX's MediaPipe poses and frame labels derived from them (``harness.data.readers.streams``),
no RGB. ``num_frames`` comes from the file's header when the sample is indexed. Errors name the
file: an index row whose ``.pose`` file is missing (at listing), a damaged or truncated file or an
unknown layout (when read), an empty ``text`` / ``gloss`` named in ``require``.
Mapping tables: docs/data.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from harness.data import register_source
from harness.data.readers.common import (
    DatasetFormatError,
    DatasetMissingError,
    LazySamples,
    PathLike,
    canonical_split,
    read_lines,
    require_file,
    require_root,
    required_field,
)
from harness.data.readers.streams import (
    KeypointEntry,
    StreamOptions,
    derived_loaders,
    load_keypoints,
    options,
)
from harness.data.sample import Sample

SOURCE = "pose"
INDEX_FILE = "index.tsv"
REQUIRED_COLUMNS: tuple[str, ...] = ("name", "split", "text")
OPTIONAL_COLUMNS: tuple[str, ...] = ("gloss", "signer")


@dataclass(frozen=True)
class _Row:
    name: str
    text: str | None
    gloss: str | None
    signer: str | None
    path: Path
    cache: bool
    streams: StreamOptions


def read_index(path: Path) -> list[tuple[int, dict[str, str]]]:
    """``(line number, {column: field})`` of every row of ``index.tsv``."""
    lines = read_lines(path, SOURCE)
    if not lines:
        raise DatasetFormatError(f"{SOURCE}: {path} is empty (expected a header line "
                                 f"{chr(9).join(REQUIRED_COLUMNS)!r} and one row per video)")
    number, text = lines[0]
    header = [c.strip() for c in text.split("\t")]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise DatasetFormatError(
            f"{SOURCE}: {path}, line {number} (header): columns {header}; expected the "
            f"tab-separated columns {list(REQUIRED_COLUMNS)} plus optionally "
            f"{list(OPTIONAL_COLUMNS)}" + (f" (missing {missing})" if missing else "")
            + (f" (unknown {unknown})" if unknown else ""))
    rows = []
    for number, text in lines[1:]:
        fields = text.split("\t")
        if len(fields) != len(header):
            raise DatasetFormatError(f"{SOURCE}: {path}, line {number}: {len(fields)} "
                                     f"tab-separated field(s), expected {len(header)}")
        rows.append((number, dict(zip(header, fields, strict=True))))
    return rows


def _no_size() -> None:
    return None  # .pose files carry their own frame size


def _build(row: _Row) -> Sample:
    entry = KeypointEntry(row.path, "pose")
    count = entry.count(SOURCE)
    keypoints = partial(load_keypoints, entry, SOURCE, count, _no_size)
    return Sample(name=row.name, num_frames=count, signer=row.signer, gloss=row.gloss,
                  text=row.text, source=SOURCE, cache=row.cache,
                  loaders=derived_loaders(row.streams, row.name, count, keypoints=keypoints))


@register_source(SOURCE)
def load_pose(split: str, root: PathLike | None = None, *, labels: PathLike | None = None,
              require: tuple[str, ...] = ("text",), cache: bool = False) -> LazySamples:
    """The ``split`` (train / dev / test; ``val`` = dev) of the ``.pose`` folder at ``root``."""
    split = canonical_split(split, SOURCE)
    base = require_root(root, SOURCE, f"{INDEX_FILE} and <name>.pose files")
    index = require_file(base / INDEX_FILE, SOURCE, "index file")
    streams = options(SOURCE, base, split, labels=labels)
    rows, seen = [], {}
    for number, fields in read_index(index):
        where = f"{index}, line {number}"
        row_split = canonical_split(fields["split"], f"{SOURCE}: {where}")
        name = fields["name"].strip()
        if not name:
            raise DatasetFormatError(f"{SOURCE}: {where}: empty name")
        if name in seen:
            raise DatasetFormatError(f"{SOURCE}: {where}: name {name!r} already used on line "
                                     f"{seen[name]}")
        seen[name] = number
        if row_split != split:
            continue
        path = base / f"{name}.pose"
        if not path.is_file():
            raise DatasetMissingError(f"{SOURCE}: {where}: no pose file {path} for {name!r}")
        where = f"{where} ({name!r})"
        gloss = fields.get("gloss", "")
        rows.append(_Row(name=name, path=path, cache=cache, streams=streams,
                         text=required_field(fields["text"], "text", require, where, SOURCE),
                         gloss=required_field(gloss, "gloss",
                                              require if "gloss" in fields else (), where,
                                              SOURCE),
                         signer=fields.get("signer", "").strip() or None))
    return LazySamples(rows, _build, f"{SOURCE} {split}")
