"""``signjoey``: the signjoey / SLRT precomputed-feature files (one per split).

Format (as published by signjoey for PHOENIX-2014T, and reused by SLRT and others): a
gzip-compressed pickle holding a list of dicts with the keys ``name``, ``signer``, ``gloss``,
``text`` and ``sign`` (a T×F float tensor of per-frame visual features, F = 1024 in the published
files), sometimes also ``num_frames``. Each dict becomes a ``Sample`` with ``features`` = ``sign``
as a (T, F) float32 numpy array (``num_frames`` = T; a ``num_frames`` key, when present, is not
used: the feature length is what a model sees). ``gloss``/``text`` are kept verbatim (signjoey's
text is already lower-cased and tokenised, e.g. "... regen ."). The sample has no ``frames``.

Locating the file: pass ``path=<file>`` (then ``root`` is ignored), or ``root=<folder>``, in which
case the folder must hold exactly one file named ``<anything><sep><split>[.pkl][.gz]`` with
``<sep>`` one of ``. _ -`` (e.g. ``phoenix14t.pami0.dev``) or just ``<split>[.pkl][.gz]``; for the
dev split the name may say ``dev`` or ``val``. Plain (uncompressed) pickles are read as well.

Trust: a pickle can run arbitrary code while it is loaded, so nothing is unpickled unless the
caller passes ``trust_pickle=True``; without it the error explains this and how to opt in.
Unpickling the published files needs torch installed (their tensors are torch tensors).

Laziness: the pickle must be read whole to learn the names and texts, so the tensors sit in memory
once the split is listed; the conversion to float32 numpy happens on first access of
``features`` (and is cached only with ``cache=True``). Checks at listing: every entry is a dict with
the five keys, text fields are text, ``sign`` is 2-D with at least one frame (zero-length video is
an error), names are unique, every entry has the same feature width (mixed widths raise naming
both entries), and ``gloss`` / ``text`` are not empty when named in ``require`` (default both).
At access: the features are finite (NaN / inf raises). ``keypoints_dir`` / ``labels``: the
derived streams of ``harness.data.readers.streams`` (keypoints by sample name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import register_source
from harness.data.readers.common import (
    DatasetFormatError,
    DatasetMissingError,
    PathLike,
    canonical_split,
    load_trusted_pickle,
    require_file,
    require_root,
    require_str,
    required_field,
)
from harness.data.readers.streams import StreamOptions, derived_loaders, options
from harness.data.sample import Sample

SOURCE = "signjoey"
KEYS: tuple[str, ...] = ("name", "signer", "gloss", "text", "sign")
_SPLIT_WORDS = {"train": ("train",), "dev": ("dev", "val"), "test": ("test",)}


def find_split_file(root: Path, split: str) -> Path:
    """The single file in ``root`` holding ``split`` (see the module docstring for the names)."""
    words = "|".join(_SPLIT_WORDS[split])
    pattern = re.compile(rf"(?:.*[._-])?(?:{words})(?:\.pkl)?(?:\.gz)?")
    matches = sorted(p for p in root.iterdir() if p.is_file() and pattern.fullmatch(p.name))
    if not matches:
        raise DatasetMissingError(
            f"{SOURCE}: no {split} file in {root} (expected a name like "
            f"'phoenix14t.pami0.{split}' or '{split}.pkl.gz'); pass path=<file> to name it")
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise DatasetFormatError(
            f"{SOURCE}: several {split} files in {root} ({names}); pass path=<file> to choose")
    return matches[0]


def _to_float32(value: Any) -> np.ndarray:
    if type(value).__module__.split(".")[0] == "torch":
        import torch

        return value.detach().to("cpu", torch.float32).numpy()
    return np.asarray(value, dtype=np.float32)


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    if shape is None:
        try:
            shape = np.asarray(value).shape
        except (TypeError, ValueError):
            return None
    return tuple(int(n) for n in shape)


def _load_features(sign: Any, where: str) -> np.ndarray:
    features = _to_float32(sign)
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features)).any(axis=-1).sum())
        raise DatasetFormatError(f"{SOURCE}: {where}: 'sign' features hold NaN or infinite "
                                 f"values in {bad} frame(s)")
    return features


def samples_from_entries(entries: Any, path: Path, cache: bool = False,
                         require: tuple[str, ...] = ("gloss", "text"),
                         streams: StreamOptions | None = None) -> list[Sample]:
    """Samples for the unpickled ``entries`` of file ``path`` (validated as described above)."""
    streams = streams or StreamOptions(source=SOURCE)
    width: tuple[int, int] | None = None  # (feature width, first entry index with it)
    if not isinstance(entries, list | tuple):
        raise DatasetFormatError(f"{SOURCE}: {path} holds a {type(entries).__name__}, expected "
                                 f"a list of dicts with keys {list(KEYS)}")
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"{path}, entry {index}"
        if not isinstance(entry, dict):
            raise DatasetFormatError(f"{SOURCE}: {where} is a {type(entry).__name__}, expected "
                                     f"a dict with keys {list(KEYS)}")
        missing = [key for key in KEYS if key not in entry]
        if missing:
            raise DatasetFormatError(f"{SOURCE}: {where} lacks key(s) {missing} "
                                     f"(has {sorted(map(str, entry))})")
        name = require_str(entry["name"], SOURCE, where, "name")
        where = f"{path}, entry {index} ({name!r})"
        if name in seen:
            raise DatasetFormatError(f"{SOURCE}: {where}: name already used by entry {seen[name]}")
        seen[name] = index
        texts = {key: require_str(entry[key], SOURCE, where, key)
                 for key in ("signer", "gloss", "text")}
        shape = _shape(entry["sign"])
        if shape is None or len(shape) != 2:
            raise DatasetFormatError(f"{SOURCE}: {where}: 'sign' should be a 2-D (frames x "
                                     f"features) tensor, found shape {shape}")
        if shape[0] == 0 or shape[1] == 0:
            raise DatasetFormatError(f"{SOURCE}: {where}: zero-length video ('sign' has shape "
                                     f"{shape})")
        if width is None:
            width = (shape[1], index)
        elif shape[1] != width[0]:
            raise DatasetFormatError(f"{SOURCE}: {where}: 'sign' features are {shape[1]} wide "
                                     f"but entry {width[1]} has {width[0]}; a split's features "
                                     f"must share one width")
        loaders = derived_loaders(streams, name, shape[0])
        loaders["features"] = partial(_load_features, entry["sign"], where)
        samples.append(Sample(name=name, num_frames=shape[0], signer=texts["signer"],
                              gloss=required_field(texts["gloss"], "gloss", require, where,
                                                   SOURCE),
                              text=required_field(texts["text"], "text", require, where, SOURCE),
                              source=SOURCE, cache=cache, loaders=loaders))
    return samples


@register_source(SOURCE)
def load_signjoey(split: str, root: PathLike | None = None, *, path: PathLike | None = None,
                  trust_pickle: bool = False, keypoints_dir: str | None = None,
                  labels: PathLike | None = None, require: tuple[str, ...] = ("gloss", "text"),
                  cache: bool = False) -> Sequence[Sample]:
    """The ``split`` of a signjoey feature file (``path=``) or folder of them (``root=``)."""
    split = canonical_split(split, SOURCE)
    if path is not None:
        file = require_file(Path(path).expanduser(), SOURCE, f"{split} feature file")
    else:
        folder = require_root(root, SOURCE, "signjoey feature files such as "
                                            f"'phoenix14t.pami0.{split}' (or pass path=<file>)")
        file = find_split_file(folder, split)
    entries = load_trusted_pickle(file, SOURCE, trust_pickle)
    base = Path(root).expanduser() if root is not None else file.parent
    streams = options(SOURCE, base, split, keypoints_dir=keypoints_dir, labels=labels)
    return samples_from_entries(entries, file, cache=cache, require=require, streams=streams)
