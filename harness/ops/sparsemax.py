"""``sparsemax``: the Euclidean projection of a score vector onto the probability simplex.

Martins & Astudillo (2016), used by HyperSign's SST converter (Sec. 2.3.2, Algorithm 1 lines 6-11)
to turn token relevances into sparse weights:

    sparsemax(z) = argmin_{p in simplex} ||p - z||^2 = max(z - tau, 0),
    tau = (sum_{i<=k} z_(i) - 1) / k,   k = max{j : 1 + j * z_(j) > sum_{i<=j} z_(i)}

with z_(1) >= z_(2) >= ... the sorted scores. The Jacobian-vector product is
``g - mean_{S}(g)`` on the support S = {i : p_i > 0} and 0 elsewhere.

Design choices
--------------
* Everything is computed in fp32 whatever the input dtype (fp64 inputs stay in fp64); the output
  has the input dtype. Every backend first subtracts the row maximum (sparsemax is invariant to
  adding a constant), so rows with large magnitudes (1e4) keep their O(1) differences exact.
* The torch reference sorts (Algorithm 1 as written). The CPU kernel sorts too (``std::sort``).
  The GPU kernels (Triton, CUDA) are sort-free: with the row shifted so that its max is 0, tau
  lies in [-1, 0); ``sum_i max(z_i - tau, 0)`` is decreasing in tau, so a fixed number of
  bisection steps brackets it, then a few Michelot steps
  (tau <- (sum_{z > tau} z - 1) / |{z > tau}|, starting from the superset {z > lo}) recompute tau
  exactly from the support. Each step is one
  reduction over a row held in registers, so no sort and no shared-memory scratch is needed.
* Backward recomputes nothing: it needs only the saved output (the support is ``p > 0``).

Non-finite values: a row holding any NaN or +/-Inf yields an all-NaN output row (they propagate;
nothing is cleaned). In backward, entries whose output is NaN get a NaN gradient.
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

#: Bisection and exact-refinement steps of the sort-free GPU threshold search (see module doc).
N_BISECT = 26
N_REFINE = 3
#: Largest size along ``dim`` the Triton kernel holds in registers.
TRITON_MAX_K = 1 << 15


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def sparsemax_reference(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Ground truth: Algorithm 1 (sort, cumulative sums, support size k, threshold tau).

    Differentiable through torch autograd; computed in fp32 (fp64 for fp64 inputs).
    """
    z = x.movedim(dim, -1).to(_compute_dtype(x.dtype))
    finite = torch.isfinite(z).all(dim=-1, keepdim=True)
    z = z - z.max(dim=-1, keepdim=True).values.detach()
    z_sorted = z.sort(dim=-1, descending=True).values
    cumsum = z_sorted.cumsum(dim=-1)
    j = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    k = (1 + j * z_sorted > cumsum).sum(dim=-1, keepdim=True).clamp(min=1)
    tau = (cumsum.gather(-1, k - 1) - 1) / k.to(z.dtype)
    p = torch.clamp(z - tau, min=0)
    p = torch.where(finite, p, torch.full_like(p, float("nan")))
    return p.to(x.dtype).movedim(-1, dim)


# --------------------------------------------------------------------------------------------
# torch backend (2-D rows, used by the autograd.Function)
# --------------------------------------------------------------------------------------------


def _forward_torch(x: torch.Tensor) -> torch.Tensor:
    return sparsemax_reference(x, -1)


def _backward_torch(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    p = p.to(_compute_dtype(p.dtype))
    g = g.to(p.dtype)
    support = p > 0
    mean = (g * support).sum(-1, keepdim=True) / support.sum(-1, keepdim=True).clamp(min=1)
    return torch.where(support, g - mean, 0 * p)  # 0 * NaN keeps NaN rows NaN


# --------------------------------------------------------------------------------------------
# Triton backend
# --------------------------------------------------------------------------------------------

if triton is not None:

    @triton.jit
    def sparsemax_threshold(z, valid, N_BISECT: tl.constexpr, N_REFINE: tl.constexpr):
        """(zmax, tau, bad) for a 1-D fp32 tile ``z`` whose lanes ``valid`` hold the scores.

        Sort-free: bisection of tau on [zmax - 1, zmax), then Michelot steps from the superset
        {z > lo}. Returns tau relative to zmax: p = max(z - zmax - tau, 0). ``bad`` is True when a
        valid lane is NaN or +/-Inf.
        """
        finite = (z == z) & (tl.abs(z) < float("inf"))
        bad = tl.max(tl.where(valid & (finite == 0), 1, 0), axis=0) > 0
        zmax = tl.max(tl.where(valid & finite, z, -float("inf")), axis=0)
        zs = tl.where(valid & finite, z - zmax, -float("inf"))
        lo = zmax * 0.0 - 1.0
        hi = zmax * 0.0
        for _ in range(N_BISECT):
            mid = (lo + hi) * 0.5
            f = tl.sum(tl.maximum(zs - mid, 0.0), axis=0)
            above = f >= 1.0
            lo = tl.where(above, mid, lo)
            hi = tl.where(above, hi, mid)
        tau = lo
        for _ in range(N_REFINE):
            support = zs > tau
            k = tl.sum(tl.where(support, 1.0, 0.0), axis=0)
            s = tl.sum(tl.where(support, zs, 0.0), axis=0)
            tau = (s - 1.0) / tl.maximum(k, 1.0)
        return zmax, tau, bad

    @triton.jit
    def _sparsemax_fwd_kernel(
        x_ptr, out_ptr, K, BLOCK: tl.constexpr, N_BISECT: tl.constexpr, N_REFINE: tl.constexpr
    ):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        valid = offs < K
        z = tl.load(x_ptr + row * K + offs, mask=valid, other=0.0).to(tl.float32)
        zmax, tau, bad = sparsemax_threshold(z, valid, N_BISECT, N_REFINE)
        p = tl.maximum(z - zmax - tau, 0.0)
        p = tl.where(bad, float("nan"), p)
        tl.store(out_ptr + row * K + offs, p.to(out_ptr.dtype.element_ty), mask=valid)

    @triton.jit
    def _sparsemax_bwd_kernel(p_ptr, g_ptr, gin_ptr, K, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        valid = offs < K
        p = tl.load(p_ptr + row * K + offs, mask=valid, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + row * K + offs, mask=valid, other=0.0).to(tl.float32)
        support = p > 0
        k = tl.maximum(tl.sum(tl.where(support, 1.0, 0.0), axis=0), 1.0)
        mean = tl.sum(tl.where(support, g, 0.0), axis=0) / k
        gin = tl.where(support, g - mean, 0.0 * p)
        tl.store(gin_ptr + row * K + offs, gin.to(gin_ptr.dtype.element_ty), mask=valid)


_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _triton_launch_args(x: torch.Tensor) -> tuple[int, int, int]:
    _native.dtype_code(x, "sparsemax x (triton)", _TRITON_DTYPES)
    rows, k = x.shape
    if k > TRITON_MAX_K:
        raise ValueError(
            f"sparsemax (triton): size {k} along dim exceeds the in-register limit {TRITON_MAX_K}"
        )
    return (rows, *block_warps(k))


def block_warps(k: int) -> tuple[int, int]:
    """(BLOCK, num_warps) of both kernels for rows of length k (the whole row per program)."""
    block = max(16, triton.next_power_of_2(k))
    return block, 4 if block <= 2048 else (8 if block <= 8192 else 16)


def _forward_triton(x: torch.Tensor) -> torch.Tensor:
    rows, block, warps = _triton_launch_args(x)
    out = torch.empty_like(x)
    _sparsemax_fwd_kernel[(rows,)](
        x, out, x.shape[1], BLOCK=block, N_BISECT=N_BISECT, N_REFINE=N_REFINE, num_warps=warps
    )
    return out


def _backward_triton(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    rows, block, warps = _triton_launch_args(p)
    gin = torch.empty_like(p)
    _sparsemax_bwd_kernel[(rows,)](p, g.contiguous(), gin, p.shape[1], BLOCK=block, num_warps=warps)
    return gin


# --------------------------------------------------------------------------------------------
# native backend (csrc/sparsemax)
# --------------------------------------------------------------------------------------------


def _forward_native(x: torch.Tensor) -> torch.Tensor:
    if x.device.type == "cpu" and x.dtype in (torch.float16, torch.bfloat16):
        return _forward_native(x.float()).to(x.dtype)  # CPU kernels compute in fp32
    code = _native.dtype_code(x, "sparsemax x", _native.allowed_dtypes(x, cuda_fp64=True))
    out = torch.empty_like(x)
    kernels = _native.kernels(x.device)
    args = (x.data_ptr(), out.data_ptr(), x.shape[0], x.shape[1], code)
    if x.is_cuda:
        kernels.sparsemax_forward(*args, _native.stream_handle(x.device))
    else:
        kernels.sparsemax_forward(*args)
    return out


def _backward_native(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    if p.device.type == "cpu" and p.dtype in (torch.float16, torch.bfloat16):
        return _backward_native(p.float(), g.float()).to(p.dtype)
    code = _native.dtype_code(p, "sparsemax output", _native.allowed_dtypes(p, cuda_fp64=True))
    g = g.to(p.dtype).contiguous()
    gin = torch.empty_like(p)
    kernels = _native.kernels(p.device)
    args = (p.data_ptr(), g.data_ptr(), gin.data_ptr(), p.shape[0], p.shape[1], code)
    if p.is_cuda:
        kernels.sparsemax_backward(*args, _native.stream_handle(p.device))
    else:
        kernels.sparsemax_backward(*args)
    return gin


_FORWARD = {"torch": _forward_torch, "triton": _forward_triton, "native": _forward_native}
_BACKWARD = {"torch": _backward_torch, "triton": _backward_triton, "native": _backward_native}


class _SparsemaxFunction(torch.autograd.Function):
    """Rows of a contiguous (R, K) tensor; backward uses only the saved output."""

    @staticmethod
    def forward(ctx, x, backend):
        p = _FORWARD[backend](x)
        ctx.backend = backend
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, grad_out):
        (p,) = ctx.saved_tensors
        gin = _BACKWARD[ctx.backend](p, grad_out.contiguous())
        return gin.to(p.dtype), None


def sparsemax(x: torch.Tensor, dim: int = -1, backend: str | None = None) -> torch.Tensor:
    """Sparsemax of ``x`` along ``dim`` (Martins & Astudillo 2016) on the chosen backend.

    Computed in fp32 (fp64 for fp64 inputs); the output has ``x``'s dtype. Rows holding NaN or
    +/-Inf come out all-NaN. See the module docstring for the algorithm per backend.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"sparsemax: x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"sparsemax: x must be floating point, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError("sparsemax: x must have at least one dimension, got a 0-d tensor")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"sparsemax: dim={dim} is out of range for x with {x.dim()} dims")
    name = resolve(backend, x.device)
    z = x.movedim(dim, -1)
    shape = z.shape
    if z.numel() == 0:
        return x.clone()
    rows = z.contiguous().reshape(-1, shape[-1])
    p = _SparsemaxFunction.apply(rows, name)
    return p.reshape(shape).movedim(-1, dim)
