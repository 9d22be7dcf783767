"""Batching: collate ``Sample``s into padded tensors, bucket by length, build DataLoaders.

* :func:`collate` ``(samples, streams=...)`` pads every requested stream along time (axis 0) to
  the batch's longest sample *of that stream* and returns a :class:`Batch`: ``inputs[stream]``
  (B, T_stream, ...), ``masks[stream]`` (B, T_stream) bool (True = valid step),
  ``stream_lengths[stream]``, ``lengths`` (``num_frames``), and, when a ``TextTokenizer`` /
  ``GlossVocab`` is given, ``text_ids``/``text_mask``/``text_lengths`` and
  ``gloss_ids``/``gloss_lengths`` (CTC layout). Padding is 0, except ``frame_labels``
  (:data:`LABEL_PAD` = -100); ``frames`` / ``lips`` stay uint8 unless ``normalize_frames=True``
  (float32 in [0, 1]). A missing stream, text or gloss raises :class:`CollateError`.
* :class:`BucketBatchSampler` groups samples of similar length: permuted per epoch with a
  generator seeded by ``(seed, epoch)`` (call ``set_epoch``), sorted by length within chunks of
  ``batch_size * bucket_size_multiplier``, batch order shuffled; ``shuffle=False`` gives a fixed
  order. Every index appears once per epoch; with ``num_replicas`` / ``rank`` the shares are
  padded (or, ``drop_last``, cut) to equal size as in ``DistributedSampler``.
* :func:`make_loader` wires sampler + collate into a ``DataLoader`` (call
  ``loader.batch_sampler.set_epoch(epoch)`` each epoch); with workers it uses ``fork`` when the
  dataset cannot be pickled, or raises a clear error where ``fork`` is unavailable.

Design notes: docs/components.md (section "harness.data.batching").
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from harness.data.sample import STREAMS, Sample

#: Padding value of ``frame_labels`` (``torch.nn.CrossEntropyLoss`` ``ignore_index``).
LABEL_PAD = -100
_VIDEO_STREAMS = frozenset({"frames", "lips"})
DEFAULT_STREAMS: tuple[str, ...] = ("keypoints",)


class CollateError(ValueError):
    """A sample cannot be batched (the message names the sample and the stream)."""


def _move(value: Any, device: torch.device | str, non_blocking: bool) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, dict):
        return {k: _move(v, device, non_blocking) for k, v in value.items()}
    return value


def _pin(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.pin_memory()
    if isinstance(value, dict):
        return {k: _pin(v) for k, v in value.items()}
    return value


@dataclass
class Batch:
    """A padded batch; every field's shape and meaning: docs/components.md (batching)."""

    names: list[str]
    lengths: torch.Tensor
    inputs: dict[str, Any] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    stream_lengths: dict[str, torch.Tensor] = field(default_factory=dict)
    signers: list[str | None] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    glosses: list[str | None] = field(default_factory=list)
    text_ids: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None
    text_lengths: torch.Tensor | None = None
    gloss_ids: torch.Tensor | None = None
    gloss_lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, stream: str) -> Any:
        """``batch["keypoints"]`` is ``batch.inputs["keypoints"]``."""
        return self.inputs[stream]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device`` (lists of strings are shared)."""
        return Batch(**{f.name: _move(getattr(self, f.name), device, non_blocking)
                        for f in fields(self)})

    def pin_memory(self) -> Batch:
        """Called by ``DataLoader(pin_memory=True)``."""
        return Batch(**{f.name: _pin(getattr(self, f.name)) for f in fields(self)})


def _as_array(value: Any, sample: Sample, stream: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise CollateError(f"sample {sample.name!r}: stream {stream!r} is "
                           f"{type(value).__name__}, expected a numpy array")
    if value.ndim < 1:
        raise CollateError(f"sample {sample.name!r}: stream {stream!r} is a scalar, "
                           f"expected time along axis 0")
    return value


def _pad_time(arrays: list[np.ndarray], names: list[str], stream: str, pad_value: float,
              dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T_i, ...) arrays into (B, T_max, ...) and return it with (B,) lengths."""
    trailing = arrays[0].shape[1:]
    for a, n in zip(arrays, names, strict=True):
        if a.shape[1:] != trailing:
            raise CollateError(f"sample {n!r}: stream {stream!r} has shape {a.shape}, but "
                               f"sample {names[0]!r} has per-step shape {trailing}; only the "
                               f"time axis may differ within a batch")
    lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.int64)
    t_max = int(lengths.max()) if len(arrays) else 0
    out = torch.full((len(arrays), t_max, *trailing), pad_value, dtype=dtype)
    for i, a in enumerate(arrays):
        if a.shape[0]:
            out[i, : a.shape[0]] = torch.from_numpy(np.ascontiguousarray(a)).to(dtype)
    return out, lengths


def _mask(lengths: torch.Tensor, t_max: int) -> torch.Tensor:
    return torch.arange(t_max)[None, :] < lengths[:, None]


def _dtype_for(stream: str, sample_dtype: np.dtype, normalize_frames: bool) -> torch.dtype:
    if stream == "frame_labels":
        return torch.int64
    if stream in _VIDEO_STREAMS:
        return torch.float32 if normalize_frames else torch.uint8
    if np.issubdtype(sample_dtype, np.floating):
        return torch.float32
    return torch.from_numpy(np.zeros(0, dtype=sample_dtype)).dtype


def _load(sample: Sample, stream: str, requested: Sequence[str]) -> Any:
    if stream not in STREAMS:
        raise CollateError(f"unknown stream {stream!r}; expected one of {STREAMS}")
    value = sample.load(stream) if sample.has(stream) else None
    if value is None:
        raise CollateError(f"sample {sample.name!r} has no {stream!r} stream (requested "
                           f"streams: {tuple(requested)}; it provides "
                           f"{sorted(sample.loaders)})")
    return value


def _pad_ids(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    out = torch.full((len(seqs), int(lengths.max()) if seqs else 0), pad, dtype=torch.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.int64)
    return out, lengths


def collate(samples: Sequence[Sample], streams: Sequence[str] = DEFAULT_STREAMS,
            text_tokenizer: Any = None, gloss_vocab: Any = None,
            normalize_frames: bool = False) -> Batch:
    """Pad the requested ``streams`` of ``samples`` into a :class:`Batch` (see module doc and
    docs/components.md).

    ``text_tokenizer``: a ``harness.text.TextTokenizer`` (anything with ``encode(text)`` and
    ``pad_id``); ``gloss_vocab``: a ``harness.text.GlossVocab`` (``encode(gloss)``, ``pad_id``).
    """
    if not samples:
        raise CollateError("cannot collate an empty list of samples")
    if isinstance(streams, str):
        streams = (streams,)
    names = [s.name for s in samples]
    batch = Batch(names=names,
                  lengths=torch.tensor([s.num_frames for s in samples], dtype=torch.int64),
                  signers=[s.signer for s in samples], texts=[s.text for s in samples],
                  glosses=[s.gloss for s in samples])
    for stream in dict.fromkeys(streams):  # de-duplicated, order kept
        values = [_load(s, stream, streams) for s in samples]
        if stream == "poses":
            _collate_poses(batch, samples, values, normalize_frames)
            continue
        arrays = [_as_array(v, s, stream) for v, s in zip(values, samples, strict=True)]
        dtype = _dtype_for(stream, arrays[0].dtype, normalize_frames)
        pad = LABEL_PAD if stream == "frame_labels" else 0
        padded, lengths = _pad_time(arrays, names, stream, pad, dtype)
        if stream in _VIDEO_STREAMS and normalize_frames:
            padded = padded / 255.0
        batch.inputs[stream] = padded
        batch.stream_lengths[stream] = lengths
        batch.masks[stream] = _mask(lengths, padded.shape[1])
    if text_tokenizer is not None:
        seqs = []
        for s in samples:
            if s.text is None:
                raise CollateError(f"sample {s.name!r} has no text, but a text tokenizer "
                                   f"was given")
            seqs.append(text_tokenizer.encode(s.text))
        if text_tokenizer.pad_id is None:
            raise CollateError("the text tokenizer has no padding token (pad_id is None)")
        batch.text_ids, batch.text_lengths = _pad_ids(seqs, text_tokenizer.pad_id)
        batch.text_mask = _mask(batch.text_lengths, batch.text_ids.shape[1])
    if gloss_vocab is not None:
        seqs = []
        for s in samples:
            if s.gloss is None:
                raise CollateError(f"sample {s.name!r} has no gloss, but a gloss vocabulary "
                                   f"was given")
            seqs.append(gloss_vocab.encode(s.gloss))
        batch.gloss_ids, batch.gloss_lengths = _pad_ids(seqs, gloss_vocab.pad_id)
    return batch


def _collate_poses(batch: Batch, samples: Sequence[Sample], values: list[Any],
                   normalize_frames: bool) -> None:
    formats = None
    per_format: dict[str, list[np.ndarray]] = {}
    lengths = []
    for s, v in zip(samples, values, strict=True):
        if not isinstance(v, dict) or not v:
            raise CollateError(f"sample {s.name!r}: stream 'poses' must be a non-empty dict "
                               f"of format -> (T, D) arrays, got {type(v).__name__}")
        if formats is None:
            formats = sorted(v)
        elif sorted(v) != formats:
            raise CollateError(f"sample {s.name!r}: pose formats {sorted(v)} differ from "
                               f"{formats} of sample {samples[0].name!r}")
        ts = set()
        for k in formats:
            a = _as_array(v[k], s, f"poses/{k}")
            per_format.setdefault(k, []).append(a)
            ts.add(a.shape[0])
        if len(ts) != 1:
            raise CollateError(f"sample {s.name!r}: pose formats have different lengths "
                               f"{sorted(ts)}; they must share the time axis")
        lengths.append(ts.pop())
    names = [s.name for s in samples]
    out = {}
    for k in formats or []:
        arrays = per_format[k]
        dtype = _dtype_for("poses", arrays[0].dtype, normalize_frames)
        out[k], _ = _pad_time(arrays, names, f"poses/{k}", 0, dtype)
    lens = torch.tensor(lengths, dtype=torch.int64)
    batch.inputs["poses"] = out
    batch.stream_lengths["poses"] = lens
    batch.masks["poses"] = _mask(lens, int(lens.max()))


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Length-bucketed, seeded, epoch-aware batch sampler (module docstring, docs/components.md)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True,
                 seed: int = 0, bucket_size_multiplier: int = 50, drop_last: bool = False,
                 num_replicas: int = 1, rank: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if bucket_size_multiplier < 1:
            raise ValueError(f"bucket_size_multiplier must be >= 1, got "
                             f"{bucket_size_multiplier}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got "
                             f"num_replicas={num_replicas}, rank={rank}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1:
            raise ValueError("lengths must be a flat sequence of integers")
        if (self.lengths < 0).any():
            bad = int(np.flatnonzero(self.lengths < 0)[0])
            raise ValueError(f"lengths[{bad}] is negative ({self.lengths[bad]})")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_size_multiplier = bucket_size_multiplier
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        n = len(self.lengths)
        if drop_last and num_replicas > 1:
            self.num_per_rank = n // num_replicas
        else:
            self.num_per_rank = math.ceil(n / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order ``__iter__`` yields (same (seed, epoch) -> same order)."""
        self.epoch = int(epoch)

    def _rank_indices(self, rng: np.random.Generator) -> np.ndarray:
        n = len(self.lengths)
        idx = rng.permutation(n) if self.shuffle else np.arange(n)
        total = self.num_per_rank * self.num_replicas
        if total > n:  # pad by repeating from the start (as many times as needed)
            idx = np.concatenate([idx, np.resize(idx, total - n)]) if n else idx
        idx = idx[:total]
        return idx[self.rank::self.num_replicas]

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        idx = self._rank_indices(rng)
        chunk = self.batch_size * self.bucket_size_multiplier
        ordered = []
        for start in range(0, len(idx), chunk):
            part = idx[start:start + chunk]
            ordered.append(part[np.argsort(self.lengths[part], kind="stable")])
        flat = np.concatenate(ordered) if ordered else idx
        batches = [flat[i:i + self.batch_size].tolist()
                   for i in range(0, len(flat), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            order = rng.permutation(len(batches))
            batches = [batches[i] for i in order]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_per_rank // self.batch_size
        return math.ceil(self.num_per_rank / self.batch_size)


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


def make_loader(dataset: Sequence[Sample], batch_size: int,
                streams: Sequence[str] = DEFAULT_STREAMS, shuffle: bool = True, seed: int = 0,
                num_workers: int = 0, *, text_tokenizer: Any = None, gloss_vocab: Any = None,
                normalize_frames: bool = False, lengths: Sequence[int] | None = None,
                drop_last: bool = False, bucket_size_multiplier: int = 50,
                num_replicas: int = 1, rank: int = 0, pin_memory: bool = False,
                multiprocessing_context: str | None = None,
                persistent_workers: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` with :class:`BucketBatchSampler` and :func:`collate`.

    ``lengths`` defaults to each sample's ``num_frames`` (eager metadata: nothing is loaded).
    """
    if lengths is None:
        lengths = [s.num_frames for s in dataset]
    if len(lengths) != len(dataset):
        raise ValueError(f"lengths has {len(lengths)} entries for {len(dataset)} samples")
    sampler = BucketBatchSampler(lengths, batch_size, shuffle=shuffle, seed=seed,
                                 bucket_size_multiplier=bucket_size_multiplier,
                                 drop_last=drop_last, num_replicas=num_replicas, rank=rank)
    collate_fn = functools.partial(collate, streams=tuple(streams), text_tokenizer=text_tokenizer,
                                   gloss_vocab=gloss_vocab, normalize_frames=normalize_frames)
    context = multiprocessing_context
    needs_pickle = (num_workers > 0 and context is None
                    and multiprocessing.get_start_method() != "fork")
    if needs_pickle and not (_picklable(dataset) and _picklable(collate_fn)):
        if "fork" not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"num_workers={num_workers}: the dataset (or tokenizer/vocab) cannot be "
                f"pickled for the {multiprocessing.get_start_method()!r} start method and "
                f"'fork' is unavailable here; use num_workers=0 or module-level loaders")
        context = "fork"
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=num_workers,
        pin_memory=pin_memory, multiprocessing_context=context,
        persistent_workers=persistent_workers and num_workers > 0)
