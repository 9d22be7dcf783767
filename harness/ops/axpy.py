"""``axpy``: out = alpha · x + y — the trivial op that exercises every backend end to end.

It is not used by any method; it exists so the build (CMake → pybind11 → Python wrapper →
autograd) and the dispatch rules are tested from day one, and as the smallest example of the
one-file-per-op layout (torch reference, Triton kernel, native wrapper, autograd.Function).
"""

from __future__ import annotations

import torch

from harness.ops import _native
from harness.ops.dispatch import resolve

try:  # Triton is optional: without it the backend is reported unavailable.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only on machines without triton
    triton = None


def axpy_reference(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Ground truth."""
    return alpha * x + y


if triton is not None:

    @triton.jit
    def _axpy_kernel(x_ptr, y_ptr, out_ptr, alpha, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        valid = offsets < n
        x = tl.load(x_ptr + offsets, mask=valid).to(tl.float32)
        y = tl.load(y_ptr + offsets, mask=valid).to(tl.float32)
        out = alpha * x + y
        tl.store(out_ptr + offsets, out.to(out_ptr.dtype.element_ty), mask=valid)


def _axpy_triton(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    out = torch.empty_like(x)
    n = x.numel()
    block = 1024
    _axpy_kernel[(triton.cdiv(n, block),)](x, y, out, alpha, n, BLOCK=block)
    return out


def _axpy_native(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    allowed = (torch.float32, torch.float64)
    if x.is_cuda:
        allowed = (*allowed, torch.float16, torch.bfloat16)
    code = _native.dtype_code(x, "axpy x", allowed)
    out = torch.empty_like(x)
    kernels = _native.kernels(x.device)
    args = (x.data_ptr(), y.data_ptr(), out.data_ptr(), x.numel(), float(alpha), code)
    if x.is_cuda:
        kernels.axpy(*args, _native.stream_handle(x.device))
    else:
        kernels.axpy(*args)
    return out


_FORWARD = {"torch": axpy_reference, "triton": _axpy_triton, "native": _axpy_native}


class _AxpyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, alpha, backend):
        ctx.alpha = alpha
        return _FORWARD[backend](x, y, alpha)

    @staticmethod
    def backward(ctx, grad_out):
        # d/dx = alpha, d/dy = 1: an elementwise scale needs no kernel of its own.
        return ctx.alpha * grad_out, grad_out, None, None


def axpy(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0, backend: str | None = None):
    """alpha · x + y on the chosen backend (see ``harness.ops.dispatch``)."""
    if x.shape != y.shape:
        raise ValueError(f"axpy: x has shape {tuple(x.shape)} but y has {tuple(y.shape)}")
    if x.device != y.device:
        raise ValueError(f"axpy: x is on {x.device} but y is on {y.device}")
    if x.dtype != y.dtype:
        raise TypeError(f"axpy: x is {x.dtype} but y is {y.dtype}")
    if not x.is_floating_point():
        raise TypeError(f"axpy: expected floating-point tensors, got {x.dtype}")
    name = resolve(backend, x.device)
    return _AxpyFunction.apply(x.contiguous(), y.contiguous(), float(alpha), name)
