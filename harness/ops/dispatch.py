"""Backend selection for ``harness.ops``.

Every op has three backends:

* ``torch``  — the readable reference, ground truth for tests; works everywhere.
* ``triton`` — Triton kernels; on CUDA tensors, or on CPU tensors under the Triton interpreter
  (``TRITON_INTERPRET=1`` set before ``harness.ops`` is imported — slow, for tests only).
* ``native`` — the ``harness._C`` extension: C++ on CPU tensors, CUDA on GPU tensors.

The backend for a call is, in order: the op's ``backend=`` argument, the innermost
``use_backend(...)`` context, the ``SIGNBENCH_BACKEND`` environment variable, and finally the
fastest backend available for the tensor's device (``default_backend``).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from collections.abc import Iterator
from functools import cache

import torch

BACKENDS: tuple[str, ...] = ("torch", "triton", "native")
ENV_VAR = "SIGNBENCH_BACKEND"

_override: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "signbench_backend", default=None
)


class BackendUnavailableError(RuntimeError):
    """A backend was asked for that cannot run on this machine or device."""


def _check_name(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} from {source}; expected one of {BACKENDS}")
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the ops inside the ``with`` block on backend ``name`` (unless a call names its own)."""
    token = _override.set(_check_name(name, "use_backend()"))
    try:
        yield
    finally:
        _override.reset(token)


@cache
def native_module():
    """The compiled extension ``harness._C``, or None when it is not built."""
    try:
        return importlib.import_module("harness._C")
    except ImportError:
        return None


VALUE_CHECKS_ENV = "SIGNBENCH_CHECK_VALUES"


def check_values(t: torch.Tensor) -> bool:
    """Whether input checks may read ``t``'s values: always on the CPU (free), elsewhere only with
    ``SIGNBENCH_CHECK_VALUES=1`` (a read is a device → host sync per call; shape, dtype and
    device checks always run)."""
    return t.device.type == "cpu" or os.environ.get(VALUE_CHECKS_ENV, "").strip() == "1"


def triton_interpreting() -> bool:
    """Whether Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


@cache
def _triton_importable() -> bool:
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def availability(name: str, device_type: str) -> tuple[bool, str]:
    """Whether backend ``name`` can run on ``device_type`` ('cpu' | 'cuda'), with the reason."""
    _check_name(name, "availability()")
    if device_type not in ("cpu", "cuda"):
        return False, f"device type {device_type!r} is not supported by SignBench ops"
    if device_type == "cuda" and not torch.cuda.is_available():
        return False, "no CUDA device is visible to torch"
    if name == "torch":
        return True, "reference implementation"
    if name == "triton":
        if not _triton_importable():
            return False, "triton is not installed"
        if device_type == "cpu" and not triton_interpreting():
            return False, "Triton runs CPU tensors only under TRITON_INTERPRET=1"
        return True, "Triton interpreter" if device_type == "cpu" else "Triton on CUDA"
    module = native_module()
    if module is None:
        return False, "the harness._C extension is not built (reinstall signbench)"
    if device_type == "cuda" and not module.has_cuda():
        return False, "harness._C was built without CUDA kernels"
    return True, "C++ kernels" if device_type == "cpu" else "CUDA kernels"


def backends(device_type: str | None = None) -> list[str]:
    """Backends that work on this machine (for ``device_type``, or for any device)."""
    devices = [device_type] if device_type else ["cpu", "cuda"]
    return [b for b in BACKENDS if any(availability(b, d)[0] for d in devices)]


def default_backend(device_type: str) -> str:
    """Fastest available backend for a device: native, then Triton on GPU, else torch."""
    preference = ("native", "triton", "torch") if device_type == "cuda" else ("native", "torch")
    for name in preference:
        if availability(name, device_type)[0]:
            return name
    return "torch"


def resolve(backend: str | None, device: torch.device | str) -> str:
    """The backend an op call should use; raises a clear error when it cannot run there."""
    device_type = torch.device(device).type
    if backend is not None:
        name, source = _check_name(backend, "backend="), "backend="
    elif _override.get() is not None:
        name, source = _override.get(), "use_backend()"
    elif os.environ.get(ENV_VAR):
        name, source = _check_name(os.environ[ENV_VAR], f"${ENV_VAR}"), f"${ENV_VAR}"
    else:
        return default_backend(device_type)
    ok, reason = availability(name, device_type)
    if not ok:
        raise BackendUnavailableError(
            f"backend {name!r} (chosen by {source}) cannot run on {device_type}: {reason}"
        )
    return name
