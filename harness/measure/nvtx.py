"""NVTX ranges for profiling SignBench runs with Nsight Systems / Nsight Compute.

Every range lives in one NVTX domain, ``signbench``, and model stages use stable names
``slt/<method>/<stage>`` (``frontend``, ``fusion``, ``encoder``, ``decoder``, ``beam_search``, …) so
that timelines from different methods and runs line up and can be filtered by name.

Why the ``nvtx`` package rather than ``torch.cuda.nvtx``: it supports domains, works without CUDA,
and without a profiler attached its push/pop are calls into the NVTX stub library that return
at once (well under a microsecond), so ranges can stay in production code. Annotation objects
are cached per (name, colour) so entering a range does not rebuild its attributes. When the
``nvtx`` package is missing, or ``NVTX_DISABLE`` is set, every range is a no-op.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

try:  # the package is a dependency, but measurement must not break when it is absent
    import nvtx as _nvtx
except ImportError:  # pragma: no cover - exercised only where nvtx is not installed
    _nvtx = None

DOMAIN = "signbench"

_F = TypeVar("_F", bound=Callable[..., Any])


def enabled() -> bool:
    """Whether ranges are emitted: the ``nvtx`` package is importable and NVTX is not disabled.

    This does not say whether a profiler is attached (without one, emitted ranges cost ~nothing).
    """
    return _nvtx is not None and bool(_nvtx.enabled())


def range_name(method: str, stage: str) -> str:
    """The stable range name for one stage of one method: ``slt/<method>/<stage>``."""
    if not method or not stage:
        raise ValueError(f"method and stage must be non-empty, got {method!r}, {stage!r}")
    return f"slt/{method}/{stage}"


class _NoopRange:
    """Stand-in for ``nvtx.annotate`` when NVTX is unavailable: context manager and decorator."""

    __slots__ = ()

    def __enter__(self) -> _NoopRange:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False

    def __call__(self, func: _F) -> _F:
        return func


_NOOP = _NoopRange()


@functools.lru_cache(maxsize=4096)
def _annotation(name: str, color: str | None) -> Any:
    if not enabled():
        return _NOOP
    return _nvtx.annotate(message=name, color=color, domain=DOMAIN)


def nvtx_range(name: str, color: str | None = None) -> Any:
    """An NVTX range ``name`` in the ``signbench`` domain.

    Use as a context manager (``with nvtx_range("slt/gfslt/encoder"): ...``) or as a decorator
    (``@nvtx_range("slt/gfslt/decoder")``). The returned object is re-entrant and may be reused.
    """
    return _annotation(name, color)


def stage(method: str, stage: str) -> Any:
    """The range for one model stage: ``nvtx_range(range_name(method, stage))``."""
    return nvtx_range(range_name(method, stage))
