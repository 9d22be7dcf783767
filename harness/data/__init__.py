"""Data sources behind one entry point, ``load_dataset(name, split, root=None, **kw)``.

Each source module registers a loader with ``register_source``; ``load_dataset`` returns a
sequence of ``Sample`` (see ``harness.data.sample``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

from harness.data.sample import (
    FRAME_FINGERSPELLING,
    FRAME_REST,
    FRAME_SIGN,
    STREAMS,
    FingerspellingSpan,
    Sample,
)

_SOURCES: dict[str, Callable[..., Sequence[Sample]]] = {}
#: Source modules imported on first use (each registers itself with ``register_source``).
_BUILTIN_MODULES: tuple[str, ...] = ("harness.data.synthetic", "harness.data.readers")


def register_source(name: str) -> Callable:
    """Decorator registering ``fn(split, root=None, **kw) -> Sequence[Sample]`` as ``name``."""

    def wrap(fn: Callable[..., Sequence[Sample]]) -> Callable[..., Sequence[Sample]]:
        if name in _SOURCES:
            raise ValueError(f"data source {name!r} is registered twice")
        _SOURCES[name] = fn
        return fn

    return wrap


def _import_builtin_sources() -> None:
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def list_sources() -> list[str]:
    """Names accepted by ``load_dataset``."""
    _import_builtin_sources()
    return sorted(_SOURCES)


def load_dataset(name: str, split: str, root=None, **kw) -> Sequence[Sample]:
    """The ``split`` of data source ``name`` (``root``: the dataset's top folder, if real)."""
    _import_builtin_sources()
    if name not in _SOURCES:
        known = ", ".join(sorted(_SOURCES)) or "none"
        raise ValueError(f"unknown dataset {name!r}; available: {known}")
    _check_options(name, _SOURCES[name], kw)
    return _SOURCES[name](split, root=root, **kw)


def _check_options(name: str, loader: Callable[..., Sequence[Sample]], kw: dict) -> None:
    """A clear error for an option the source does not take (instead of a TypeError)."""
    params = inspect.signature(loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kw) - set(params))
    if unknown:
        accepted = sorted(p for p in params if p not in ("split", "root"))
        raise ValueError(f"dataset {name!r} does not take option(s) {unknown}; it takes "
                         f"{accepted}")


__all__ = [
    "FRAME_FINGERSPELLING",
    "FRAME_REST",
    "FRAME_SIGN",
    "STREAMS",
    "FingerspellingSpan",
    "Sample",
    "list_sources",
    "load_dataset",
    "register_source",
]
