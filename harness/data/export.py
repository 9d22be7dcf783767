"""Write the synthetic corpus in a published dataset layout (``signbench data export``).

Why: the real readers can then be tested end to end on files nobody had to download, and a user
can feed the synthetic corpus to external tools that expect those layouts. Formats:

* ``phoenix14t`` — ``annotations/manual/PHOENIX-2014-T.<split>.corpus.csv`` (``|``-separated,
  ``video`` = ``<name>/1/*.png``, ``start``/``end`` = ``-1`` as in the real files) and
  ``features/fullFrame-210x260px/<split>/<name>/images%04d.png`` from 1 (the corpus's resolution).
* ``csl-daily`` — ``sentence_label/csl2020ct_v2.pkl`` (``info``: name, length, label_gloss,
  label_char, label_word), ``sentence_label/split_1.txt`` and
  ``sentence_frames-512x512/<name>/%06d.jpg`` from 0.
* ``how2sign`` — ``how2sign_realigned_{train,val,test}.csv`` (tab-separated) and the OpenPose
  JSON folders ``openpose_output/json/<name>/`` in 1280×720 pixels (no RGB, as the reader).
* ``pose`` — ``index.tsv`` (name, split, text, gloss, signer) and ``<name>.pose`` files written
  with pose-format in the OpenPose or MediaPipe Holistic layout (``pose_layout``).

PHOENIX and CSL-Daily also get a keypoints folder of OpenPose JSON in frame pixels
(``keypoints/<split>/<name>/`` and ``keypoints/<name>/``: what their readers look for), and every
format a ``frame_labels.tsv`` with the corpus's true rest / sign / fingerspelling labels. Writes
are atomic: per-video folders go to a hidden temporary folder renamed into place, index files are
written last with ``atomic_write_text``.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.keypoints import HOLISTIC, OPENPOSE
from harness.data.readers import csl_daily, how2sign, phoenix
from harness.data.readers.openpose import DEFAULT_IMAGE_SIZE, write_openpose_folder
from harness.data.readers.posefile import write_pose_file
from harness.data.readers.streams import LABEL_COLUMNS
from harness.data.sample import FRAME_LABEL_NAMES, Sample
from harness.files import atomic_write_bytes, atomic_write_text

#: The corpus CSV header; the layout itself (file and folder names) is the reader's, so the
#: exporter and ``harness.data.readers.phoenix`` cannot drift apart.
PHOENIX_HEADER = "|".join(phoenix.COLUMNS)
EXPORT_FORMATS: tuple[str, ...] = ("phoenix14t", "csl-daily", "how2sign", "pose")
POSE_LAYOUTS: tuple[str, ...] = (OPENPOSE, HOLISTIC)
LABELS_FILE = "frame_labels.tsv"


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image (Pillow, a matplotlib dependency)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def encode_jpg(image: np.ndarray) -> bytes:
    """JPEG bytes (quality 95) of an (H, W, 3) uint8 image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write_folder(folder: Path, fill: Callable[[Path], None]) -> None:
    """Run ``fill(tmp)`` on a fresh hidden folder, then rename it to ``folder``."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    fill(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def _write_images(folder: Path, frames: np.ndarray, name: str, first: int,
                  encode: Callable[[np.ndarray], bytes]) -> None:
    def fill(tmp: Path) -> None:
        for t, frame in enumerate(frames, start=first):
            (tmp / name.format(t)).write_bytes(encode(frame))

    _write_folder(folder, fill)


def _write_keypoints(folder: Path, sample: Sample, size: tuple[float, float]) -> None:
    _write_folder(folder, lambda tmp: write_openpose_folder(tmp, sample.name, sample.keypoints,
                                                            size))


def _clean_field(value: str, what: str, name: str, seps: str = "|\t") -> str:
    if any(c in value for c in seps + "\n"):
        raise ValueError(f"sample {name}: {what} contains a separator or a newline, which the "
                         f"exported format cannot hold: {value!r}")
    return value


def _frame_size(sample: Sample) -> tuple[float, float]:
    h, w = sample.frames.shape[1:3]
    return float(w), float(h)


class _Writer:
    """Per-format writer: ``video(split, sample)`` per sample, ``finish(root)`` at the end."""

    def __init__(self, root: Path, **options: Any) -> None:
        self.root = root
        self.options = options
        self.rows: dict[str, list[Sample]] = {}

    def add(self, split: str, sample: Sample) -> None:
        self.video(split, sample)
        self.rows.setdefault(split, []).append(
            Sample(name=sample.name, num_frames=sample.num_frames, signer=sample.signer,
                   gloss=sample.gloss, text=sample.text))

    def video(self, split: str, sample: Sample) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class _Phoenix(_Writer):
    def video(self, split: str, sample: Sample) -> None:
        _write_images(phoenix.frames_folder(self.root, split, sample.name), sample.frames,
                      "images{:04d}.png", phoenix.FIRST_FRAME, encode_png)
        folder = self.root / phoenix.KEYPOINTS_DIR.format(split=split) / sample.name
        _write_keypoints(folder, sample, _frame_size(sample))

    def finish(self) -> None:
        for split, samples in self.rows.items():
            lines = [PHOENIX_HEADER] + [
                "|".join([s.name, f"{s.name}/1/*.png", "-1", "-1", s.signer or "Signer01",
                          _clean_field(s.gloss or "", "gloss", s.name),
                          _clean_field(s.text or "", "text", s.name)]) for s in samples]
            atomic_write_text(phoenix.corpus_path(self.root, split), "\n".join(lines) + "\n")


class _CslDaily(_Writer):
    def video(self, split: str, sample: Sample) -> None:
        _write_images(self.root / csl_daily.FRAMES_DIR / sample.name, sample.frames,
                      "{:06d}.jpg", csl_daily.FIRST_FRAME, encode_jpg)
        _write_keypoints(self.root / csl_daily.KEYPOINTS_DIR / sample.name, sample,
                         _frame_size(sample))

    def finish(self) -> None:
        info, lines = [], ["name|split"]
        for split, samples in self.rows.items():
            for s in samples:
                info.append({"name": s.name, "length": s.num_frames,
                             "label_gloss": (s.gloss or "").split(),
                             "label_char": list(s.text or ""),
                             "label_word": (s.text or "").split()})
                lines.append(f"{s.name}|{split}")
        atomic_write_bytes(self.root / csl_daily.LABEL_FILE, pickle.dumps({"info": info}))
        atomic_write_text(self.root / csl_daily.SPLIT_FILE, "\n".join(lines) + "\n")


class _How2Sign(_Writer):
    FPS = 25.0

    def video(self, split: str, sample: Sample) -> None:
        folder = self.root / how2sign.DEFAULT_KEYPOINTS_DIR / sample.name
        _write_keypoints(folder, sample, DEFAULT_IMAGE_SIZE)

    def finish(self) -> None:
        for split, samples in self.rows.items():
            lines = ["\t".join(how2sign.COLUMNS)]
            for s in samples:
                video = s.name.rsplit("_", 1)[0]
                lines.append("\t".join([video, video, s.name, s.name, "0.0",
                                        f"{s.num_frames / self.FPS:.2f}",
                                        _clean_field(s.text or "", "text", s.name)]))
            path = self.root / how2sign.ANNOTATION_FILE.format(split=how2sign.FILE_SPLIT[split])
            atomic_write_text(path, "\n".join(lines) + "\n")


class _Pose(_Writer):
    def video(self, split: str, sample: Sample) -> None:
        w, h = _frame_size(sample)
        write_pose_file(self.root / f"{sample.name}.pose", sample.keypoints,
                        self.options["pose_layout"], size=(int(w), int(h)))

    def finish(self) -> None:
        lines = ["name\tsplit\ttext\tgloss\tsigner"]
        for split, samples in self.rows.items():
            lines += ["\t".join([s.name, split, _clean_field(s.text or "", "text", s.name),
                                 _clean_field(s.gloss or "", "gloss", s.name),
                                 s.signer or ""]) for s in samples]
        atomic_write_text(self.root / "index.tsv", "\n".join(lines) + "\n")


WRITERS: dict[str, type[_Writer]] = {"phoenix14t": _Phoenix, "csl-daily": _CslDaily,
                                     "how2sign": _How2Sign, "pose": _Pose}


def export_dataset(fmt: str, out: str | os.PathLike[str], *, lang: str = "de", seed: int = 0,
                   splits: Iterable[str] = ("train", "dev", "test"), size: int | None = None,
                   progress: bool = True, pose_layout: str = OPENPOSE,
                   **corpus_kw: Any) -> dict[str, int]:
    """Export the synthetic corpus to ``out`` in layout ``fmt`` (one of :data:`EXPORT_FORMATS`).

    ``lang``, ``seed``, ``corpus_kw`` go to ``SyntheticCorpus``; ``size``: samples per split
    (None: the corpus defaults); ``pose_layout``: the ``.pose`` layout of ``fmt="pose"``.
    Returns ``{split: number of samples written}``.
    """
    from tqdm.auto import tqdm

    from harness.data.synthetic import SPLITS, SyntheticCorpus

    if fmt not in WRITERS:
        raise ValueError(f"export: unknown format {fmt!r}; expected one of {EXPORT_FORMATS}")
    if pose_layout not in POSE_LAYOUTS:
        raise ValueError(f"export: unknown pose layout {pose_layout!r}; expected one of "
                         f"{POSE_LAYOUTS}")
    splits = list(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"export: unknown split(s) {unknown or splits}; expected some of "
                         f"{list(SPLITS)}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"export: output path {root} exists and is not a folder")
    writer = WRITERS[fmt](root, pose_layout=pose_layout)
    labels = ["\t".join(LABEL_COLUMNS)]
    written: dict[str, int] = {}
    for split in splits:
        corpus = SyntheticCorpus(split, lang=lang, seed=seed, size=size, **corpus_kw)
        for i in tqdm(range(len(corpus)), desc=f"export {fmt} {split}", disable=not progress,
                      unit="video"):
            sample = corpus[i]
            writer.add(split, sample)
            labels.append(f"{sample.name}\t"
                          + " ".join(FRAME_LABEL_NAMES[v] for v in sample.frame_labels))
        written[split] = len(corpus)
    writer.finish()
    atomic_write_text(root / LABELS_FILE, "\n".join(labels) + "\n")
    return written


def export_phoenix14t(out: str | os.PathLike[str], **kw: Any) -> dict[str, int]:
    """``export_dataset("phoenix14t", out, **kw)``."""
    return export_dataset("phoenix14t", out, **kw)
