"""One ``Sample`` type for every data source (synthetic corpus, PHOENIX-2014T, CSL-Daily, ...).

A sample carries cheap metadata eagerly (name, signer, gloss, text, frame count) and its heavy
streams lazily: each of ``frames``, ``keypoints``, ``poses``, ``lips``, ``features`` and
``frame_labels`` is produced by a zero-argument loader the first time it is read, so a dataset of
thousands of videos can be listed without decoding any of them. A loader that fails raises (a
damaged sample never silently becomes zeros); fields a source does not have are ``None``.

Array conventions (numpy, so readers need not import torch):

* ``frames``        (T, H, W, 3) uint8 RGB
* ``keypoints``     (T, J, 3) float32: x, y (normalised to [0, 1] image coordinates), confidence
* ``poses``         dict of named pose formats -> (T, D) float32 (SignX's five formats)
* ``lips``          (T, h, w, 3) uint8 mouth crops
* ``features``      (T, F) float32 precomputed visual features (signjoey / SLRT files)
* ``frame_labels``  (T,) int8 with ``FRAME_REST``, ``FRAME_SIGN``, ``FRAME_FINGERSPELLING``
* ``fingerspelling`` list of ``FingerspellingSpan`` (frame range and the spelled letters)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FRAME_REST, FRAME_SIGN, FRAME_FINGERSPELLING = 0, 1, 2
FRAME_LABEL_NAMES: tuple[str, ...] = ("rest", "sign", "fingerspelling")

#: The lazily loaded stream fields of a Sample.
STREAMS: tuple[str, ...] = ("frames", "keypoints", "poses", "lips", "features", "frame_labels")


@dataclass(frozen=True)
class FingerspellingSpan:
    """Frames ``[start, end)`` spell ``letters`` (e.g. "ANNA")."""

    start: int
    end: int
    letters: str


@dataclass(eq=False)
class Sample:
    """A sign-language video with whatever streams and annotations its source provides.

    Build one with ``Sample(name=..., num_frames=..., loaders={"frames": fn, ...})``; reading
    ``sample.frames`` calls ``fn()`` once and caches the result when ``cache=True``.
    """

    name: str
    num_frames: int
    signer: str | None = None
    gloss: str | None = None
    text: str | None = None
    fingerspelling: list[FingerspellingSpan] | None = None
    source: str | None = None
    loaders: dict[str, Callable[[], Any]] = field(default_factory=dict, repr=False)
    cache: bool = False
    _cached: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.loaders) - set(STREAMS)
        if unknown:
            raise ValueError(f"sample {self.name!r}: unknown stream(s) {sorted(unknown)}; "
                             f"expected a subset of {STREAMS}")
        if self.num_frames < 0:
            raise ValueError(f"sample {self.name!r}: negative frame count {self.num_frames}")

    def has(self, stream: str) -> bool:
        """Whether the source provides ``stream`` (without loading it)."""
        return stream in self.loaders

    def load(self, stream: str) -> Any:
        """The stream's value (``None`` when the source lacks it)."""
        if stream not in STREAMS:
            raise KeyError(f"unknown stream {stream!r}; expected one of {STREAMS}")
        if stream in self._cached:
            return self._cached[stream]
        loader = self.loaders.get(stream)
        value = None if loader is None else loader()
        if self.cache:
            self._cached[stream] = value
        return value

    @property
    def frames(self) -> np.ndarray | None:
        return self.load("frames")

    @property
    def keypoints(self) -> np.ndarray | None:
        return self.load("keypoints")

    @property
    def poses(self) -> dict[str, np.ndarray] | None:
        return self.load("poses")

    @property
    def lips(self) -> np.ndarray | None:
        return self.load("lips")

    @property
    def features(self) -> np.ndarray | None:
        return self.load("features")

    @property
    def frame_labels(self) -> np.ndarray | None:
        return self.load("frame_labels")
