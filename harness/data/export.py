"""Write a synthetic corpus in the PHOENIX-2014T layout (``signbench data export``).

Why: the real ``phoenix14t`` reader can then be tested end to end on files nobody had to
download, and a user can feed the synthetic corpus to external tools that expect PHOENIX.

Layout (as in the published dataset; see DESIGN.md):

* ``annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv`` — UTF-8, separator ``|``,
  header ``name|video|start|end|speaker|orth|translation``; ``video`` is ``<name>/1/*.png``
  and ``start``/``end`` are ``-1`` as in the real files; ``orth`` is the gloss sequence,
  ``translation`` the text (any ``lang``).
* ``features/fullFrame-210x260px/<split>/<name>/images%04d.png`` numbered from 1. The folder
  keeps its published name, but the images have the corpus's resolution (64×64 by default).

Writes are atomic: each sample's frames go to a hidden temporary folder renamed into place,
and each CSV is written with ``atomic_write_text`` after all its samples, so an interrupted
export never leaves a CSV pointing at missing frames.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.readers import phoenix
from harness.files import atomic_write_text

#: The corpus CSV header; the layout itself (file and folder names) is the reader's, so the
#: exporter and ``harness.data.readers.phoenix`` cannot drift apart.
PHOENIX_HEADER = "|".join(phoenix.COLUMNS)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image (Pillow, a matplotlib dependency)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def _write_frames(folder: Path, frames: np.ndarray) -> None:
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for t, frame in enumerate(frames, start=1):
        (tmp / f"images{t:04d}.png").write_bytes(encode_png(frame))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def _clean_field(value: str, what: str, name: str) -> str:
    if "|" in value or "\n" in value:
        raise ValueError(f"sample {name}: {what} contains '|' or a newline, which the PHOENIX "
                         f"CSV format cannot hold: {value!r}")
    return value


def export_phoenix14t(out: str | os.PathLike[str], *, lang: str = "de", seed: int = 0,
                      splits: Iterable[str] = ("train", "dev", "test"), size: int | None = None,
                      progress: bool = True, **corpus_kw: Any) -> dict[str, int]:
    """Export the synthetic corpus to ``out`` in PHOENIX-2014T layout.

    Args:
        out: the dataset root to create (``annotations/`` and ``features/`` go under it).
        lang, seed, corpus_kw: passed to ``SyntheticCorpus``.
        splits: which splits to write.
        size: samples per split (None: the corpus defaults).
        progress: show a tqdm bar per split.

    Returns:
        ``{split: number of samples written}``.
    """
    from tqdm.auto import tqdm

    from harness.data.synthetic import SPLITS, SyntheticCorpus

    splits = list(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"export: unknown split(s) {unknown or splits}; expected some of "
                         f"{list(SPLITS)}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"export: output path {root} exists and is not a folder")
    written: dict[str, int] = {}
    for split in splits:
        corpus = SyntheticCorpus(split, lang=lang, seed=seed, size=size, **corpus_kw)
        lines = [PHOENIX_HEADER]
        for i in tqdm(range(len(corpus)), desc=f"export {split}", disable=not progress,
                      unit="video"):
            sample = corpus[i]
            _write_frames(phoenix.frames_folder(root, split, sample.name), sample.frames)
            fields = [sample.name, f"{sample.name}/1/*.png", "-1", "-1",
                      sample.signer or "Signer01",
                      _clean_field(sample.gloss or "", "gloss", sample.name),
                      _clean_field(sample.text or "", "text", sample.name)]
            lines.append("|".join(fields))
        atomic_write_text(phoenix.corpus_path(root, split), "\n".join(lines) + "\n")
        written[split] = len(corpus)
    return written
