"""Shared by the benchmark suites: map a benchmark backend name to a ``harness.ops`` backend."""

from __future__ import annotations

import pytest
import torch

from harness import ops


def skip_unless_runnable(device: str, backend: str) -> str:
    """The harness.ops backend name for a benchmark backend (``eager`` = the torch reference),
    or skip the test with the reason it cannot run here."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    name = "torch" if backend == "eager" else backend
    ok, reason = ops.availability(name, device)
    if not ok:
        pytest.skip(reason)
    return name
