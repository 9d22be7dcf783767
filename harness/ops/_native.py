"""Glue between torch tensors and the ``harness._C`` extension.

The extension takes raw pointers, so these helpers check everything a kernel would otherwise
silently get wrong (device, dtype, contiguity) and hand over ``data_ptr()`` and the current CUDA
stream as integers.
"""

from __future__ import annotations

import torch

from harness.ops.dispatch import BackendUnavailableError, native_module

DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float32: 0,
    torch.float64: 1,
    torch.float16: 2,
    torch.bfloat16: 3,
}


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype a native kernel computes ``t`` in: CUDA kernels take fp16 / bf16 as they are
    (fp32 math inside); CPU kernels compute in fp32 / fp64, so CPU halves are upcast by the
    wrapper and the result cast back."""
    if t.is_cuda or t.dtype in (torch.float32, torch.float64):
        return t.dtype
    return torch.float32


def allowed_dtypes(t: torch.Tensor, *, cuda_fp64: bool = False) -> tuple[torch.dtype, ...]:
    """Storage dtypes the native kernels accept for ``t``'s device (after ``compute_dtype``)."""
    if t.is_cuda:
        halves = (torch.float32, torch.float16, torch.bfloat16)
        return (*halves, torch.float64) if cuda_fp64 else halves
    return (torch.float32, torch.float64)


def kernels(device: torch.device):
    """The extension's kernel namespace for ``device`` (``_C.cpu`` or ``_C.cuda``)."""
    module = native_module()
    if module is None:
        raise BackendUnavailableError("the harness._C extension is not built")
    if device.type == "cuda":
        if not module.has_cuda():
            raise BackendUnavailableError("harness._C was built without CUDA kernels")
        return module.cuda
    if device.type == "cpu":
        return module.cpu
    raise BackendUnavailableError(f"no native kernels for device type {device.type!r}")


def dtype_code(tensor: torch.Tensor, name: str, allowed: tuple[torch.dtype, ...]) -> int:
    """The extension's code for ``tensor.dtype``, or a clear error naming the argument."""
    if tensor.dtype not in allowed:
        names = ", ".join(str(d).removeprefix("torch.") for d in allowed)
        raise TypeError(f"{name}: dtype {tensor.dtype} is not supported here (expected {names})")
    return DTYPE_CODES[tensor.dtype]


def stream_handle(device: torch.device) -> int:
    """The current CUDA stream of ``device`` as an integer (0 on CPU)."""
    if device.type != "cuda":
        return 0
    return torch.cuda.current_stream(device).cuda_stream
