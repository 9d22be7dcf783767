"""The corpus a stand-in trains on: a method's training split, its data settings, its fingerprint.

:data:`PROFILE_DATA` holds the per-profile data settings the runner also uses (it lives here,
below the runner, so ``harness.pretrain`` reads the same values); :func:`data_setting` resolves
one setting for a method class (explicit value, then the class's ``data_defaults``, then
:data:`PROFILE_DATA`); :func:`load_split` reads a split the way the runner does;
:func:`load_pretrain_data` returns the :class:`PretrainData` of a training split with the
corpus fingerprint that goes into a stand-in's hash (:func:`corpus_fingerprint`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.data.sample import Sample
from harness.pretrain.types import PretrainData

PROFILE_DATA: dict[str, dict[str, Any]] = {
    "tiny": {"train_size": 256, "eval_size": 128, "monitor_size": 32, "resolution": 32,
             "batch_size": 16, "eval_batch_size": 32, "measure_iters": 5, "lang": "de"},
    "paper": {"train_size": None, "eval_size": None, "monitor_size": None, "resolution": 64,
              "batch_size": 32, "eval_batch_size": 32, "measure_iters": 20, "lang": "de"},
}


def data_setting(name: str, cls: Any, profile: str, explicit: Any = None) -> Any:
    """One data setting (``train_size``, ``resolution``, ``lang``, ...) of method class ``cls``
    at ``profile``: ``explicit`` when given, else the class's ``data_defaults[profile]``, else
    :data:`PROFILE_DATA`."""
    if profile not in PROFILE_DATA:
        raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILE_DATA)}")
    if explicit is not None:
        return explicit
    defaults = getattr(cls, "data_defaults", {}) or {}
    if name in defaults.get(profile, {}):
        return defaults[profile][name]
    return PROFILE_DATA[profile].get(name)


def load_split(dataset: str, split: str, *, lang: str, size: int | None, resolution: int,
               seed: int, root: str | Path | None = None,
               options: Mapping[str, Any] | None = None) -> Sequence[Sample]:
    """One split (the runner's and the stand-ins'): the synthetic corpus takes size /
    resolution / seed; a real dataset is read from ``root`` with the reader's ``options``
    (keypoints_dir, labels, require, trust_pickle) and cut to the first ``size`` samples."""
    from harness.data import load_dataset

    if dataset == "synthetic":
        kw: dict[str, Any] = {"lang": lang, "resolution": resolution, "seed": seed}
        if size is not None:
            kw["size"] = size
        return load_dataset("synthetic", split, **kw)
    data = load_dataset(dataset, split, root=root, **(options or {}))
    if size is not None:
        data = [data[i] for i in range(min(size, len(data)))]
    return data


def generator_version(dataset: str) -> Any:
    """The synthetic corpus generator's version when it declares one (``CORPUS_VERSION`` in
    ``harness.data.synthetic``), else ``None`` (the text digest still tells corpora apart)."""
    if dataset != "synthetic":
        return None
    import harness.data.synthetic as synthetic

    return getattr(synthetic, "CORPUS_VERSION", None)


def corpus_fingerprint(dataset: str, *, lang: str, train_size: int | None,
                       resolution: int | None, seed: int, texts: Sequence[str],
                       root: str | Path | None = None) -> dict[str, Any]:
    """What identifies a training corpus in a stand-in's hash: dataset, lang, train_size,
    resolution, seed, the synthetic generator's version and the SHA-256 of the split's texts
    (one per line; so a changed corpus is never mistaken for the cached one)."""
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    out: dict[str, Any] = {"dataset": dataset, "lang": lang, "train_size": train_size,
                           "resolution": resolution, "seed": seed,
                           "generator_version": generator_version(dataset),
                           "texts": len(texts), "texts_sha256": digest}
    if dataset != "synthetic" and root is not None:
        out["root"] = str(Path(root).resolve())
    return out


def load_pretrain_data(dataset: str, *, lang: str, train_size: int | None, resolution: int,
                       seed: int, root: str | Path | None = None,
                       options: Mapping[str, Any] | None = None) -> PretrainData:
    """The training split as :class:`PretrainData` (samples, texts, fingerprint)."""
    samples = load_split(dataset, "train", lang=lang, size=train_size, resolution=resolution,
                         seed=seed, root=root, options=options)
    texts = [s.text for s in samples if s.text]
    corpus = corpus_fingerprint(dataset, lang=lang, train_size=train_size, resolution=resolution,
                                seed=seed, texts=texts, root=root)
    return PretrainData(samples=samples, lang=lang, texts=texts, dataset=dataset,
                        resolution=resolution, seed=seed, corpus=corpus)


__all__ = ["PROFILE_DATA", "corpus_fingerprint", "data_setting", "generator_version",
           "load_pretrain_data", "load_split"]
