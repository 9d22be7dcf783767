"""Gated fusion: SignFuse's CMFA block (Sec. 3.4, eqs. 6–11) and its fused gate epilogue.

``gated_blend`` is the epilogue of eqs. 10–11 as ONE op::

    α = σ([O_v→s; O_s→v] W_gᵀ + b_g)              (eq. 10; W_g stored as nn.Linear, (d, 2d))
    y = LN(α · O_v→s + (1 − α) · O_s→v) + (F_v + F_s) / 2     (eq. 11, F_res = (F̂_v + F̂_s)/2)

``GatedCrossAttention`` is the whole block: per-modality Q/K/V projections (eqs. 6–7), the two
cross attentions (eqs. 8–9, ``harness.ops.attention.masked_attention``; heads concatenated, no
output projection, as in the paper), then ``gated_blend``. ``mode="gate"`` drops the attention and
gates the inputs directly (α = σ(gate([F_v; F_s])), y = LN(α F_v + (1 − α) F_s) + (F_v + F_s)/2):
SignBind's adaptive gate between manual and lip streams. ``LocalWindowSelfAttention`` is HFA's
window-7 temporal self-attention built on the same attention op.

Design of the epilogue kernel (Triton): a program owns BLOCK_M rows and ALL d output columns
(d ≤ 1024), so the gate pre-activation z = [O_vs; O_sv] W_gᵀ never leaves registers: the K = 2d
reduction is two loops over K tiles (the O_vs half against W_g[:, :d], the O_sv half against
W_g[:, d:] — the concatenation is never materialised) with ``tl.dot`` into a (BLOCK_M, d) fp32
accumulator, then sigmoid, blend, LayerNorm statistics (fp32) and the residual happen in
registers and only y is written — plus α (fp32, N×d) and the per-row mean / rstd that the backward
needs (saving α avoids recomputing the GEMM). The backward is a fused row kernel for the
LN / blend / sigmoid part — it writes dz = dα · α(1 − α), the direct blend gradients dh·α and
dh·(1 − α), and per-program partial sums of dγ, dβ (no atomics, deterministic) — followed by
plain GEMMs for the gate: dO_vs += dz W_g[:, :d], dO_sv += dz W_g[:, d:], dW_g = dzᵀ [O_vs; O_sv],
db_g = Σ dz (cuBLAS / MKL do these better than a hand-written kernel). dF_v = dF_s = dy / 2.

The native CPU kernel does the same split (OpenMP over row blocks; z is a blocked GEMM against the
gate weights packed once per call, and the sigmoid / blend / LayerNorm / residual run on each row
block while it is in cache); the CUDA
forward stages a few rows of [O_vs; O_sv] in shared memory and gives each thread a few output
columns (fp32 math, fp16 / bf16 / fp32 storage). All statistics are fp32 (fp64 for fp64 inputs on
CPU). NaN / Inf in any input propagate to the affected rows (never cleaned).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from harness.ops import _native
from harness.ops.attention import masked_attention
from harness.ops.dispatch import resolve

try:  # Triton is optional: without it the backend is reported unavailable.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only on machines without triton
    triton = None

MAX_DIM_GPU = 1024  # the fused GPU kernels keep a full d-wide row block in registers
_BWD_ROWS = 16  # rows per backward program / CPU chunk (one partial dγ, dβ row each)


# --------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------


def gated_blend_reference(
    o_vs: torch.Tensor,
    o_sv: torch.Tensor,
    fv: torch.Tensor,
    fs: torch.Tensor,
    gate_weight: torch.Tensor,
    gate_bias: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Ground truth for eqs. 10–11 (fp32 math for half inputs, fp64 for fp64)."""
    out_dtype = o_vs.dtype
    compute = torch.float64 if out_dtype == torch.float64 else torch.float32
    o_vs, o_sv, fv, fs, w, b, lw, lb = (
        t.to(compute) for t in (o_vs, o_sv, fv, fs, gate_weight, gate_bias, ln_weight, ln_bias)
    )
    alpha = torch.sigmoid(torch.cat([o_vs, o_sv], dim=-1) @ w.t() + b)
    mixed = alpha * o_vs + (1 - alpha) * o_sv
    y = F.layer_norm(mixed, (mixed.shape[-1],), lw, lb, eps) + (fv + fs) / 2
    return y.to(out_dtype)


# --------------------------------------------------------------------------------------------
# Triton
# --------------------------------------------------------------------------------------------

if triton is not None:

    @triton.jit
    def _gate_fwd_kernel(
        OVS, OSV, FV, FS, W, Bg, LW, LB, Y, Alpha, Mean, Rstd, N, d, eps,
        PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        pid = tl.program_id(0)
        rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.arange(0, BLOCK_D)
        r_valid = rows < N
        c_valid = cols < d
        row_off = rows.to(tl.int64)[:, None] * d
        # z = O_vs W_g[:, :d]ᵀ + O_sv W_g[:, d:]ᵀ, K tiled, all d columns accumulated at once.
        # Two K loops (one per half of W_g) so only one A tile and one W tile are live at a time.
        acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        w_cols = W + cols[None, :].to(tl.int64) * (2 * d)
        for k0 in range(0, d, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_valid = ks < d
            a = tl.load(OVS + row_off + ks[None, :], mask=r_valid[:, None] & k_valid[None, :],
                        other=0.0)
            w = tl.load(w_cols + ks[:, None], mask=k_valid[:, None] & c_valid[None, :], other=0.0)
            acc += tl.dot(a, w, input_precision=PRECISION)  # (BLOCK_K, BLOCK_D) tile of W_gᵀ
        for k0 in range(0, d, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_valid = ks < d
            a = tl.load(OSV + row_off + ks[None, :], mask=r_valid[:, None] & k_valid[None, :],
                        other=0.0)
            w = tl.load(w_cols + d + ks[:, None], mask=k_valid[:, None] & c_valid[None, :],
                        other=0.0)
            acc += tl.dot(a, w, input_precision=PRECISION)
        # Epilogue ordered so that few (BLOCK_M, BLOCK_D) tiles are live at once: alpha is
        # stored as soon as it is used, the residual inputs are loaded last.
        bias = tl.load(Bg + cols, mask=c_valid, other=0.0).to(tl.float32)
        alpha = tl.sigmoid(acc + bias[None, :])
        m2 = r_valid[:, None] & c_valid[None, :]
        offs = row_off + cols[None, :]
        tl.store(Alpha + offs, alpha, mask=m2)
        osv = tl.load(OSV + offs, mask=m2, other=0.0).to(tl.float32)
        h = osv + alpha * (tl.load(OVS + offs, mask=m2, other=0.0).to(tl.float32) - osv)
        h = tl.where(m2, h, 0.0)
        mean = tl.sum(h, 1) / d
        diff = tl.where(m2, h - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(diff * diff, 1) / d + eps)
        tl.store(Mean + rows, mean, mask=r_valid)
        tl.store(Rstd + rows, rstd, mask=r_valid)
        lw = tl.load(LW + cols, mask=c_valid, other=0.0).to(tl.float32)
        lb = tl.load(LB + cols, mask=c_valid, other=0.0).to(tl.float32)
        y = diff * rstd[:, None] * lw[None, :] + lb[None, :]
        y += 0.5 * tl.load(FV + offs, mask=m2, other=0.0).to(tl.float32)
        y += 0.5 * tl.load(FS + offs, mask=m2, other=0.0).to(tl.float32)
        tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=m2)

    @triton.jit
    def _gate_bwd_kernel(
        DY, OVS, OSV, Alpha, Mean, Rstd, LW, DZ, GVS, GSV, DLW, DLB, N, d,
        BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        pid = tl.program_id(0)
        rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.arange(0, BLOCK_D)
        r_valid = rows < N
        c_valid = cols < d
        m2 = r_valid[:, None] & c_valid[None, :]
        offs = rows.to(tl.int64)[:, None] * d + cols[None, :]
        dy = tl.load(DY + offs, mask=m2, other=0.0).to(tl.float32)
        ovs = tl.load(OVS + offs, mask=m2, other=0.0).to(tl.float32)
        osv = tl.load(OSV + offs, mask=m2, other=0.0).to(tl.float32)
        alpha = tl.load(Alpha + offs, mask=m2, other=0.0)
        mean = tl.load(Mean + rows, mask=r_valid, other=0.0)
        rstd = tl.load(Rstd + rows, mask=r_valid, other=0.0)
        lw = tl.load(LW + cols, mask=c_valid, other=0.0).to(tl.float32)
        h = osv + alpha * (ovs - osv)
        xhat = tl.where(m2, (h - mean[:, None]) * rstd[:, None], 0.0)
        dxhat = dy * lw[None, :]
        c1 = tl.sum(dxhat * xhat, 1) / d
        c2 = tl.sum(dxhat, 1) / d
        dh = tl.where(m2, (dxhat - c2[:, None] - xhat * c1[:, None]) * rstd[:, None], 0.0)
        dz = dh * (ovs - osv) * alpha * (1.0 - alpha)
        g_vs = dh * alpha
        tl.store(DZ + offs, dz.to(DZ.dtype.element_ty), mask=m2)
        tl.store(GVS + offs, g_vs.to(GVS.dtype.element_ty), mask=m2)
        tl.store(GSV + offs, (dh - g_vs).to(GSV.dtype.element_ty), mask=m2)
        part = pid.to(tl.int64) * d + cols
        tl.store(DLW + part, tl.sum(dy * xhat, 0), mask=c_valid)
        tl.store(DLB + part, tl.sum(dy, 0), mask=c_valid)


def fwd_config(d: int, dtype: torch.dtype, cuda: bool) -> dict[str, Any]:
    """The forward kernel's launch parameters (constexprs, num_warps, num_stages) for width d."""
    block_d = max(16, triton.next_power_of_2(d))
    # The W tile (BLOCK_K, BLOCK_D) dominates shared memory (<= 64 KiB per stage, 2 stages).
    element = torch.empty(0, dtype=dtype).element_size()
    block_k = 32 if cuda and block_d * element <= 1024 else 16
    # num_warps 8 also for narrow rows: 4 spilled at d = 128 in fp32 on sm_80; fp32's FMA dot
    # with a second pipeline stage spilled at d = 512 on sm_80 (signbench kernels compile).
    fp32 = dtype == torch.float32
    return {"PRECISION": "ieee" if fp32 else "tf32", "BLOCK_M": 16,
            "BLOCK_D": block_d, "BLOCK_K": block_k, "num_warps": 8,
            "num_stages": 1 if fp32 else 2}


def bwd_config(d: int) -> dict[str, int]:
    """The row backward kernel's launch parameters for width d."""
    block_d = max(16, triton.next_power_of_2(d))
    # 16 rows of width 512 on 8 warps spilled on sm_80 / sm_90 (signbench kernels compile): 8 rows.
    rows = _BWD_ROWS if block_d < 512 else _BWD_ROWS // 2
    return {"BLOCK_M": rows, "BLOCK_D": block_d, "num_warps": 8 if block_d >= 512 else 4}


def _fwd_triton(ovs, osv, fv, fs, w, b, lw, lb, eps):
    N, d = ovs.shape
    config = fwd_config(d, ovs.dtype, ovs.is_cuda)
    y = torch.empty_like(ovs)
    alpha = torch.empty(N, d, dtype=torch.float32, device=ovs.device)
    mean = torch.empty(N, dtype=torch.float32, device=ovs.device)
    rstd = torch.empty_like(mean)
    _gate_fwd_kernel[(triton.cdiv(N, config["BLOCK_M"]),)](
        ovs, osv, fv, fs, w, b, lw, lb, y, alpha, mean, rstd, N, d, float(eps), **config,
    )
    return y, alpha, mean, rstd


def _bwd_rows_triton(dy, ovs, osv, alpha, mean, rstd, lw):
    N, d = ovs.shape
    config = bwd_config(d)
    programs = triton.cdiv(N, config["BLOCK_M"])
    dz, g_vs, g_sv = torch.empty_like(ovs), torch.empty_like(ovs), torch.empty_like(ovs)
    dlw = torch.empty(programs, d, dtype=torch.float32, device=ovs.device)
    dlb = torch.empty_like(dlw)
    _gate_bwd_kernel[(programs,)](
        dy, ovs, osv, alpha, mean, rstd, lw, dz, g_vs, g_sv, dlw, dlb, N, d, **config,
    )
    return dz, g_vs, g_sv, dlw.sum(0), dlb.sum(0)


# --------------------------------------------------------------------------------------------
# Native (C++ on CPU, CUDA on GPU)
# --------------------------------------------------------------------------------------------


def _stat_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _fwd_native(ovs, osv, fv, fs, w, b, lw, lb, eps):
    orig = ovs.dtype
    cd = _native.compute_dtype(ovs)
    ovs, osv, fv, fs, w, b, lw, lb = (
        t.to(cd).contiguous() for t in (ovs, osv, fv, fs, w, b, lw, lb)
    )
    code = _native.dtype_code(ovs, "gated_blend o_vs", _native.allowed_dtypes(ovs))
    N, d = ovs.shape
    y = torch.empty_like(ovs)
    alpha = torch.empty(N, d, dtype=_stat_dtype(ovs), device=ovs.device)
    mean = torch.empty(N, dtype=_stat_dtype(ovs), device=ovs.device)
    rstd = torch.empty_like(mean)
    ptrs = [t.data_ptr() for t in (ovs, osv, fv, fs, w, b, lw, lb, y, alpha, mean, rstd)]
    kern = _native.kernels(ovs.device)
    if ovs.is_cuda:
        kern.gated_blend_forward(*ptrs, N, d, float(eps), code, _native.stream_handle(ovs.device))
    else:
        kern.gated_blend_forward(*ptrs, N, d, float(eps), code)
    return y.to(orig), alpha, mean, rstd


def _bwd_rows_native(dy, ovs, osv, alpha, mean, rstd, lw):
    orig = ovs.dtype
    cd = _native.compute_dtype(ovs)
    dy, ovs, osv, lw = (t.to(cd).contiguous() for t in (dy, ovs, osv, lw))
    code = _native.dtype_code(ovs, "gated_blend o_vs", _native.allowed_dtypes(ovs))
    N, d = ovs.shape
    dz, g_vs, g_sv = torch.empty_like(ovs), torch.empty_like(ovs), torch.empty_like(ovs)
    kern = _native.kernels(ovs.device)
    # One partial dγ / dβ row per CUDA thread block, or per CPU chunk of _BWD_ROWS rows.
    parts = min(N, 1024) if ovs.is_cuda else -(-N // _BWD_ROWS)
    dlw = torch.empty(parts, d, dtype=_stat_dtype(ovs), device=ovs.device)
    dlb = torch.empty_like(dlw)
    ptrs = [t.data_ptr() for t in (dy, ovs, osv, alpha, mean, rstd, lw, dz, g_vs, g_sv, dlw, dlb)]
    if ovs.is_cuda:
        kern.gated_blend_backward(*ptrs, N, d, parts, code, _native.stream_handle(ovs.device))
    else:
        kern.gated_blend_backward(*ptrs, N, d, _BWD_ROWS, code)
    return dz.to(orig), g_vs.to(orig), g_sv.to(orig), dlw.sum(0), dlb.sum(0)


_FORWARD = {"triton": _fwd_triton, "native": _fwd_native}
_BACKWARD_ROWS = {"triton": _bwd_rows_triton, "native": _bwd_rows_native}


class _GatedBlendFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ovs, osv, fv, fs, w, b, lw, lb, eps, backend):
        y, alpha, mean, rstd = _FORWARD[backend](ovs, osv, fv, fs, w, b, lw, lb, eps)
        ctx.save_for_backward(ovs, osv, w, lw, alpha, mean, rstd)
        ctx.backend = backend
        return y

    @staticmethod
    def backward(ctx, dy):
        ovs, osv, w, lw, alpha, mean, rstd = ctx.saved_tensors
        dy = dy.contiguous()
        dz, g_vs, g_sv, dlw, dlb = _BACKWARD_ROWS[ctx.backend](dy, ovs, osv, alpha, mean, rstd, lw)
        d = ovs.shape[1]
        # The gate's GEMMs: z = [O_vs; O_sv] W_gᵀ + b_g.
        d_ovs = g_vs + dz @ w[:, :d]
        d_osv = g_sv + dz @ w[:, d:]
        dw = torch.cat([dz.t() @ ovs, dz.t() @ osv], dim=1)
        db = dz.sum(0, dtype=_stat_dtype(dz))
        d_res = dy * 0.5
        return (
            d_ovs, d_osv, d_res, d_res, dw, db.to(w.dtype), dlw.to(lw.dtype), dlb.to(lw.dtype),
            None, None,
        )


def _validate_blend(o_vs, o_sv, fv, fs, gate_weight, gate_bias, ln_weight, ln_bias) -> int:
    named = {
        "o_vs": o_vs, "o_sv": o_sv, "fv": fv, "fs": fs, "gate_weight": gate_weight,
        "gate_bias": gate_bias, "ln_weight": ln_weight, "ln_bias": ln_bias,
    }
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"gated_blend: {name} must be a tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"gated_blend: {name} must be floating point, got {t.dtype}")
        if t.device != o_vs.device:
            raise ValueError(f"gated_blend: {name} is on {t.device} but o_vs is on {o_vs.device}")
        if t.dtype != o_vs.dtype:
            raise TypeError(f"gated_blend: {name} is {t.dtype} but o_vs is {o_vs.dtype}")
    if o_vs.dim() < 1:
        raise ValueError("gated_blend: o_vs must have a feature dimension (..., d)")
    d = o_vs.shape[-1]
    for name in ("o_sv", "fv", "fs"):
        if named[name].shape != o_vs.shape:
            raise ValueError(
                f"gated_blend: {name} has shape {tuple(named[name].shape)} but o_vs has "
                f"{tuple(o_vs.shape)}"
            )
    if tuple(gate_weight.shape) != (d, 2 * d):
        raise ValueError(
            f"gated_blend: gate_weight has shape {tuple(gate_weight.shape)}, "
            f"expected ({d}, {2 * d})"
        )
    for name in ("gate_bias", "ln_weight", "ln_bias"):
        if tuple(named[name].shape) != (d,):
            raise ValueError(
                f"gated_blend: {name} has shape {tuple(named[name].shape)}, expected ({d},)"
            )
    return d


def gated_blend(
    o_vs: torch.Tensor,
    o_sv: torch.Tensor,
    fv: torch.Tensor,
    fs: torch.Tensor,
    gate_weight: torch.Tensor,
    gate_bias: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float = 1e-5,
    backend: str | None = None,
) -> torch.Tensor:
    """LN(α·o_vs + (1−α)·o_sv) + (fv + fs)/2 with α = σ([o_vs; o_sv] @ gate_weightᵀ + gate_bias).

    Args:
        o_vs, o_sv, fv, fs: (..., d), same shape, dtype and device.
        gate_weight: (d, 2d) (an ``nn.Linear(2d, d).weight``); gate_bias: (d,).
        ln_weight, ln_bias: (d,) LayerNorm affine parameters; eps: LayerNorm epsilon.
        backend: "torch" | "triton" | "native" | None (see ``harness.ops.dispatch``).

    Returns:
        y with the shape and dtype of o_vs; gradients flow to all eight tensors. NaN / Inf
        propagate to the rows that contain them.
    """
    d = _validate_blend(o_vs, o_sv, fv, fs, gate_weight, gate_bias, ln_weight, ln_bias)
    name = resolve(backend, o_vs.device)
    if name == "torch":
        return gated_blend_reference(
            o_vs, o_sv, fv, fs, gate_weight, gate_bias, ln_weight, ln_bias, eps
        )
    if o_vs.is_cuda and d > MAX_DIM_GPU:
        raise ValueError(
            f"gated_blend: d = {d} exceeds {MAX_DIM_GPU} for the fused {name} GPU kernel; "
            "use backend='torch'"
        )
    if name == "triton" and o_vs.dtype == torch.float64:
        raise TypeError("gated_blend (triton): float64 is not supported; use native or torch")
    if name == "native" and o_vs.is_cuda and o_vs.dtype == torch.float64:
        raise TypeError("gated_blend (native CUDA): float64 is not supported; use torch")
    shape = o_vs.shape
    if o_vs.numel() == 0:
        return gated_blend_reference(
            o_vs, o_sv, fv, fs, gate_weight, gate_bias, ln_weight, ln_bias, eps
        )
    flat = [t.reshape(-1, d).contiguous() for t in (o_vs, o_sv, fv, fs)]
    params = [t.contiguous() for t in (gate_weight, gate_bias, ln_weight, ln_bias)]
    y = _GatedBlendFunction.apply(*flat, *params, float(eps), name)
    return y.reshape(shape)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


def _split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    B, T, d = x.shape
    return x.view(B, T, n_heads, d // n_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    B, H, T, dh = x.shape
    return x.transpose(1, 2).reshape(B, T, H * dh)


def _check_sequence(name: str, x: torch.Tensor, d_model: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a (B, T, d) tensor, got {got}")
    if x.shape[-1] != d_model:
        raise ValueError(f"{name} has feature size {x.shape[-1]}, expected d_model = {d_model}")


def _check_mask(name: str, mask: torch.Tensor | None, x: torch.Tensor) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"{name} must be a bool tensor (True = valid), got {got}")
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)}, expected {tuple(x.shape[:2])} (B, T)"
        )


class GatedCrossAttention(nn.Module):
    """SignFuse's Cross-Modal Fusion Attention (CMFA, Sec. 3.4, eqs. 6–11).

    ``forward(fv, fs, mask_v=None, mask_s=None, backend=None)`` with fv (B, Tv, d), fs (B, Ts, d)
    and key-padding masks (B, T) bool (True = valid) returns (B, T, d)::

        O_v→s = MHA(q_v(fv), k_s(fs), v_s(fs), key mask = mask_s)     (eqs. 6–8)
        O_s→v = MHA(q_s(fs), k_v(fv), v_v(fv), key mask = mask_v)     (eq. 9)
        α = σ(gate([O_v→s; O_s→v]));  y = LN(α O_v→s + (1 − α) O_s→v) + (fv + fs) / 2

    Heads are concatenated without an output projection, as in the paper. The blend needs
    Tv == Ts (SignFuse aligns both streams to T'). Rows at padded query positions are computed
    like any other row (their attention still only sees valid keys) — callers should mask them.

    ``mode="gate"`` (constructor argument) is the attention-free variant: α = σ(gate([fv; fs])),
    y = LN(α fv + (1 − α) fs) + (fv + fs)/2 (SignBind's adaptive gate); it has no q/k/v
    projections, and the masks are accepted but unused (nothing attends).
    """

    def __init__(self, d_model: int, n_heads: int, mode: str = "cross", eps: float = 1e-5):
        super().__init__()
        if mode not in ("cross", "gate"):
            raise ValueError(f"GatedCrossAttention: mode must be 'cross' or 'gate', got {mode!r}")
        if mode == "cross" and (n_heads < 1 or d_model % n_heads):
            raise ValueError(
                f"GatedCrossAttention: d_model = {d_model} is not divisible by n_heads = {n_heads}"
            )
        self.d_model, self.n_heads, self.mode = d_model, n_heads, mode
        if mode == "cross":
            self.q_v = nn.Linear(d_model, d_model)
            self.k_v = nn.Linear(d_model, d_model)
            self.v_v = nn.Linear(d_model, d_model)
            self.q_s = nn.Linear(d_model, d_model)
            self.k_s = nn.Linear(d_model, d_model)
            self.v_s = nn.Linear(d_model, d_model)
        self.gate = nn.Linear(2 * d_model, d_model)
        self.norm = nn.LayerNorm(d_model, eps=eps)

    def _attend(self, q, k, v, key_mask, backend):
        H = self.n_heads
        out = masked_attention(
            _split_heads(q, H), _split_heads(k, H), _split_heads(v, H), key_mask, backend=backend
        )
        return _merge_heads(out)

    def forward(
        self,
        fv: torch.Tensor,
        fs: torch.Tensor,
        mask_v: torch.Tensor | None = None,
        mask_s: torch.Tensor | None = None,
        backend: str | None = None,
    ) -> torch.Tensor:
        _check_sequence("GatedCrossAttention: fv", fv, self.d_model)
        _check_sequence("GatedCrossAttention: fs", fs, self.d_model)
        if fv.shape[0] != fs.shape[0]:
            raise ValueError(
                f"GatedCrossAttention: fv has batch {fv.shape[0]} but fs has {fs.shape[0]}"
            )
        if fv.shape[1] != fs.shape[1]:
            raise ValueError(
                f"GatedCrossAttention: the gated blend needs Tv == Ts (align both streams to T' "
                f"first), got Tv = {fv.shape[1]}, Ts = {fs.shape[1]}"
            )
        _check_mask("GatedCrossAttention: mask_v", mask_v, fv)
        _check_mask("GatedCrossAttention: mask_s", mask_s, fs)
        if self.mode == "cross":
            o_vs = self._attend(self.q_v(fv), self.k_s(fs), self.v_s(fs), mask_s, backend)
            o_sv = self._attend(self.q_s(fs), self.k_v(fv), self.v_v(fv), mask_v, backend)
        else:
            o_vs, o_sv = fv, fs
        # Parameters follow the activations' dtype (e.g. fp16 projections under autocast).
        params = (self.gate.weight, self.gate.bias, self.norm.weight, self.norm.bias)
        params = tuple(p.to(o_vs.dtype) for p in params)
        return gated_blend(o_vs, o_sv, fv, fs, *params, self.norm.eps, backend=backend)


class LocalWindowSelfAttention(nn.Module):
    """HFA's local-window temporal self-attention: out(MHA(q(x), k(x), v(x))) where position i
    attends positions j with |i − j| ≤ window // 2 (window = 7 → ±3) and valid under ``mask``.

    ``forward(x, mask=None, backend=None)``: x (B, T, d), mask (B, T) bool (True = valid).
    Padded query rows are computed (they see only valid keys in their window; a row whose
    whole window is padded gives out-projection bias only) — callers should mask them.
    """

    def __init__(self, d_model: int, n_heads: int, window: int = 7):
        super().__init__()
        if n_heads < 1 or d_model % n_heads:
            raise ValueError(
                f"LocalWindowSelfAttention: d_model = {d_model} is not divisible by "
                f"n_heads = {n_heads}"
            )
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(
                f"LocalWindowSelfAttention: window must be a positive int, got {window!r}"
            )
        self.d_model, self.n_heads, self.window = d_model, n_heads, window
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, backend: str | None = None
    ) -> torch.Tensor:
        _check_sequence("LocalWindowSelfAttention: x", x, self.d_model)
        _check_mask("LocalWindowSelfAttention: mask", mask, x)
        H = self.n_heads
        att = masked_attention(
            _split_heads(self.q(x), H), _split_heads(self.k(x), H), _split_heads(self.v(x), H),
            mask, window=self.window, backend=backend,
        )
        return self.out(_merge_heads(att))
