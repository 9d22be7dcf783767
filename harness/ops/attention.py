"""``masked_attention``: softmax(q kᵀ / √d_h) v with key padding masks and an optional local window.

Where it comes from. SignFuse's CMFA block (Sec. 3.4, eqs. 8–9) runs two multi-head cross
attentions, O_v→s = softmax(Q_v K_sᵀ / √d_k) V_s and O_s→v = softmax(Q_s K_vᵀ / √d_k) V_v, over
padded batches; HFA's temporal encoder runs window-7 self-attention (query i sees keys j with
|i − j| ≤ w // 2). Both are this op: q (B, H, Tq, d_h), k / v (B, H, Tk, d_h), ``key_mask``
(B, Tk) bool with True = valid key, ``window`` an int w (self-attention only, Tq == Tk) or None.

Semantics shared by every backend:

* softmax scale 1/√d_h; masked keys (padding, or outside the window) get probability exactly 0;
* a query row whose keys are *all* masked outputs zeros (not the NaN of a plain softmax over
  −inf) and receives zero gradient; its logsumexp is stored as +inf so the backward's
  P = exp(S − lse) is exactly 0 there;
* NaN / Inf in q, k or v propagate (never cleaned): a row that attends a non-finite key / value
  is non-finite. A NaN in a key / value that a row does NOT attend may still reach that row of
  the same (b, h) in the reference, Triton and CUDA backends (0 · NaN inside the dense / blocked
  P @ V product); the native CPU kernel skips masked keys entirely. Other (b, h) are unaffected.

Design (FlashAttention-2, Dao 2023). The Triton and CUDA kernels never materialise the Tq×Tk score
matrix: a program owns a block of query rows, streams key / value blocks through an online softmax
(running max m, running sum l, rescaled accumulator), and writes the output plus the per-row
logsumexp lse = m + log l in fp32 — the only extra tensor saved for backward. The backward
recomputes P = exp(q kᵀ·scale − lse) blockwise: D = rowsum(dO ⊙ O) is precomputed (a cheap
elementwise torch reduction), one kernel owns a key block and loops over query blocks to
accumulate dK and dV (no atomics), a second owns a query block and loops over key blocks for dQ.
With a window only the key blocks that can intersect the band are visited. fp32 inputs use IEEE
fp32 dots (``input_precision="ieee"``) so fp32 results match the reference to ~1e-5; fp16 / bf16
use tensor cores with fp32 accumulation, statistics always fp32.

The native CPU kernel (csrc/attention/cpu.cpp) is the same FlashAttention-2 algorithm on 48-query
× 64-key blocks (online softmax, register-blocked GEMM tiles from csrc/cpu_tile.h, valid keys
gathered once per head so masked keys are never read; backward one task per (b, h)), OpenMP over
(b, h, query block); it computes in fp32 (fp64 for fp64 inputs; fp16 / bf16 inputs are upcast
here and cast back). The CUDA kernel (csrc/attention/cuda.cu) uses a warp
per query row (forward, dQ) or per key row (dK, dV) with K/V tiles staged in shared memory.
"""

from __future__ import annotations

import math

import torch

from harness.ops import _native
from harness.ops.dispatch import resolve

try:  # Triton is optional: without it the backend is reported unavailable.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only on machines without triton
    triton = None

MAX_HEAD_DIM_GPU = 256  # Triton / CUDA kernels keep a d_h-wide row in registers.


# --------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------


def _allowed_mask(
    key_mask: torch.Tensor | None, window: int | None, tq: int, tk: int, device: torch.device
) -> torch.Tensor | None:
    """(B | 1, 1, Tq, Tk) bool: which (query, key) pairs may attend; None when all may."""
    allowed = None
    if key_mask is not None:
        allowed = key_mask[:, None, None, :]
    if window is not None:
        i = torch.arange(tq, device=device)[:, None]
        j = torch.arange(tk, device=device)[None, :]
        band = ((i - j).abs() <= window // 2)[None, None]
        allowed = band if allowed is None else allowed & band
    return allowed


def masked_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    window: int | None = None,
) -> torch.Tensor:
    """Ground truth: dense scores, explicit masking, softmax; all-masked rows give zeros.

    Computes in fp32 for half inputs (fp64 stays fp64) and returns the input dtype.
    """
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    qc, kc, vc = q.to(compute), k.to(compute), v.to(compute)
    scores = qc @ kc.transpose(-1, -2) / math.sqrt(q.shape[-1])
    allowed = _allowed_mask(key_mask, window, q.shape[-2], k.shape[-2], q.device)
    if allowed is None:
        return (torch.softmax(scores, dim=-1) @ vc).to(q.dtype)
    scores = scores.masked_fill(~allowed, float("-inf"))
    # Softmax is shift invariant, so the (detached) row max only guards exp against overflow; a
    # row with no allowed key has max −inf, replaced by 0 so exp(−inf − 0) = 0 and the row sums
    # to 0, which we divide by 1 instead: output 0, gradient 0.
    row_max = scores.detach().amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isneginf(row_max), torch.zeros_like(row_max), row_max)
    weights = torch.exp(scores - row_max)
    denom = weights.sum(dim=-1, keepdim=True)
    probs = weights / torch.where(denom > 0, denom, torch.ones_like(denom))
    return (probs @ vc).to(q.dtype)


# --------------------------------------------------------------------------------------------
# Triton
# --------------------------------------------------------------------------------------------

if triton is not None:

    @triton.jit
    def _allowed_block(
        offs_m, offs_n, Tk, mask_row_ptr, half_window, HAS_MASK: tl.constexpr,
        WINDOWED: tl.constexpr,
    ):
        """(BLOCK_M, BLOCK_N) bool: key in range, not padded, inside the window."""
        n_valid = offs_n < Tk
        allowed = (offs_m[:, None] >= 0) & n_valid[None, :]
        if HAS_MASK:
            km = tl.load(mask_row_ptr + offs_n, mask=n_valid, other=0)
            allowed = allowed & (km != 0)[None, :]
        if WINDOWED:
            diff = offs_m[:, None] - offs_n[None, :]
            allowed = allowed & (diff <= half_window) & (diff >= -half_window)
        return allowed

    @triton.jit
    def _allowed_block_t(
        offs_n, offs_m, Tk, mask_row_ptr, half_window, HAS_MASK: tl.constexpr,
        WINDOWED: tl.constexpr,
    ):
        """(BLOCK_N, BLOCK_M) bool: :func:`_allowed_block` transposed (keys on rows)."""
        n_valid = offs_n < Tk
        allowed = n_valid[:, None] & (offs_m[None, :] >= 0)
        if HAS_MASK:
            km = tl.load(mask_row_ptr + offs_n, mask=n_valid, other=0)
            allowed = allowed & (km != 0)[:, None]
        if WINDOWED:
            diff = offs_m[None, :] - offs_n[:, None]
            allowed = allowed & (diff <= half_window) & (diff >= -half_window)
        return allowed

    @triton.jit
    def _band_range(pid, BLOCK_OWN: tl.constexpr, BLOCK_OTHER: tl.constexpr, half_window, limit,
                    WINDOWED: tl.constexpr):
        """[lo, hi) of the other axis that block ``pid`` of BLOCK_OWN rows can see: everything
        without a window, else the band ±half_window around the block (lo aligned to the other
        axis' block size so the loop's tiles stay aligned)."""
        if WINDOWED:
            lo = tl.maximum(pid * BLOCK_OWN - half_window, 0)
            lo = (lo // BLOCK_OTHER) * BLOCK_OTHER
            hi = tl.minimum(pid * BLOCK_OWN + BLOCK_OWN + half_window, limit)
        else:
            lo = 0
            hi = limit
        return lo, hi

    @triton.jit
    def _attn_fwd_kernel(
        Q, K, V, Mask, Out, LSE, H, Tq, Tk, dh, scale, half_window,
        HAS_MASK: tl.constexpr, WINDOWED: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        bh = tl.program_id(1)
        b = bh // H
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        m_valid = offs_m < Tq
        d_valid = offs_d < dh
        q_base = Q + bh.to(tl.int64) * Tq * dh
        k_base = K + bh.to(tl.int64) * Tk * dh
        v_base = V + bh.to(tl.int64) * Tk * dh
        mask_row = Mask + b.to(tl.int64) * Tk
        q = tl.load(
            q_base + offs_m[:, None] * dh + offs_d[None, :],
            mask=m_valid[:, None] & d_valid[None, :], other=0.0,
        )
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        lo, hi = _band_range(pid_m, BLOCK_M, BLOCK_N, half_window, Tk, WINDOWED)
        for start_n in range(lo, hi, BLOCK_N):
            offs_n = start_n + tl.arange(0, BLOCK_N)
            n_valid = offs_n < Tk
            kv_mask = n_valid[:, None] & d_valid[None, :]
            k = tl.load(k_base + offs_n[:, None] * dh + offs_d[None, :], mask=kv_mask, other=0.0)
            v = tl.load(v_base + offs_n[:, None] * dh + offs_d[None, :], mask=kv_mask, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
            allowed = _allowed_block(offs_m, offs_n, Tk, mask_row, half_window, HAS_MASK, WINDOWED)
            s = tl.where(allowed, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            # A row with no allowed key yet keeps m = −inf; shift by 0 there (avoids −inf − −inf).
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            p = tl.where(allowed, tl.exp(s - m_safe[:, None]), 0.0)
            corr = tl.exp(m_i - m_safe)
            l_i = l_i * corr + tl.sum(p, 1)
            acc = acc * corr[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
            m_i = m_new
        has_key = l_i > 0
        out = acc / tl.where(has_key, l_i, 1.0)[:, None]
        lse = tl.where(has_key, m_i + tl.log(tl.where(has_key, l_i, 1.0)), float("inf"))
        tl.store(
            Out + bh.to(tl.int64) * Tq * dh + offs_m[:, None] * dh + offs_d[None, :],
            out.to(Out.dtype.element_ty), mask=m_valid[:, None] & d_valid[None, :],
        )
        tl.store(LSE + bh.to(tl.int64) * Tq + offs_m, lse, mask=m_valid)

    @triton.jit
    def _attn_bwd_dkdv_kernel(
        Q, K, V, Mask, DO, LSE, Delta, DK, DV, H, Tq, Tk, dh, scale, half_window,
        HAS_MASK: tl.constexpr, WINDOWED: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        pid_n = tl.program_id(0)
        bh = tl.program_id(1)
        b = bh // H
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        n_valid = offs_n < Tk
        d_valid = offs_d < dh
        kv_mask = n_valid[:, None] & d_valid[None, :]
        kv_off = bh.to(tl.int64) * Tk * dh + offs_n[:, None] * dh + offs_d[None, :]
        q_base = Q + bh.to(tl.int64) * Tq * dh
        do_base = DO + bh.to(tl.int64) * Tq * dh
        row_base = bh.to(tl.int64) * Tq
        mask_row = Mask + b.to(tl.int64) * Tk
        k = tl.load(K + kv_off, mask=kv_mask, other=0.0)
        v = tl.load(V + kv_off, mask=kv_mask, other=0.0)
        dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        lo, hi = _band_range(pid_n, BLOCK_N, BLOCK_M, half_window, Tq, WINDOWED)
        for start_m in range(lo, hi, BLOCK_M):
            offs_m = start_m + tl.arange(0, BLOCK_M)
            m_valid = offs_m < Tq
            # Everything in the key-major orientation (BLOCK_N, BLOCK_M): Pᵀ and dSᵀ come out of
            # the dots already transposed, so no computed tile is transposed (in fp32's FMA
            # layout that went through local memory: thousands of spill bytes on sm_80 / sm_90).
            qt = tl.load(q_base + offs_m[None, :] * dh + offs_d[:, None],
                         mask=d_valid[:, None] & m_valid[None, :], other=0.0)  # (BLOCK_D, BLOCK_M)
            do = tl.load(do_base + offs_m[:, None] * dh + offs_d[None, :],
                         mask=m_valid[:, None] & d_valid[None, :], other=0.0)
            lse = tl.load(LSE + row_base + offs_m, mask=m_valid, other=float("inf"))
            delta = tl.load(Delta + row_base + offs_m, mask=m_valid, other=0.0)
            st = tl.dot(k, qt, input_precision=PRECISION) * scale  # Sᵀ (BLOCK_N, BLOCK_M)
            allowed = _allowed_block_t(offs_n, offs_m, Tk, mask_row, half_window, HAS_MASK,
                                       WINDOWED) & m_valid[None, :]
            pt = tl.where(allowed, tl.exp(st - lse[None, :]), 0.0)
            dv += tl.dot(pt.to(do.dtype), do, input_precision=PRECISION)
            dpt = tl.dot(v, tl.trans(do), input_precision=PRECISION)
            dst = pt * (dpt - delta[None, :])
            dk += tl.dot(dst.to(qt.dtype), tl.trans(qt), input_precision=PRECISION)
        dk = dk * scale
        tl.store(DK + kv_off, dk.to(DK.dtype.element_ty), mask=kv_mask)
        tl.store(DV + kv_off, dv.to(DV.dtype.element_ty), mask=kv_mask)

    @triton.jit
    def _attn_bwd_dq_kernel(
        Q, K, V, Mask, DO, LSE, Delta, DQ, H, Tq, Tk, dh, scale, half_window,
        HAS_MASK: tl.constexpr, WINDOWED: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        bh = tl.program_id(1)
        b = bh // H
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, BLOCK_D)
        m_valid = offs_m < Tq
        d_valid = offs_d < dh
        qo_mask = m_valid[:, None] & d_valid[None, :]
        qo_off = bh.to(tl.int64) * Tq * dh + offs_m[:, None] * dh + offs_d[None, :]
        k_base = K + bh.to(tl.int64) * Tk * dh
        v_base = V + bh.to(tl.int64) * Tk * dh
        mask_row = Mask + b.to(tl.int64) * Tk
        q = tl.load(Q + qo_off, mask=qo_mask, other=0.0)
        do = tl.load(DO + qo_off, mask=qo_mask, other=0.0)
        lse = tl.load(LSE + bh.to(tl.int64) * Tq + offs_m, mask=m_valid, other=float("inf"))
        delta = tl.load(Delta + bh.to(tl.int64) * Tq + offs_m, mask=m_valid, other=0.0)
        dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        lo, hi = _band_range(pid_m, BLOCK_M, BLOCK_N, half_window, Tk, WINDOWED)
        for start_n in range(lo, hi, BLOCK_N):
            offs_n = start_n + tl.arange(0, BLOCK_N)
            kv_mask = (offs_n < Tk)[:, None] & d_valid[None, :]
            k = tl.load(k_base + offs_n[:, None] * dh + offs_d[None, :], mask=kv_mask, other=0.0)
            v = tl.load(v_base + offs_n[:, None] * dh + offs_d[None, :], mask=kv_mask, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
            allowed = _allowed_block(offs_m, offs_n, Tk, mask_row, half_window, HAS_MASK, WINDOWED)
            allowed = allowed & m_valid[:, None]
            p = tl.where(allowed, tl.exp(s - lse[:, None]), 0.0)
            dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
            ds = p * (dp - delta[:, None])
            dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
        dq = dq * scale
        tl.store(DQ + qo_off, dq.to(DQ.dtype.element_ty), mask=qo_mask)


def _triton_config(q: torch.Tensor) -> tuple[int, int, int, str]:
    return triton_config(q.shape[-1], q.dtype, q.is_cuda)


def triton_warps(dh: int, dtype: torch.dtype, cuda: bool) -> int:
    """num_warps of the three kernels: 8 on a GPU (with 4, the backward kernels spill on
    sm_80 / sm_90, ``signbench kernels compile``), except 4 for fp16 / bf16 at dh ≤ 16, whose
    64 × 32 tiles spill the dK / dV kernel on 8 (ptxas caps it at 128 registers)."""
    if not cuda:
        return 4
    return 4 if dtype != torch.float32 and dh <= 16 else 8


def triton_config(dh: int, dtype: torch.dtype, cuda: bool) -> tuple[int, int, int, str]:
    """(BLOCK_M, BLOCK_N, BLOCK_D, dot precision) of every kernel for head dim ``dh``.

    fp32 runs its dots in IEEE precision (FMA, operands held in registers), so its tiles are
    32 × 32: at 64 × 64 (or 64 × 32 for dh = 128) the three kernels spill on sm_80 / sm_90. For
    fp16 / bf16, 64 × 64 spilled the dK / dV kernel at dh = 64 on sm_80; 64 × 32 up to
    dh = 128 does not (with :func:`triton_warps`' warps).
    """
    block_d = max(16, triton.next_power_of_2(dh))
    if not cuda:  # interpreter: small blocks so short test sequences still span several
        block_m = block_n = 16
    elif dtype == torch.float32 or block_d > 128:
        block_m = block_n = 32
    else:
        block_m, block_n = 64, 32
    precision = "ieee" if dtype == torch.float32 else "tf32"
    return block_m, block_n, block_d, precision


def _mask_arg(key_mask: torch.Tensor | None, q: torch.Tensor) -> torch.Tensor:
    if key_mask is None:
        return torch.ones(1, dtype=torch.uint8, device=q.device)  # never read
    return key_mask.to(torch.uint8).contiguous()


def _fwd_triton(q, k, v, key_mask, half_window):
    B, H, Tq, dh = q.shape
    Tk = k.shape[2]
    bm, bn, bd, precision = _triton_config(q)
    out = torch.empty_like(q)
    lse = torch.empty(B, H, Tq, dtype=torch.float32, device=q.device)
    grid = (triton.cdiv(Tq, bm), B * H)
    _attn_fwd_kernel[grid](
        q, k, v, _mask_arg(key_mask, q), out, lse, H, Tq, Tk, dh, 1.0 / math.sqrt(dh),
        max(half_window, 0), HAS_MASK=key_mask is not None, WINDOWED=half_window >= 0,
        PRECISION=precision, BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=bd,
        num_warps=triton_warps(dh, q.dtype, q.is_cuda),
    )
    return out, lse


def _bwd_triton(q, k, v, key_mask, half_window, out, lse, dout):
    dout = dout.contiguous()
    B, H, Tq, dh = q.shape
    Tk = k.shape[2]
    bm, bn, bd, precision = _triton_config(q)
    delta = (dout.float() * out.float()).sum(-1).contiguous()  # D = rowsum(dO ⊙ O), fp32
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    mask = _mask_arg(key_mask, q)
    common = dict(
        HAS_MASK=key_mask is not None, WINDOWED=half_window >= 0, PRECISION=precision,
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=bd, num_warps=triton_warps(dh, q.dtype, q.is_cuda),
    )
    scale, hw = 1.0 / math.sqrt(dh), max(half_window, 0)
    _attn_bwd_dkdv_kernel[(triton.cdiv(Tk, bn), B * H)](
        q, k, v, mask, dout, lse, delta, dk, dv, H, Tq, Tk, dh, scale, hw, **common
    )
    _attn_bwd_dq_kernel[(triton.cdiv(Tq, bm), B * H)](
        q, k, v, mask, dout, lse, delta, dq, H, Tq, Tk, dh, scale, hw, **common
    )
    return dq, dk, dv


# --------------------------------------------------------------------------------------------
# Native (C++ on CPU, CUDA on GPU)
# --------------------------------------------------------------------------------------------


def _heads_interleaved(*ts: torch.Tensor) -> bool:
    """Whether the fp32 CPU kernels can read ``ts`` in place: each a (B, T, H, d_h)-contiguous
    tensor seen as (B, H, T, d_h) — the heads of a projection split without a copy."""
    return all(not t.is_cuda and t.dtype == torch.float32 and t.transpose(1, 2).is_contiguous()
               for t in ts)


def _interleaved_like(t: torch.Tensor) -> torch.Tensor:
    """An uninitialised (B, H, T, d_h) tensor like ``t`` in (B, T, H, d_h) memory."""
    B, H, T, dh = t.shape
    return torch.empty(B, T, H, dh, dtype=t.dtype, device=t.device).transpose(1, 2)


def _fwd_native(q, k, v, key_mask, half_window):
    orig = q.dtype
    cd = _native.compute_dtype(q)
    interleaved = _heads_interleaved(q, k, v)
    if not interleaved:
        q, k, v = (t.to(cd).contiguous() for t in (q, k, v))
    code = _native.dtype_code(q, "masked_attention q", _native.allowed_dtypes(q))
    B, H, Tq, dh = q.shape
    Tk = k.shape[2]
    lse_dtype = torch.float64 if cd == torch.float64 else torch.float32
    out = _interleaved_like(q) if interleaved else torch.empty_like(q)
    lse = torch.empty(B, H, Tq, dtype=lse_dtype, device=q.device)
    mask = key_mask.to(torch.uint8).contiguous() if key_mask is not None else None
    args = (
        q.data_ptr(), k.data_ptr(), v.data_ptr(), 0 if mask is None else mask.data_ptr(),
        out.data_ptr(), lse.data_ptr(), B, H, Tq, Tk, dh, half_window, 1.0 / math.sqrt(dh), code,
    )
    kern = _native.kernels(q.device)
    if q.is_cuda:
        kern.attention_forward(*args, _native.stream_handle(q.device))
    else:
        kern.attention_forward(*args, heads_interleaved=interleaved)
    return out.to(orig), lse


def _bwd_native(q, k, v, key_mask, half_window, out, lse, dout):
    orig = q.dtype
    cd = _native.compute_dtype(q)
    interleaved = _heads_interleaved(q, k, v, out)
    if interleaved:  # the gradients come back in the inputs' layout: no copies either way
        if not _heads_interleaved(dout):
            dout = dout.transpose(1, 2).contiguous().transpose(1, 2)
        dq, dk, dv = _interleaved_like(q), _interleaved_like(k), _interleaved_like(v)
    else:
        q, k, v, out, dout = (t.to(cd).contiguous() for t in (q, k, v, out, dout))
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    code = _native.dtype_code(q, "masked_attention q", _native.allowed_dtypes(q))
    B, H, Tq, dh = q.shape
    Tk = k.shape[2]
    mask = key_mask.to(torch.uint8).contiguous() if key_mask is not None else None
    args = (
        q.data_ptr(), k.data_ptr(), v.data_ptr(), 0 if mask is None else mask.data_ptr(),
        out.data_ptr(), dout.data_ptr(), lse.data_ptr(), dq.data_ptr(), dk.data_ptr(),
        dv.data_ptr(), B, H, Tq, Tk, dh, half_window, 1.0 / math.sqrt(dh), code,
    )
    kern = _native.kernels(q.device)
    if q.is_cuda:
        delta = torch.empty(B, H, Tq, dtype=torch.float32, device=q.device)
        kern.attention_backward(*args, delta.data_ptr(), _native.stream_handle(q.device))
    else:
        kern.attention_backward(*args, heads_interleaved=interleaved)
    return dq.to(orig), dk.to(orig), dv.to(orig)


_FORWARD = {"triton": _fwd_triton, "native": _fwd_native}
_BACKWARD = {"triton": _bwd_triton, "native": _bwd_native}


class _MaskedAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, key_mask, half_window, backend):
        out, lse = _FORWARD[backend](q, k, v, key_mask, half_window)
        ctx.save_for_backward(q, k, v, key_mask, out, lse)
        ctx.half_window, ctx.backend = half_window, backend
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, key_mask, out, lse = ctx.saved_tensors
        dq, dk, dv = _BACKWARD[ctx.backend](q, k, v, key_mask, ctx.half_window, out, lse, dout)
        return dq, dk, dv, None, None, None


def _validate(q, k, v, key_mask, window) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"masked_attention: {name} must be a tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"masked_attention: {name} must be 4-D (B, H, T, d_h), got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"masked_attention: {name} must be floating point, got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"masked_attention: {name} is on {t.device} but q is on {q.device}")
        if t.dtype != q.dtype:
            raise TypeError(f"masked_attention: {name} is {t.dtype} but q is {q.dtype}")
    B, H, Tq, dh = q.shape
    if k.shape[0] != B or k.shape[1] != H or k.shape[3] != dh:
        raise ValueError(
            f"masked_attention: k has shape {tuple(k.shape)}, expected ({B}, {H}, Tk, {dh}) "
            f"to match q {tuple(q.shape)}"
        )
    if v.shape != k.shape:
        raise ValueError(
            f"masked_attention: v has shape {tuple(v.shape)} but k has {tuple(k.shape)}"
        )
    Tk = k.shape[2]
    if key_mask is not None:
        if not isinstance(key_mask, torch.Tensor) or key_mask.dtype != torch.bool:
            got = key_mask.dtype if isinstance(key_mask, torch.Tensor) else type(key_mask).__name__
            raise TypeError(f"masked_attention: key_mask must be a bool tensor, got {got}")
        if tuple(key_mask.shape) != (B, Tk):
            raise ValueError(
                f"masked_attention: key_mask has shape {tuple(key_mask.shape)}, "
                f"expected ({B}, {Tk})"
            )
        if key_mask.device != q.device:
            raise ValueError(
                f"masked_attention: key_mask is on {key_mask.device} but q is on {q.device}"
            )
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(
                f"masked_attention: window must be a positive int or None, got {window!r}"
            )
        if Tq != Tk:
            raise ValueError(
                f"masked_attention: window (local self-attention) needs Tq == Tk, got Tq={Tq}, "
                f"Tk={Tk}"
            )


def masked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    window: int | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """softmax(q kᵀ / √d_h + mask) v, flash-attention style, on the chosen backend.

    Args:
        q: (B, H, Tq, d_h) queries.
        k, v: (B, H, Tk, d_h) keys and values (same dtype and device as q).
        key_mask: (B, Tk) bool, True = valid key; None = all keys valid.
        window: int w for local-window self-attention (needs Tq == Tk): query i attends keys j
            with |i − j| ≤ w // 2 (w = 7 → ±3); None = no window.
        backend: "torch" | "triton" | "native" | None (see ``harness.ops.dispatch``).

    Returns:
        (B, H, Tq, d_h) in q's dtype. Query rows with no valid key are zeros and get zero
        gradient. NaN / Inf in the inputs propagate (see the module docstring for the detail).
    """
    _validate(q, k, v, key_mask, window)
    name = resolve(backend, q.device)
    if name == "torch":
        return masked_attention_reference(q, k, v, key_mask, window)
    dh, Tk = q.shape[-1], k.shape[2]
    if q.numel() == 0 or Tk == 0:  # nothing to attend: zeros, still differentiable
        return q * 0.0
    if q.is_cuda and dh > MAX_HEAD_DIM_GPU:
        raise ValueError(
            f"masked_attention: head dim {dh} exceeds {MAX_HEAD_DIM_GPU} for the {name} GPU "
            "kernels; use backend='torch'"
        )
    if name == "triton" and q.dtype == torch.float64:
        raise TypeError("masked_attention (triton): float64 is not supported; use native or torch")
    if name == "native" and q.is_cuda and q.dtype == torch.float64:
        raise TypeError("masked_attention (native CUDA): float64 is not supported; use torch")
    half_window = -1 if window is None else window // 2
    if not (name == "native" and _heads_interleaved(q, k, v)):  # those are read in place
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    return _MaskedAttentionFunction.apply(q, k, v, key_mask, half_window, name)
