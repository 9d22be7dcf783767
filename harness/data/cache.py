"""On-disk cache of per-sample features (safetensors), keyed by a hash of the config.

Methods with a frozen visual backbone compute the same features every epoch; ``FeatureCache``
stores them once per sample::

    cache = FeatureCache("runs/cache", {"backbone": "resnet18", "res": 64, "dataset": "synthetic"})
    feats = cache.get_or_compute(sample.name, lambda: {"features": backbone(frames)})

Layout: ``<root>/<key>/`` with ``key`` = the first 16 hex digits of
``sha256(json.dumps(config, sort_keys=True))`` -- any change to the config (backbone, weights,
resolution, dataset, ...) selects a different folder, so stale features are never reused. The
folder holds ``config.json`` (the config, for humans) and one ``<name>.safetensors`` per sample.
A sample name with characters outside ``[A-Za-z0-9._-]`` (or starting with ``.``) is stored as
``<sanitised name>-<12 hex of sha256(name)>.safetensors``, so names cannot escape the folder or
collide. The file's safetensors metadata records the sample name; a mismatch is an error.

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``): concurrent writers
and interrupted runs leave either no file or a complete one. Tensors are stored on the CPU, made
contiguous.

Corrupted or unreadable files: ``on_corrupt="error"`` (default) raises :class:`FeatureCacheError`
naming the file (a damaged cache entry never passes silently, and disk trouble is noticed);
``on_corrupt="recompute"`` makes ``get`` treat it as a miss with a ``warnings.warn`` naming it, so
``get_or_compute`` recomputes and overwrites it.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from harness.files import atomic_write_bytes, atomic_write_text

_SAFE = re.compile(r"[A-Za-z0-9._-]+")
SUFFIX = ".safetensors"


class FeatureCacheError(RuntimeError):
    """A cache file is corrupted or does not belong where it is (the message names it)."""


def config_key(config: Mapping[str, Any]) -> str:
    """First 16 hex digits of sha256 of the config as sorted-key JSON."""
    try:
        text = json.dumps(config, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"FeatureCache config must be JSON-serialisable (str/number/bool/None "
                        f"in dicts and lists): {e}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_stem(name: str) -> str:
    """The file name (without suffix) used for sample ``name``."""
    if not name:
        raise ValueError("sample name must not be empty")
    if _SAFE.fullmatch(name) and not name.startswith("."):
        return name
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")[:80]
    return f"{clean}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:12]}"


class FeatureCache:
    """Per-sample tensors on disk under ``<root>/<config hash>/``."""

    def __init__(self, root: str | Path, config: Mapping[str, Any],
                 on_corrupt: str = "error") -> None:
        if on_corrupt not in ("error", "recompute"):
            raise ValueError(f"on_corrupt must be 'error' or 'recompute', got {on_corrupt!r}")
        self.config = dict(config)
        self.key = config_key(self.config)
        self.folder = Path(root) / self.key
        self.on_corrupt = on_corrupt
        self.hits = 0
        self.misses = 0
        cfg_path = self.folder / "config.json"
        if not cfg_path.is_file():
            atomic_write_text(cfg_path, json.dumps(self.config, sort_keys=True, indent=2,
                                                   ensure_ascii=False) + "\n")

    def path_for(self, name: str) -> Path:
        return self.folder / (file_stem(name) + SUFFIX)

    def __contains__(self, name: str) -> bool:
        return self.path_for(name).is_file()

    def get(self, name: str) -> dict[str, torch.Tensor] | None:
        """The cached tensors of ``name``, or ``None`` on a miss."""
        from safetensors import safe_open

        path = self.path_for(name)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                stored = (f.metadata() or {}).get("name")
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as e:  # safetensors raises its own error types from Rust
            message = f"{path}: corrupted feature-cache file for sample {name!r}: {e}"
            if self.on_corrupt == "error":
                raise FeatureCacheError(message + " (delete it to recompute)") from None
            warnings.warn(message + "; recomputing", stacklevel=2)
            self.misses += 1
            return None
        if stored != name:
            raise FeatureCacheError(f"{path}: holds features of sample {stored!r}, "
                                    f"not {name!r}")
        self.hits += 1
        return tensors

    def put(self, name: str, tensors: Mapping[str, torch.Tensor]) -> Path:
        """Store ``tensors`` for ``name`` atomically; returns the file path."""
        from safetensors.torch import save

        if not isinstance(tensors, Mapping) or not tensors:
            raise TypeError(f"sample {name!r}: put expects a non-empty dict of name -> tensor")
        clean = {}
        for k, v in tensors.items():
            if not isinstance(k, str) or not isinstance(v, torch.Tensor):
                raise TypeError(f"sample {name!r}: entry {k!r} must map a str to a torch.Tensor, "
                                f"got {type(v).__name__}")
            clean[k] = v.detach().cpu().contiguous().clone()
        data = save(clean, metadata={"name": name})
        return atomic_write_bytes(self.path_for(name), data)

    def get_or_compute(self, name: str,
                       fn: Callable[[], Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Cached tensors of ``name``; on a miss, ``fn()`` is called, stored and returned."""
        cached = self.get(name)
        if cached is not None:
            return cached
        tensors = fn()
        self.put(name, tensors)
        return {k: v.detach().cpu() for k, v in tensors.items()}

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.folder)!r}, hits={self.hits}, misses={self.misses})"
