"""``SyntheticCorpus``: the embedded, learnable, multimodal sign corpus (source ``synthetic``).

``load_dataset("synthetic", split, lang="de", seed=0, ...)`` returns a lazy ``Sequence[Sample]``.
Nothing is materialised: sample ``i`` of a split is generated on demand from generators seeded
by ``[seed, split_id, i, purpose]`` (never the global RNG), so the same index always gives the
same sample, in any order, in any process. Per purpose: 0 sentence, 1 timeline, 2 keypoint
noise, 3 corruption placement, 4 pose-format noise, 5 corruption values, 6 signer.

Splits: ``train`` / ``dev`` / ``test`` (ids 0, 1, 2). A gloss sequence belongs to exactly one
split, by a hash of the sequence (80% / 10% / 10% of the combination space); sentences are drawn
until one falls in the requested split, so dev and test sentences never occur in train.

Knobs (defaults tuned so tiny models trained on CPU for minutes reach meaningful but imperfect
scores):

* ``size`` — samples per split (default train 2000, dev 200, test 200). Videos are ~30–230
  frames (mean ~100) at 64×64; one takes ~20–40 ms to generate with all streams.
* ``lang`` — ``de`` (PHOENIX-like German), ``en`` (How2Sign-like, fingerspelled city names),
  ``zh`` (CSL-Daily-like Chinese, no spaces).
* ``resolution`` — frame side in pixels (64; 224 for paper-size runs); mouth crops are
  ``resolution // 4`` square.
* ``noise`` — keypoint observation noise std in image units (0.005 ≈ 0.3 px at 64×64).
* ``corruption_rate`` — fraction of frames in corrupted segments, half keypoint, half RGB
  (0.25; 0 disables corruption).
* ``vocab_size`` — approximate gloss vocabulary size (None: the full lexicon of 92 glosses).
* ``num_signers`` — distinct signers (9, like PHOENIX-2014T), shared by all splits.
* ``pose_noise`` — multiplier of the pose formats' noise (1.0).

Extras for tests and analysis: ``hidden_state(i)``, ``sample_corruption(i)``,
``streams(i, corrupt=False)`` (the clean rendering), ``sentence(i)``, ``index_of(name)``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, overload

import numpy as np

from harness.data import register_source
from harness.data.keypoints import to_coco_wholebody
from harness.data.sample import FRAME_FINGERSPELLING, FingerspellingSpan, Sample
from harness.data.synthetic.corruption import (
    CorruptionSegment,
    corrupt_frames,
    corrupt_keypoints,
    sample_segments,
)
from harness.data.synthetic.language import (
    FINGERSPELL_PREFIX,
    LANGS,
    Sentence,
    restrict,
    sample_sentence,
    vocabulary,
)
from harness.data.synthetic.poses import project_poses
from harness.data.synthetic.render import lips_size, render_frames, render_lips
from harness.data.synthetic.state import (
    HiddenState,
    build_state,
    canonical_joints,
    clean_keypoints,
    make_signer,
)

SPLITS: dict[str, int] = {"train": 0, "dev": 1, "test": 2}
DEFAULT_SIZES: dict[str, int] = {"train": 2000, "dev": 200, "test": 200}
STREAM_NAMES: tuple[str, ...] = ("frames", "keypoints", "keypoints_coco", "poses", "lips",
                                 "frame_labels")
_BUCKETS = 10  # hash buckets: 0–7 train, 8 dev, 9 test
_MAX_DRAWS = 10_000


def split_of(glosses: Sequence[str]) -> str:
    """The split a gloss sequence belongs to (a hash of the sequence; seed-independent)."""
    digest = hashlib.blake2b(" ".join(glosses).encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "little") % _BUCKETS
    return "train" if bucket < 8 else ("dev" if bucket == 8 else "test")


@dataclass
class _Item:
    """Everything generated for one index; streams computed on first use."""

    corpus: SyntheticCorpus
    index: int
    sentence: Sentence
    state: HiddenState

    def rng(self, purpose: int) -> np.random.Generator:
        c = self.corpus
        return np.random.default_rng([c.seed, SPLITS[c.split], self.index, purpose])

    @cached_property
    def joints(self) -> np.ndarray:  # (T, 75, 2) noiseless image coordinates
        return self.state.signer.to_image(canonical_joints(self.state))

    @cached_property
    def segments(self) -> list[CorruptionSegment]:
        return sample_segments(self.state.num_frames, self.corpus.corruption_rate, self.rng(3))

    @cached_property
    def keypoints_clean(self) -> np.ndarray:
        return clean_keypoints(self.state, self.rng(2), self.corpus.noise)

    @cached_property
    def keypoints(self) -> np.ndarray:
        return corrupt_keypoints(self.keypoints_clean, self.segments, self.rng(5))

    def poses(self, corrupt: bool) -> dict[str, np.ndarray]:
        kp = self.keypoints if corrupt else self.keypoints_clean
        return project_poses(kp, self.rng(4), self.corpus.pose_noise)

    @cached_property
    def frames_clean(self) -> np.ndarray:
        return render_frames(self.joints, self.state, self.corpus.resolution)

    @cached_property
    def lips_clean(self) -> np.ndarray:
        return render_lips(self.state, lips_size(self.corpus.resolution))

    @cached_property
    def visual(self) -> tuple[np.ndarray, np.ndarray]:
        return corrupt_frames(self.frames_clean, self.lips_clean, self.joints, self.segments)


class SyntheticCorpus(Sequence[Sample]):
    """One split of the synthetic corpus (see the module docstring for every knob)."""

    def __init__(self, split: str = "train", root: Any = None, *, lang: str = "de", seed: int = 0,
                 size: int | None = None, resolution: int = 64, noise: float = 0.005,
                 corruption_rate: float = 0.25, vocab_size: int | None = None,
                 num_signers: int = 9, pose_noise: float = 1.0, cache_items: int = 8) -> None:
        del root  # generated, not read: accepted for the load_dataset signature
        if split not in SPLITS:
            raise ValueError(f"synthetic corpus: unknown split {split!r}; expected one of "
                             f"{list(SPLITS)}")
        if lang not in LANGS:
            raise ValueError(f"synthetic corpus: unknown lang {lang!r}; expected one of {LANGS}")
        size = DEFAULT_SIZES[split] if size is None else size
        checks = [(size >= 0, f"size must be >= 0, got {size}"),
                  (resolution >= 16, f"resolution must be >= 16 pixels, got {resolution}"),
                  (noise >= 0, f"noise must be >= 0, got {noise}"),
                  (0 <= corruption_rate <= 1,
                   f"corruption_rate must be in [0, 1], got {corruption_rate}"),
                  (num_signers >= 1, f"num_signers must be >= 1, got {num_signers}"),
                  (pose_noise >= 0, f"pose_noise must be >= 0, got {pose_noise}")]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"synthetic corpus: {message}")
        self.split, self.lang, self.seed, self.size = split, lang, int(seed), int(size)
        self.resolution, self.noise, self.corruption_rate = int(resolution), noise, corruption_rate
        self.vocab_size, self.num_signers, self.pose_noise = vocab_size, num_signers, pose_noise
        self._cats = restrict(vocab_size)
        self._items: OrderedDict[int, _Item] = OrderedDict()
        self._cache_items = max(1, cache_items)

    def __repr__(self) -> str:
        return (f"SyntheticCorpus(split={self.split!r}, lang={self.lang!r}, seed={self.seed}, "
                f"size={self.size}, resolution={self.resolution})")

    def __len__(self) -> int:
        return self.size

    @property
    def vocabulary(self) -> list[str]:
        """Lexicon glosses this corpus can use (fingerspelled ``fs-NAME`` tokens excluded)."""
        return vocabulary(self._cats)

    def _check(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"synthetic corpus indices are integers, got {type(index).__name__}")
        i = int(index) + (self.size if index < 0 else 0)
        if not 0 <= i < self.size:
            raise IndexError(f"index {index} out of range for the {self.split} split of size "
                             f"{self.size}")
        return i

    def _item(self, index: int) -> _Item:
        i = self._check(index)
        item = self._items.get(i)
        if item is not None:
            self._items.move_to_end(i)
            return item
        base = [self.seed, SPLITS[self.split], i]
        rng = np.random.default_rng([*base, 0])
        for _ in range(_MAX_DRAWS):
            sentence = sample_sentence(rng, self.lang, self._cats)
            if split_of(sentence.glosses) == self.split:
                break
        else:  # pragma: no cover - only with a degenerate vocabulary
            raise ValueError(f"synthetic corpus: no {self.split} sentence found in {_MAX_DRAWS} "
                             "draws; increase vocab_size")
        signer_id = int(np.random.default_rng([*base, 6]).integers(self.num_signers))
        signer = make_signer(self.seed, signer_id)
        state = build_state(sentence, signer, np.random.default_rng([*base, 1]))
        item = _Item(self, i, sentence, state)
        self._items[i] = item
        if len(self._items) > self._cache_items:
            self._items.popitem(last=False)
        return item

    # -------------------------------------------------------------------------- public extras

    def name_of(self, index: int) -> str:
        return f"synthetic_{self.split}_{self._check(index):05d}"

    def index_of(self, name: str) -> int:
        """The index of sample ``name`` (``synthetic_<split>_<index>``) in this split."""
        prefix = f"synthetic_{self.split}_"
        tail = name[len(prefix):] if name.startswith(prefix) else ""
        if not tail.isdigit():
            raise ValueError(f"{name!r} is not a sample name of the synthetic {self.split} split "
                             f"(expected {prefix}NNNNN)")
        return self._check(int(tail))

    def sentence(self, index: int) -> Sentence:
        return self._item(index).sentence

    def hidden_state(self, index: int) -> HiddenState:
        return self._item(index).state

    def sample_corruption(self, index: int) -> list[CorruptionSegment]:
        """The corrupted segments of sample ``index`` (empty with ``corruption_rate=0``)."""
        return list(self._item(index).segments)

    def streams(self, index: int, corrupt: bool = True,
                include: Sequence[str] | None = None) -> dict[str, Any]:
        """Streams of sample ``index`` (``include``: a subset of ``STREAM_NAMES``; default all).

        ``corrupt=False`` gives the clean rendering of the same hidden state (same noise), so
        comparing the two shows exactly what the corruption changed."""
        names = STREAM_NAMES if include is None else tuple(include)
        unknown = set(names) - set(STREAM_NAMES)
        if unknown:
            raise ValueError(f"unknown synthetic stream(s) {sorted(unknown)}; expected a subset "
                             f"of {STREAM_NAMES}")
        item = self._item(index)
        out: dict[str, Any] = {}
        for name in names:
            if name in ("frames", "lips"):
                visual = item.visual if corrupt else (item.frames_clean, item.lips_clean)
                out[name] = visual[0 if name == "frames" else 1].copy()
            elif name in ("keypoints", "keypoints_coco"):
                kp = item.keypoints if corrupt else item.keypoints_clean
                out[name] = kp.copy() if name == "keypoints" else to_coco_wholebody(kp)
            elif name == "poses":
                out[name] = item.poses(corrupt)
            else:
                out[name] = item.state.labels.copy()
        return out

    # -------------------------------------------------------------------------- Sequence API

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        i = self._check(index)
        item = self._item(i)
        spans = [FingerspellingSpan(s.start, s.end, s.token[len(FINGERSPELL_PREFIX):])
                 for s in item.state.segments if s.label == FRAME_FINGERSPELLING]

        def loader(stream: str):
            return lambda: self.streams(i, corrupt=True, include=(stream,))[stream]

        return Sample(
            name=self.name_of(i), num_frames=item.state.num_frames, signer=item.state.signer.name,
            gloss=item.sentence.gloss, text=item.sentence.text, fingerspelling=spans,
            source="synthetic",
            loaders={s: loader(s) for s in ("frames", "keypoints", "poses", "lips",
                                            "frame_labels")},
        )


@register_source("synthetic")
def load_synthetic(split: str, root: Any = None, **kw: Any) -> SyntheticCorpus:
    """``load_dataset("synthetic", split, lang=..., seed=..., size=..., ...)``."""
    return SyntheticCorpus(split, root, **kw)
