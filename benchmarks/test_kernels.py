"""Kernel micro-benchmarks: each op × backend × mode × dtype × shape.

Run ``pytest benchmarks/test_kernels.py --benchmark-json out.json`` and feed the JSON to
``signbench leaderboard --bench out.json``; the ``eager`` rows (torch reference) are the speedup
baseline. CPU runs time the torch reference and the native C++ kernels; Triton rows need a GPU
(the interpreter is a correctness tool, not a benchmark) and skip cleanly without one.
"""

from __future__ import annotations

import pytest
import torch

from harness import ops

CPU_BACKENDS = ("eager", "native")
GPU_BACKENDS = ("eager", "native", "triton")


def _cases():
    for device in ("cpu", "cuda"):
        for backend in CPU_BACKENDS if device == "cpu" else GPU_BACKENDS:
            yield pytest.param(device, backend, id=f"{device}-{backend}")


def _skip_unless_runnable(device: str, backend: str) -> str:
    """The harness.ops backend name for a benchmark backend, or skip with the reason."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    name = "torch" if backend == "eager" else backend
    ok, reason = ops.availability(name, device)
    if not ok:
        pytest.skip(reason)
    return name


# --------------------------------------------------------------------------------------- axpy

AXPY_SIZES = {"cpu": (1 << 16, 1 << 20), "cuda": (1 << 20, 1 << 26)}


@pytest.mark.parametrize("size_index", [0, 1], ids=["small", "large"])
@pytest.mark.parametrize(("device", "backend"), list(_cases()))
def test_axpy(bench, device, backend, size_index):
    name = _skip_unless_runnable(device, backend)
    n = AXPY_SIZES[device][size_index]
    x = torch.randn(n, device=device)
    y = torch.randn(n, device=device)
    out = bench(
        lambda: ops.axpy(x, y, 2.0, backend=name),
        op="axpy", mode="fwd", backend=backend, dtype=x.dtype, shape={"n": n}, device=device,
        flops=2 * n, bytes_moved=3 * n * x.element_size(),
    )
    torch.testing.assert_close(out, 2.0 * x + y)
