"""Fused ops shared by the SignBench methods, each with torch / Triton / native backends.

See ``harness.ops.dispatch`` for how a backend is chosen for a call.
"""

from harness.ops.axpy import axpy, axpy_reference
from harness.ops.dispatch import (
    BACKENDS,
    BackendUnavailableError,
    availability,
    backends,
    default_backend,
    use_backend,
)

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "availability",
    "axpy",
    "axpy_reference",
    "backends",
    "default_backend",
    "use_backend",
]
