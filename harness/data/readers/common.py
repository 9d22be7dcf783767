"""The checks and parsing helpers every dataset reader shares, so every source reports errors
the same way: table parsing with line numbers, split names, numbered-frame folders, image
decoding, the pickle trust gate, and ``LazySamples`` (metadata eager, streams on demand).
"""

from __future__ import annotations

import gzip
import os
import pickle
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from harness.data.sample import Sample

PathLike = str | os.PathLike[str]

#: Canonical split names and the aliases every reader accepts for them.
SPLIT_ALIASES: dict[str, str] = {"train": "train", "dev": "dev", "val": "dev", "test": "test"}


class DatasetError(Exception):
    """Base class of every reader error (a file is missing or does not follow its format)."""


class DatasetMissingError(DatasetError, FileNotFoundError):
    """A root folder, annotation file or frame folder that should exist does not."""


class DatasetFormatError(DatasetError, ValueError):
    """A file exists but its content does not follow the published format."""


class UntrustedPickleError(DatasetError):
    """A pickle-based source was asked to load a file without ``trust_pickle=True``."""


# --------------------------------------------------------------------------------------------
# Roots, files and split names
# --------------------------------------------------------------------------------------------


def require_root(root: PathLike | None, source: str, layout: str) -> Path:
    """``root`` as a ``Path``; raises when it was not given or is not a folder.

    ``layout`` is a one-line description of what the folder should hold (shown in the error).
    """
    if root is None:
        raise DatasetMissingError(
            f"{source}: no dataset folder given; pass root=<folder holding {layout}>")
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise DatasetMissingError(f"{source}: dataset root {path} {what} (expected {layout})")
    return path


def require_file(path: Path, source: str, what: str) -> Path:
    """``path`` if it is a file; otherwise a ``DatasetMissingError`` saying ``what`` it is."""
    if not path.is_file():
        state = "is not a file" if path.exists() else "is missing"
        raise DatasetMissingError(f"{source}: {what} {path} {state}")
    return path


def canonical_split(split: str, source: str) -> str:
    """``train``, ``dev`` or ``test`` for ``split`` (``val`` is accepted for ``dev``)."""
    key = str(split).strip().lower()
    if key not in SPLIT_ALIASES:
        raise DatasetFormatError(
            f"{source}: unknown split {split!r}; expected one of train, dev (alias val), test")
    return SPLIT_ALIASES[key]


# --------------------------------------------------------------------------------------------
# Text tables
# --------------------------------------------------------------------------------------------


def read_lines(path: Path, source: str) -> list[tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file as ``(1-based line number, text)`` pairs.

    Lines are decoded one by one so that invalid UTF-8 is reported with its line number (and
    byte column). A leading byte-order mark and ``\\r`` line ends are removed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetMissingError(f"{source}: cannot read {path}: {exc.strerror or exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetFormatError(
                f"{source}: {path}, line {number}: not valid UTF-8 text (byte {exc.start + 1} "
                f"of the line: {raw[exc.start:exc.start + 4]!r})") from None
        text = text.rstrip("\r")
        if text.strip():
            lines.append((number, text))
    return lines


def read_table(path: Path, sep: str, columns: Sequence[str],
               source: str) -> list[tuple[int, dict[str, str]]]:
    """Rows of a header-first delimited text file as ``(line number, {column: field})``.

    The header must name exactly ``columns`` (any order; names compared after stripping
    whitespace). Fields are split on ``sep`` verbatim, with no quoting rules: neither the PHOENIX
    CSV nor the How2Sign TSV quotes fields, and How2Sign sentences contain bare ``"`` characters
    that a CSV quoting parser would mangle. Every row must have as many fields as the header.
    """
    lines = read_lines(path, source)
    if not lines:
        raise DatasetFormatError(f"{source}: {path} is empty (expected a header line "
                                 f"{sep.join(columns)!r} and one row per sample)")
    sep_name = "tab" if sep == "\t" else repr(sep)
    header_line, header_text = lines[0]
    header = [name.strip() for name in header_text.split(sep)]
    expected = list(columns)
    duplicates = sorted({name for name in header if header.count(name) > 1})
    missing = [name for name in expected if name not in header]
    extra = [name for name in header if name not in expected]
    if duplicates or missing or extra:
        problems = []
        if missing:
            problems.append(f"missing column(s) {missing}")
        if extra:
            problems.append(f"unexpected column(s) {extra}")
        if duplicates:
            problems.append(f"duplicated column(s) {duplicates}")
        raise DatasetFormatError(
            f"{source}: {path}, line {header_line} (header): {'; '.join(problems)}; expected "
            f"the {sep_name}-separated columns {expected}, found {header}")
    rows: list[tuple[int, dict[str, str]]] = []
    for number, text in lines[1:]:
        fields = text.split(sep)
        if len(fields) != len(header):
            raise DatasetFormatError(
                f"{source}: {path}, line {number}: {len(fields)} {sep_name}-separated field(s), "
                f"expected {len(header)} ({sep.join(header)})")
        rows.append((number, dict(zip(header, fields, strict=True))))
    return rows


def required_field(value: str, column: str, required: Sequence[str], where: str,
                   source: str) -> str | None:
    """``value`` stripped; empty is an error when ``column`` (``gloss`` / ``text``) is in
    ``required`` (what the consuming method needs), else ``None``."""
    value = value.strip()
    if value:
        return value
    if column in required:
        raise DatasetFormatError(
            f"{source}: {where}: empty {column} (the method needs every row's {column}; fix or "
            f"drop the row, or load with require=() when {column} is not used)")
    return None


def frame_size(path: Path, source: str) -> tuple[float, float]:
    """(width, height) of an image file from its header (no decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return float(image.size[0]), float(image.size[1])
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise DatasetFormatError(f"{source}: cannot read the size of image {path}: {exc}") \
            from None


# --------------------------------------------------------------------------------------------
# Numbered frame folders and images
# --------------------------------------------------------------------------------------------


def scan_numbered(folder: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    """Files of ``folder`` whose name fully matches ``pattern`` (group 1: the frame number),
    sorted by number. A missing folder gives ``[]``; other files are ignored. No validation."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            found.append((int(match.group(1)), folder / name))
    found.sort()
    return found


def checked_numbered(folder: Path, pattern: re.Pattern[str], first: int, what: str,
                     source: str, expected: int | None = None) -> list[Path]:
    """The numbered files of ``folder`` in order, after checking they form a complete sequence.

    Raises ``DatasetMissingError`` when the folder is missing, and ``DatasetFormatError`` when it
    holds no matching file, when the numbers do not run ``first, first+1, ...`` without gaps or
    repeats, or when their count differs from ``expected`` (the count the annotations or the
    listing promised).
    """
    if not folder.is_dir():
        raise DatasetMissingError(f"{source}: {what} folder {folder} is missing")
    entries = scan_numbered(folder, pattern)
    if not entries:
        raise DatasetFormatError(f"{source}: {what} folder {folder} holds no {what} "
                                 f"(zero frames; expected files matching {pattern.pattern})")
    for position, (number, path) in enumerate(entries):
        if number != first + position:
            wanted = first + position
            problem = (f"frame number {wanted} is missing" if number > wanted
                       else f"frame number {number} appears twice ({path.name})")
            raise DatasetFormatError(
                f"{source}: {what} folder {folder}: {problem} (expected consecutive numbers "
                f"from {first}; found {len(entries)} file(s))")
    if expected is not None and len(entries) != expected:
        raise DatasetFormatError(
            f"{source}: {what} folder {folder} holds {len(entries)} frame(s) but {expected} "
            f"were expected (annotation length or the count found when the split was listed)")
    return [path for _, path in entries]


def load_image(path: Path, source: str) -> np.ndarray:
    """One image file as (H, W, 3) uint8 RGB (Pillow; grey / palette / RGBA converted to RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetMissingError(f"{source}: frame file {path} is missing "
                                  f"(it was listed but has since disappeared)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetFormatError(f"{source}: cannot decode image {path}: {exc}") from None


def load_frames(paths: Sequence[Path], folder: Path, source: str) -> np.ndarray:
    """Decode ``paths`` into one (T, H, W, 3) uint8 array; all frames must share one size."""
    frames: list[np.ndarray] = []
    for path in paths:
        frame = load_image(path, source)
        if frames and frame.shape != frames[0].shape:
            raise DatasetFormatError(
                f"{source}: frame {path} is {frame.shape[1]}x{frame.shape[0]} (WxH) but earlier "
                f"frames of {folder} are {frames[0].shape[1]}x{frames[0].shape[0]}")
        frames.append(frame)
    if not frames:
        raise DatasetFormatError(f"{source}: frame folder {folder} holds zero frames")
    return np.stack(frames)


# --------------------------------------------------------------------------------------------
# Pickles
# --------------------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"


def load_trusted_pickle(path: Path, source: str, trust_pickle: bool) -> Any:
    """Unpickle ``path`` (gzip-compressed or plain, told apart by the gzip magic bytes).

    Unpickling can run arbitrary code embedded in the file, so it happens only when the caller
    passed ``trust_pickle=True``; otherwise the error says why and how to opt in.
    """
    if trust_pickle is not True:
        raise UntrustedPickleError(
            f"{source}: {path} is a Python pickle, and loading a pickle can run arbitrary code "
            f"embedded in the file. Only load files you obtained from a source you trust; to do "
            f"so, pass trust_pickle=True (e.g. load_dataset({source!r}, split, root=..., "
            f"trust_pickle=True); on the command line: signbench run --trust-pickle).")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(2)
            handle.seek(0)
            if magic == _GZIP_MAGIC:
                with gzip.GzipFile(fileobj=handle) as unzipped:
                    return pickle.load(unzipped)
            return pickle.load(handle)
    except FileNotFoundError:
        raise DatasetMissingError(f"{source}: {path} is missing") from None
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError,
            IndexError, TypeError, ValueError, UnicodeDecodeError) as exc:
        kind = "gzip-compressed pickle" if magic == _GZIP_MAGIC else "pickle"
        raise DatasetFormatError(
            f"{source}: cannot read {path} as a {kind}: {type(exc).__name__}: {exc}") from None


def require_str(value: Any, source: str, where: str, key: str) -> str:
    """``value`` if it is a ``str``; bytes are decoded as UTF-8 (error naming ``where``/``key``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetFormatError(
                f"{source}: {where}: field {key!r} is not valid UTF-8 text") from None
    raise DatasetFormatError(
        f"{source}: {where}: field {key!r} should be text, found {type(value).__name__}")


# --------------------------------------------------------------------------------------------
# A lazily built sequence of samples
# --------------------------------------------------------------------------------------------


class LazySamples(Sequence[Sample]):
    """A ``Sequence[Sample]`` that builds sample ``i`` from ``records[i]`` when it is indexed.

    Building a sample may look at the file system (e.g. count the frame files of its folder) but
    never decodes a stream; readers use this so listing a split costs one annotation parse.
    """

    def __init__(self, records: Sequence[Any], build: Callable[[Any], Sample], name: str):
        self._records = list(records)
        self._build = build
        self._name = name

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [self._build(record) for record in self._records[index]]
        return self._build(self._records[index])

    def __iter__(self) -> Iterator[Sample]:
        for record in self._records:
            yield self._build(record)

    def __repr__(self) -> str:
        return f"<{self._name}: {len(self)} samples>"
