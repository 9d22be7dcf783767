"""Per-sample cache of frozen-module outputs, for training stages that keep those modules fixed.

Several methods train in stages where an expensive front end is frozen and run in eval mode —
HyperSign's keypoint / RGB extractors in the translation stage, SignFuse's visual and skeletal
streams in the alignment stage, SignBind-LLM's encoders and experts in the fusion stage, SignX's
Pose2Gloss / Vid2Pose / teacher under the recogniser. There the front end is a fixed function of
the sample, so recomputing it every epoch only costs time: the method computes it once per
sample and reads it back afterwards. The numbers are the same (each method's tests check it);
``generate`` never reads a cache, so latency measurements include the front end.

What is shared here is the bookkeeping every such cache needs: outputs of a padded batch are cut
to each sample's valid length and stored by a key (usually the sample name), and a later batch
whose keys are all present is re-padded (with zeros) from them, with its mask.
:meth:`SampleCache.fetch` computes each missing sample *alone* (a batch of one, unpadded), so a
cached row is a function of the sample only, never of the batch it first came in: a run resumed
mid-stage (cache rebuilt from other batches) then trains on the very same bits. *When* a cache is
valid is each method's own decision (which stage, which modules frozen, which config) — a method
calls :meth:`SampleCache.clear` whenever that changes (a new stage, loaded weights).

Outputs may be a tensor (B, T, ...), a dict of outputs, or ``None`` (nothing to cache), nested;
every tensor is cut along dim 1 to the sample's length. Stored rows are detached copies, so the
cache keeps neither the autograd graph nor the padded batch's storage alive.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from harness.data.batching import Batch

#: a cacheable output: a (B, T, ...) tensor, a dict of outputs, or None
Outputs = Any


def _cut(x: Outputs, i: int, n: int) -> Outputs:
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: _cut(v, i, n) for k, v in x.items()}
    if isinstance(x, torch.Tensor):
        if x.dim() < 2:
            raise ValueError(f"SampleCache: expected (B, T, ...) tensors, got shape "
                             f"{tuple(x.shape)}")
        return x[i, :n].detach().clone()
    raise TypeError(f"SampleCache: cannot cache a {type(x).__name__} (tensors, dicts of "
                    "tensors and None only)")


def _pad(rows: Sequence[Outputs]) -> Outputs:
    if rows[0] is None:
        return None
    if isinstance(rows[0], dict):
        return {k: _pad([r[k] for r in rows]) for k in rows[0]}
    return pad_sequence(list(rows), batch_first=True)


def one_sample(batch: Batch, i: int) -> Batch:
    """Item ``i`` of ``batch`` as a batch of one with every stream cut to its own length (what
    ``collate([sample])`` gives): the input :meth:`SampleCache.fetch`'s ``compute_one`` runs on."""

    def cut(x: Any, n: int | None) -> Any:
        if isinstance(x, dict):
            return {k: cut(v, n) for k, v in x.items()}
        if isinstance(x, torch.Tensor):
            return x[i:i + 1, :n] if x.dim() >= 2 else x[i:i + 1]
        return x

    def length(lengths: torch.Tensor | None) -> int | None:
        return None if lengths is None else int(lengths[i])

    lens = {s: length(batch.stream_lengths.get(s)) for s in batch.inputs}
    text_n, gloss_n = length(batch.text_lengths), length(batch.gloss_lengths)
    return Batch(
        names=[batch.names[i]], lengths=batch.lengths[i:i + 1],
        inputs={s: cut(x, lens[s]) for s, x in batch.inputs.items()},
        masks={s: cut(m, lens.get(s)) for s, m in batch.masks.items()},
        stream_lengths={s: v[i:i + 1] for s, v in batch.stream_lengths.items()},
        signers=batch.signers[i:i + 1], texts=batch.texts[i:i + 1],
        glosses=batch.glosses[i:i + 1], text_ids=cut(batch.text_ids, text_n),
        text_mask=cut(batch.text_mask, text_n), text_lengths=cut(batch.text_lengths, None),
        gloss_ids=cut(batch.gloss_ids, gloss_n), gloss_lengths=cut(batch.gloss_lengths, None))


def repad(outputs: Outputs, lengths: torch.Tensor | Sequence[int]) -> Outputs:
    """``outputs`` as :meth:`SampleCache.lookup` would return them: detached, each item cut to
    its length and zero-padded to the longest — for a caller that wants a cache miss and a hit
    to hand on exactly the same tensors (padding included)."""
    lengths = lengths.tolist() if isinstance(lengths, torch.Tensor) else list(lengths)
    return _pad([_cut(outputs, i, int(n)) for i, n in enumerate(lengths)])


class SampleCache:
    """Unpadded per-sample outputs by key; see the module docstring."""

    def __init__(self) -> None:
        self._rows: dict[Hashable, tuple[int, Outputs]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._rows

    def clear(self) -> None:
        """Forget everything (the cached modules changed or the stage ended)."""
        self._rows.clear()

    def store(self, keys: Sequence[Hashable], outputs: Outputs,
              lengths: torch.Tensor | Sequence[int]) -> None:
        """Cache item ``i`` of ``outputs`` (its first ``lengths[i]`` steps) under ``keys[i]``."""
        lengths = lengths.tolist() if isinstance(lengths, torch.Tensor) else list(lengths)
        if len(lengths) != len(keys):
            raise ValueError(f"SampleCache.store: {len(keys)} keys but {len(lengths)} lengths")
        for i, (key, n) in enumerate(zip(keys, lengths, strict=True)):
            self._rows[key] = (int(n), _cut(outputs, i, int(n)))

    def lookup(self, keys: Sequence[Hashable], device: torch.device | str | None = None
               ) -> tuple[Outputs, torch.Tensor] | None:
        """(outputs re-padded with zeros, mask (B, T_max) on ``device``) when every key is
        cached, else None (the caller computes the batch and :meth:`store` s it)."""
        if not keys or any(k not in self._rows for k in keys):
            return None
        entries = [self._rows[k] for k in keys]
        lengths = torch.tensor([n for n, _ in entries], device=device)
        mask = torch.arange(int(lengths.max()), device=device)[None] < lengths[:, None]
        return _pad([rows for _, rows in entries]), mask

    def fetch(self, keys: Sequence[Hashable],
              compute_one: Callable[[int], tuple[Outputs, torch.Tensor]],
              device: torch.device | str | None = None) -> tuple[Outputs, torch.Tensor]:
        """(outputs, mask) of the batch from the cache, computing item ``i`` of a missing key
        alone with ``compute_one(i) -> (outputs (1, T', ...), mask (1, T'))`` and storing it
        first. A hit and a miss hand on the same bits, whatever batch the sample is in."""
        for i, key in enumerate(keys):
            if key not in self._rows:
                outputs, mask = compute_one(i)
                self.store([key], outputs, mask.sum(1))
        found = self.lookup(keys, device=device)
        if found is None:
            raise ValueError("SampleCache.fetch: no keys given")
        return found
