"""``hyper_modulate`` and ``HyperFusion``: HyperSign's hypernetwork early fusion (dynamic MLP).

Implements HyperSign Sec. 2.2, eqs. 1–3: generators G_W, G_b read RGB features F_v and keypoint
features F_k and produce a per-sample, per-position weight W and bias b for a dynamic MLP:

    W = G_W(F_v, F_k),   b = G_b(F_v, F_k)                       (1), (2)
    F_f = σ(W ⊙ LayerNorm(F_v ⊙ F_k) + b)                          (3)

* ``hyper_modulate(fv, fk, gamma, beta, ln_weight, ln_bias, eps, activation)`` is eq. (3) with
  W = ``gamma`` and b = ``beta``: out = act(gamma ⊙ LN(fv ⊙ fk) + beta), LayerNorm over the last
  dim d with affine (ln_weight, ln_bias), act ∈ {None, "relu", "gelu" (exact erf), "sigmoid",
  "silu"}. ``hyper_modulate_reference`` is its torch ground truth.
* ``HyperFusion`` is the whole module with the generators (variants DSG, DShG, PIG, CIG of the
  paper's Fig. 4 / Table 3; see its docstring). For DSG / DShG a fused GPU path computes the
  second generator layers and eq. (3) in one Triton GEMM epilogue (``fused_generator_modulate``).

Contract: statistics and arithmetic in fp32 (fp64 for fp64 inputs on the torch and native-CPU
backends), outputs in the input dtype. NaN / Inf propagate, never cleaned: one in a row of fv or
fk makes that whole output row NaN (as ``torch.nn.functional.layer_norm`` does).

Kernel design (one pass per row, saved mean / rstd, fused backward, deterministic column
reductions, the fused GEMM path, dtypes, NaN handling): docs/kernels.md (section
"hyper_modulate and HyperFusion").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.ops import _native
from harness.ops.dispatch import resolve, triton_interpreting

try:  # Triton is optional: without it the backend is reported unavailable.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only on machines without triton
    triton = None

ACTIVATIONS: tuple[str | None, ...] = (None, "relu", "gelu", "sigmoid", "silu")
_ACT_CODES: dict[str | None, int] = {None: 0, "relu": 1, "gelu": 2, "sigmoid": 3, "silu": 4}
VARIANTS: tuple[str, ...] = ("dsg", "dshg", "pig", "cig")
TRITON_MAX_D = 65536  # whole row in one program's registers


# --------------------------------------------------------------------------------------------
# Torch reference (ground truth)
# --------------------------------------------------------------------------------------------


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _activate_torch(z: torch.Tensor, activation: str | None) -> torch.Tensor:
    if activation is None:
        return z
    if activation == "relu":
        return torch.relu(z)
    if activation == "gelu":
        return F.gelu(z, approximate="none")
    if activation == "sigmoid":
        return torch.sigmoid(z)
    if activation == "silu":
        return F.silu(z)
    raise ValueError(f"hyper_modulate: unknown activation {activation!r}; expected one of "
                     f"{ACTIVATIONS}")


def _check_activation(activation: str | None, where: str) -> int:
    if activation not in _ACT_CODES:
        raise ValueError(f"{where}: unknown activation {activation!r}; expected one of "
                         f"{ACTIVATIONS}")
    return _ACT_CODES[activation]


def hyper_modulate_reference(
    fv: torch.Tensor,
    fk: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float = 1e-5,
    activation: str | None = None,
) -> torch.Tensor:
    """Ground truth for eq. (3): act(gamma ⊙ LayerNorm(fv ⊙ fk) + beta), math in fp32 (fp64)."""
    _check_activation(activation, "hyper_modulate_reference")
    compute = _compute_dtype(fv.dtype)
    x = fv.to(compute) * fk.to(compute)
    y = F.layer_norm(x, (x.shape[-1],), ln_weight.to(compute), ln_bias.to(compute), eps)
    z = gamma.to(compute) * y + beta.to(compute)
    return _activate_torch(z, activation).to(fv.dtype)


# --------------------------------------------------------------------------------------------
# Triton kernels
# --------------------------------------------------------------------------------------------

if triton is not None:

    @triton.jit
    def _act_fwd(z, ACT: tl.constexpr):
        if ACT == 1:  # relu; NaN passes through (NaN < 0 is false)
            out = tl.where(z < 0.0, 0.0, z)
        elif ACT == 2:  # exact gelu
            out = 0.5 * z * (1.0 + tl.erf(z * 0.7071067811865476))
        elif ACT == 3:
            out = 1.0 / (1.0 + tl.exp(-z))
        elif ACT == 4:
            out = z / (1.0 + tl.exp(-z))
        else:
            out = z
        return out

    @triton.jit
    def _act_grad(z, ACT: tl.constexpr):
        """d act / d z at z."""
        if ACT == 1:
            grad = tl.where(z > 0.0, 1.0, 0.0)
        elif ACT == 2:
            cdf = 0.5 * (1.0 + tl.erf(z * 0.7071067811865476))
            grad = cdf + z * 0.3989422804014327 * tl.exp(-0.5 * z * z)
        elif ACT == 3:
            s = 1.0 / (1.0 + tl.exp(-z))
            grad = s * (1.0 - s)
        elif ACT == 4:
            s = 1.0 / (1.0 + tl.exp(-z))
            grad = s * (1.0 + z * (1.0 - s))
        else:
            grad = tl.full(z.shape, 1.0, tl.float32)
        return grad

    @triton.jit
    def _hyper_fwd_kernel(
        fv_ptr, fk_ptr, gamma_ptr, beta_ptr, w_ptr, b_ptr, out_ptr, mean_ptr, rstd_ptr,
        rows, d, eps,
        ACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        # BLOCK_M rows × the whole row (BLOCK_D ≥ d) per program: one read of every input.
        r = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        c = tl.arange(0, BLOCK_D)
        rmask = r < rows
        cmask = c < d
        mask = rmask[:, None] & cmask[None, :]
        offs = r.to(tl.int64)[:, None] * d + c[None, :]
        x = tl.load(fv_ptr + offs, mask=mask, other=0.0).to(tl.float32) * tl.load(
            fk_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=1) / d
        xc = tl.where(mask, x - mean[:, None], 0.0)
        var = tl.sum(xc * xc, axis=1) / d
        rstd = 1.0 / tl.sqrt(var + eps)
        w = tl.load(w_ptr + c, mask=cmask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + c, mask=cmask, other=0.0).to(tl.float32)
        y = xc * rstd[:, None] * w[None, :] + b[None, :]
        gamma = tl.load(gamma_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        beta = tl.load(beta_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        out = _act_fwd(gamma * y + beta, ACT)
        tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)
        tl.store(mean_ptr + r, mean, mask=rmask)
        tl.store(rstd_ptr + r, rstd, mask=rmask)

    @triton.jit
    def _hyper_bwd_kernel(
        dout_ptr, fv_ptr, fk_ptr, gamma_ptr, beta_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr,
        dfv_ptr, dfk_ptr, dgamma_ptr, dbeta_ptr, dw_part_ptr, db_part_ptr,
        rows, d, rows_per_program,
        ACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        # Each program walks a strip of rows; dln_weight / dln_bias partials stay in fp32
        # registers and are written once per program (then summed over programs on the host).
        pid = tl.program_id(0)
        c = tl.arange(0, BLOCK_D)
        cmask = c < d
        w = tl.load(w_ptr + c, mask=cmask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + c, mask=cmask, other=0.0).to(tl.float32)
        dw_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
        db_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
        row_start = pid * rows_per_program
        row_end = tl.minimum(row_start + rows_per_program, rows)
        for m0 in range(row_start, row_end, BLOCK_M):
            r = m0 + tl.arange(0, BLOCK_M)
            rmask = r < row_end
            mask = rmask[:, None] & cmask[None, :]
            offs = r.to(tl.int64)[:, None] * d + c[None, :]
            fv = tl.load(fv_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            fk = tl.load(fk_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            mean = tl.load(mean_ptr + r, mask=rmask, other=0.0)
            rstd = tl.load(rstd_ptr + r, mask=rmask, other=0.0)
            xhat = tl.where(mask, (fv * fk - mean[:, None]) * rstd[:, None], 0.0)
            y = xhat * w[None, :] + b[None, :]
            gamma = tl.load(gamma_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            g = tl.load(dout_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            if ACT != 0:
                beta = tl.load(beta_ptr + offs, mask=mask, other=0.0).to(tl.float32)
                g = g * _act_grad(gamma * y + beta, ACT)
            g = tl.where(mask, g, 0.0)
            tl.store(dgamma_ptr + offs, (g * y).to(dgamma_ptr.dtype.element_ty), mask=mask)
            tl.store(dbeta_ptr + offs, g.to(dbeta_ptr.dtype.element_ty), mask=mask)
            dy = g * gamma
            dw_acc += tl.sum(dy * xhat, axis=0)
            db_acc += tl.sum(dy, axis=0)
            dxhat = dy * w[None, :]
            c1 = tl.sum(dxhat * xhat, axis=1) / d
            c2 = tl.sum(dxhat, axis=1) / d
            dx = (dxhat - (xhat * c1[:, None] + c2[:, None])) * rstd[:, None]
            tl.store(dfv_ptr + offs, (dx * fk).to(dfv_ptr.dtype.element_ty), mask=mask)
            tl.store(dfk_ptr + offs, (dx * fv).to(dfk_ptr.dtype.element_ty), mask=mask)
        tl.store(dw_part_ptr + pid * d + c, dw_acc, mask=cmask)
        tl.store(db_part_ptr + pid * d + c, db_acc, mask=cmask)

    @triton.jit
    def _row_stats_kernel(fv_ptr, fk_ptr, mean_ptr, rstd_ptr, rows, d, eps,
                          BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
        # mean / rstd of x = fv ⊙ fk per row (fp32), for the fused GEMM-epilogue kernel.
        r = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        c = tl.arange(0, BLOCK_D)
        rmask = r < rows
        mask = rmask[:, None] & (c < d)[None, :]
        offs = r.to(tl.int64)[:, None] * d + c[None, :]
        x = tl.load(fv_ptr + offs, mask=mask, other=0.0).to(tl.float32) * tl.load(
            fk_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=1) / d
        xc = tl.where(mask, x - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / d + eps)
        tl.store(mean_ptr + r, mean, mask=rmask)
        tl.store(rstd_ptr + r, rstd, mask=rmask)

    @triton.jit
    def _fused_gen_modulate_kernel(
        h_ptr, stride_hm, hb_offset,
        wg_ptr, wb_ptr, stride_wn, bg_ptr, bb_ptr,
        fv_ptr, fk_ptr, mean_ptr, rstd_ptr, lnw_ptr, lnb_ptr, out_ptr,
        M, N, K,
        ACT: tl.constexpr, SHARED_H: tl.constexpr, IEEE_FP32: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        # gamma = h_g @ W_gᵀ + b_g and beta = h_b @ W_bᵀ + b_b, one (BLOCK_M, BLOCK_N) tile of each
        # in fp32 registers, then eq. (3) in the epilogue: gamma and beta never reach memory.
        # h_g = h[:, :K] and h_b = h[:, hb_offset : hb_offset + K] (the same columns for DShG,
        # SHARED_H: one load feeds both dots). W_* are (N, K) row-major with row stride stride_wn.
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mmask = rm < M
        nmask = rn < N
        acc_g = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc_b = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        h_rows = h_ptr + rm.to(tl.int64)[:, None] * stride_hm
        for k0 in range(0, K, BLOCK_K):
            rk = k0 + tl.arange(0, BLOCK_K)
            kmask = rk < K
            a_mask = mmask[:, None] & kmask[None, :]
            w_mask = kmask[:, None] & nmask[None, :]
            w_offs = rn[None, :] * stride_wn + rk[:, None]
            hg = tl.load(h_rows + rk[None, :], mask=a_mask, other=0.0)
            if SHARED_H:
                hb = hg
            else:
                hb = tl.load(h_rows + hb_offset + rk[None, :], mask=a_mask, other=0.0)
            wg = tl.load(wg_ptr + w_offs, mask=w_mask, other=0.0)
            wb = tl.load(wb_ptr + w_offs, mask=w_mask, other=0.0)
            if IEEE_FP32:
                acc_g += tl.dot(hg, wg, input_precision="ieee")
                acc_b += tl.dot(hb, wb, input_precision="ieee")
            else:
                acc_g += tl.dot(hg, wg)
                acc_b += tl.dot(hb, wb)
        gamma = acc_g + tl.load(bg_ptr + rn, mask=nmask, other=0.0).to(tl.float32)[None, :]
        beta = acc_b + tl.load(bb_ptr + rn, mask=nmask, other=0.0).to(tl.float32)[None, :]
        mask = mmask[:, None] & nmask[None, :]
        offs = rm.to(tl.int64)[:, None] * N + rn[None, :]
        x = tl.load(fv_ptr + offs, mask=mask, other=0.0).to(tl.float32) * tl.load(
            fk_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        mean = tl.load(mean_ptr + rm, mask=mmask, other=0.0)
        rstd = tl.load(rstd_ptr + rm, mask=mmask, other=0.0)
        lnw = tl.load(lnw_ptr + rn, mask=nmask, other=0.0).to(tl.float32)
        lnb = tl.load(lnb_ptr + rn, mask=nmask, other=0.0).to(tl.float32)
        y = (x - mean[:, None]) * rstd[:, None] * lnw[None, :] + lnb[None, :]
        out = _act_fwd(gamma * y + beta, ACT)
        tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


#: elements per program of the row-statistics kernel: 16 × 256 on 8 warps spilled in fp16 on
#: sm_90 (signbench kernels compile); 8 × 256 on 4 warps does not
ROW_STATS_BUDGET = 2048


def _row_launch(d: int, budget: int, per_thread: int = 16) -> tuple[int, int, int]:
    """(BLOCK_D, BLOCK_M, num_warps): whole row per program, a few rows when d is small, and
    enough warps (4-16) for about ``per_thread`` elements of each row tile per thread."""
    block_d = triton.next_power_of_2(d)
    block_m = max(1, min(16, budget // block_d))
    warps = block_m * block_d // (32 * per_thread)
    return block_d, block_m, min(16, max(4, triton.next_power_of_2(max(warps, 1))))


#: elements per thread of the backward kernel, which holds about twice the forward's row tiles
#: (16 spilled 52 bytes with the GELU derivative at d = 1024 on sm_90)
BWD_PER_THREAD = 8


def _triton_check(fv: torch.Tensor, d: int) -> None:
    if fv.dtype == torch.float64:
        raise TypeError("hyper_modulate (triton): float64 is not supported (the kernels compute in "
                        "fp32); use backend='torch' or 'native'")
    if d > TRITON_MAX_D:
        raise ValueError(f"hyper_modulate (triton): d={d} exceeds the whole-row kernel's limit "
                         f"{TRITON_MAX_D}; use backend='torch' or 'native'")


def _hyper_fwd_triton(fv, fk, gamma, beta, w, b, eps, act):
    rows, d = fv.shape
    _triton_check(fv, d)
    out = torch.empty_like(fv)
    mean = torch.empty(rows, device=fv.device, dtype=torch.float32)
    rstd = torch.empty_like(mean)
    block_d, block_m, warps = _row_launch(d, 4096)
    _hyper_fwd_kernel[(triton.cdiv(rows, block_m),)](
        fv, fk, gamma, beta, w, b, out, mean, rstd, rows, d, float(eps),
        ACT=act, BLOCK_M=block_m, BLOCK_D=block_d, num_warps=warps,
    )
    return out, mean, rstd


def _n_partials(device: torch.device, rows: int) -> int:
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        return max(1, min(rows, 4 * sms))
    return max(1, min(rows, 4))  # interpreter: few programs keep it quick


def _hyper_bwd_triton(dout, fv, fk, gamma, beta, w, b, mean, rstd, act):
    rows, d = fv.shape
    dfv, dfk = torch.empty_like(fv), torch.empty_like(fk)
    dgamma, dbeta = torch.empty_like(gamma), torch.empty_like(beta)
    programs = _n_partials(fv.device, rows)
    rows_per_program = triton.cdiv(rows, programs)
    dw_part = torch.empty((programs, d), device=fv.device, dtype=torch.float32)
    db_part = torch.empty_like(dw_part)
    block_d, block_m, warps = _row_launch(d, 2048, BWD_PER_THREAD)
    _hyper_bwd_kernel[(programs,)](
        dout, fv, fk, gamma, beta, w, b, mean, rstd, dfv, dfk, dgamma, dbeta, dw_part, db_part,
        rows, d, rows_per_program,
        ACT=act, BLOCK_M=block_m, BLOCK_D=block_d, num_warps=warps,
    )
    return dfv, dfk, dgamma, dbeta, dw_part.sum(0), db_part.sum(0)


# --------------------------------------------------------------------------------------------
# Native (C++ on CPU, CUDA on GPU)
# --------------------------------------------------------------------------------------------


def _native_dtypes(device: torch.device) -> tuple[torch.dtype, ...]:
    if device.type == "cuda":
        return (torch.float32, torch.float16, torch.bfloat16)
    return (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _hyper_fwd_native(fv, fk, gamma, beta, w, b, eps, act):
    _native.dtype_code(fv, "hyper_modulate (native) fv", _native_dtypes(fv.device))
    if not fv.is_cuda and fv.dtype in (torch.float16, torch.bfloat16):
        # CPU halves: the C++ kernel works in fp32; upcast here and cast the result back.
        out, mean, rstd = _hyper_fwd_native(fv.float(), fk.float(), gamma.float(), beta.float(),
                                            w, b, eps, act)
        return out.to(fv.dtype), mean, rstd
    rows, d = fv.shape
    code = _native.DTYPE_CODES[fv.dtype]
    out = torch.empty_like(fv)
    stat_dtype = torch.float64 if fv.dtype == torch.float64 else torch.float32
    mean = torch.empty(rows, device=fv.device, dtype=stat_dtype)
    rstd = torch.empty_like(mean)
    kernels = _native.kernels(fv.device)
    args = (fv.data_ptr(), fk.data_ptr(), gamma.data_ptr(), beta.data_ptr(), w.data_ptr(),
            b.data_ptr(), out.data_ptr(), mean.data_ptr(), rstd.data_ptr(), rows, d, float(eps),
            act, code)
    if fv.is_cuda:
        with torch.cuda.device(fv.device):
            kernels.hyper_modulate_fwd(*args, _native.stream_handle(fv.device))
    else:
        kernels.hyper_modulate_fwd(*args)
    return out, mean, rstd


def _hyper_bwd_native(dout, fv, fk, gamma, beta, w, b, mean, rstd, act):
    if not fv.is_cuda and fv.dtype in (torch.float16, torch.bfloat16):
        grads = _hyper_bwd_native(dout.float(), fv.float(), fk.float(), gamma.float(),
                                  beta.float(), w, b, mean, rstd, act)
        return (*(g.to(fv.dtype) for g in grads[:4]), *grads[4:])
    rows, d = fv.shape
    code = _native.DTYPE_CODES[fv.dtype]
    dfv, dfk = torch.empty_like(fv), torch.empty_like(fk)
    dgamma, dbeta = torch.empty_like(gamma), torch.empty_like(beta)
    kernels = _native.kernels(fv.device)
    ptrs = (dout.data_ptr(), fv.data_ptr(), fk.data_ptr(), gamma.data_ptr(), beta.data_ptr(),
            w.data_ptr(), b.data_ptr(), mean.data_ptr(), rstd.data_ptr(), dfv.data_ptr(),
            dfk.data_ptr(), dgamma.data_ptr(), dbeta.data_ptr())
    if fv.is_cuda:
        with torch.cuda.device(fv.device):
            # Grid = what fills the device at the kernel's occupancy; one partial row per block.
            blocks = kernels.hyper_modulate_bwd_blocks(rows, d, code)
            dw_part = torch.empty((blocks, d), device=fv.device, dtype=torch.float32)
            db_part = torch.empty_like(dw_part)
            kernels.hyper_modulate_bwd(*ptrs, dw_part.data_ptr(), db_part.data_ptr(), rows, d,
                                       blocks, act, code, _native.stream_handle(fv.device))
        return dfv, dfk, dgamma, dbeta, dw_part.sum(0), db_part.sum(0)
    dw = torch.empty(d, dtype=w.dtype)
    db = torch.empty(d, dtype=w.dtype)
    kernels.hyper_modulate_bwd(*ptrs, dw.data_ptr(), db.data_ptr(), rows, d, act, code)
    return dfv, dfk, dgamma, dbeta, dw, db


_FORWARD = {"triton": _hyper_fwd_triton, "native": _hyper_fwd_native}
_BACKWARD = {"triton": _hyper_bwd_triton, "native": _hyper_bwd_native}


class _HyperModulateFunction(torch.autograd.Function):
    """Rows × d contiguous inputs; saves fv, fk, gamma, beta, ln params and (mean, rstd)."""

    @staticmethod
    def forward(ctx, fv, fk, gamma, beta, w, b, eps, act, backend):
        out, mean, rstd = _FORWARD[backend](fv, fk, gamma, beta, w, b, eps, act)
        ctx.save_for_backward(fv, fk, gamma, beta, w, b, mean, rstd)
        ctx.act, ctx.backend = act, backend
        return out

    @staticmethod
    def backward(ctx, dout):
        fv, fk, gamma, beta, w, b, mean, rstd = ctx.saved_tensors
        grads = _BACKWARD[ctx.backend](dout.contiguous(), fv, fk, gamma, beta, w, b, mean, rstd,
                                       ctx.act)
        return (*grads, None, None, None)


# --------------------------------------------------------------------------------------------
# Public op
# --------------------------------------------------------------------------------------------


def _validate(fv, fk, gamma, beta, ln_weight, ln_bias, activation, where) -> int:
    named = {"fv": fv, "fk": fk, "gamma": gamma, "beta": beta, "ln_weight": ln_weight,
             "ln_bias": ln_bias}
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(t).__name__}")
    act = _check_activation(activation, where)
    if fv.dim() < 1 or fv.shape[-1] == 0:
        raise ValueError(f"{where}: fv must have shape (..., d) with d > 0, got {tuple(fv.shape)}")
    for name in ("fk", "gamma", "beta"):
        if named[name].shape != fv.shape:
            raise ValueError(f"{where}: {name} has shape {tuple(named[name].shape)} but fv has "
                             f"{tuple(fv.shape)}; fv, fk, gamma, beta must have the same shape")
    d = fv.shape[-1]
    for name in ("ln_weight", "ln_bias"):
        if named[name].shape != (d,):
            raise ValueError(f"{where}: {name} has shape {tuple(named[name].shape)}, expected "
                             f"({d},) (the last dim of fv)")
    for name, t in named.items():
        if t.device != fv.device:
            raise ValueError(f"{where}: {name} is on {t.device} but fv is on {fv.device}")
        if not t.is_floating_point():
            raise TypeError(f"{where}: {name} must be floating point, got {t.dtype}")
    for name in ("fk", "gamma", "beta"):
        if named[name].dtype != fv.dtype:
            raise TypeError(f"{where}: {name} is {named[name].dtype} but fv is {fv.dtype}; fv, "
                            f"fk, gamma, beta must share a dtype")
    return act


def hyper_modulate(
    fv: torch.Tensor,
    fk: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float = 1e-5,
    activation: str | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """HyperSign's dynamic MLP (eq. 3): act(gamma ⊙ LayerNorm(fv ⊙ fk) + beta).

    Args:
        fv, fk: RGB and keypoint features, (..., d), same shape, dtype and device.
        gamma, beta: generated weight W and bias b, same shape as fv.
        ln_weight, ln_bias: LayerNorm affine parameters, (d,).
        eps: LayerNorm epsilon (added to the biased variance).
        activation: None, "relu", "gelu" (exact erf form), "sigmoid" or "silu".
        backend: "torch" | "triton" | "native" (see ``harness.ops.dispatch``).

    Returns a tensor like fv. Differentiable in fv, fk, gamma, beta, ln_weight and ln_bias.
    Statistics are computed in fp32 (fp64 for fp64 inputs); NaN/Inf propagate (see the module
    docstring): a non-finite value in fv or fk turns its whole row NaN, in gamma/beta one element.
    """
    act = _validate(fv, fk, gamma, beta, ln_weight, ln_bias, activation, "hyper_modulate")
    name = resolve(backend, fv.device)
    if name == "torch":
        return hyper_modulate_reference(fv, fk, gamma, beta, ln_weight, ln_bias, eps, activation)
    shape, d = fv.shape, fv.shape[-1]
    if fv.numel() == 0:
        return hyper_modulate_reference(fv, fk, gamma, beta, ln_weight, ln_bias, eps, activation)
    param = _compute_dtype(fv.dtype)
    flat = [t.contiguous().reshape(-1, d) for t in (fv, fk, gamma, beta)]
    out = _HyperModulateFunction.apply(
        *flat, ln_weight.to(param).contiguous(), ln_bias.to(param).contiguous(), float(eps), act,
        name,
    )
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------
# Fused generator-GEMM + modulation (HyperFusion's GPU path)
# --------------------------------------------------------------------------------------------


def _row_stats_triton(fv: torch.Tensor, fk: torch.Tensor, eps: float):
    rows, d = fv.shape
    mean = torch.empty(rows, device=fv.device, dtype=torch.float32)
    rstd = torch.empty_like(mean)
    block_d, block_m, warps = _row_launch(d, ROW_STATS_BUDGET)
    _row_stats_kernel[(triton.cdiv(rows, block_m),)](
        fv, fk, mean, rstd, rows, d, float(eps), BLOCK_M=block_m, BLOCK_D=block_d,
        num_warps=warps,
    )
    return mean, rstd


def fused_config(cuda: bool, dtype: torch.dtype = torch.float16) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) of the fused GEMM-epilogue kernel.

    Two fp32 accumulator tiles: 8 warps, and half the rows for fp32 operands, keep sm_80 / sm_90
    free of spills (``signbench kernels compile``; 64 × 64 × 64 on 4 warps spilled).
    """
    if not cuda:
        return 16, 32, 32, 4, 1  # interpreter: small tiles (>= 16 for tl.dot), few of them
    if dtype == torch.float32:
        return 32, 64, 32, 8, 3
    return 64, 64, 32, 8, 3


def _fused_launch(fv, h, hb_offset, wg, bg, wb, bb, lnw, lnb, fk, mean, rstd, act, shared):
    rows, d = fv.shape
    out = torch.empty_like(fv)
    bm, bn, bk, warps, stages = fused_config(fv.is_cuda, fv.dtype)
    ieee = fv.dtype == torch.float32 and not (
        fv.is_cuda and torch.backends.cuda.matmul.allow_tf32)
    grid = (triton.cdiv(rows, bm), triton.cdiv(d, bn))
    _fused_gen_modulate_kernel[grid](
        h, h.stride(0), hb_offset, wg, wb, wg.stride(0), bg, bb,
        fv, fk, mean, rstd, lnw, lnb, out, rows, d, d,
        ACT=act, SHARED_H=shared, IEEE_FP32=ieee, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk,
        num_warps=warps, num_stages=stages,
    )
    return out


class _FusedGenModulateFunction(torch.autograd.Function):
    """out = act(gamma ⊙ LN(fv ⊙ fk) + beta), gamma = h_g W_gᵀ + b_g, beta = h_b W_bᵀ + b_b.

    h is (rows, 2d) with h_g = h[:, :d], h_b = h[:, d:] (DSG), or (rows, d) feeding both (DShG,
    ``shared``). Forward never materialises gamma or beta; backward recomputes them with two
    GEMMs and runs the modulation backward kernel of ``backend``.
    """

    @staticmethod
    def forward(ctx, h, fv, fk, wg, bg, wb, bb, lnw, lnb, eps, act, shared, backend):
        d = fv.shape[1]
        mean, rstd = _row_stats_triton(fv, fk, eps)
        out = _fused_launch(fv, h, 0 if shared else d, wg, bg, wb, bb, lnw, lnb, fk, mean, rstd,
                            act, shared)
        ctx.save_for_backward(h, fv, fk, wg, bg, wb, bb, lnw, lnb, mean, rstd)
        ctx.act, ctx.shared, ctx.backend = act, shared, backend
        return out

    @staticmethod
    def backward(ctx, dout):
        h, fv, fk, wg, bg, wb, bb, lnw, lnb, mean, rstd = ctx.saved_tensors
        d = fv.shape[1]
        hg = h if ctx.shared else h[:, :d]
        hb = h if ctx.shared else h[:, d:]
        gamma = F.linear(hg, wg, bg).contiguous()  # recomputed, see the class docstring
        beta = F.linear(hb, wb, bb).contiguous()
        # The modulation backward kernels take fp32 ln params; the stats are fp32 already.
        dfv, dfk, dgamma, dbeta, dlnw, dlnb = _BACKWARD[ctx.backend](
            dout.contiguous(), fv, fk, gamma, beta, lnw.float(), lnb.float(), mean, rstd, ctx.act)
        dhg, dhb = dgamma @ wg, dbeta @ wb
        dh = dhg + dhb if ctx.shared else torch.cat([dhg, dhb], dim=1)
        dwg, dwb = dgamma.t() @ hg, dbeta.t() @ hb
        return (dh, dfv, dfk, dwg, dgamma.sum(0).to(bg.dtype), dwb, dbeta.sum(0).to(bb.dtype),
                dlnw.to(lnw.dtype), dlnb.to(lnb.dtype), None, None, None, None)


def fused_generator_modulate(
    h: torch.Tensor,
    fv: torch.Tensor,
    fk: torch.Tensor,
    w_gamma: torch.Tensor,
    b_gamma: torch.Tensor,
    w_beta: torch.Tensor,
    b_beta: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float = 1e-5,
    activation: str | None = None,
    shared: bool = False,
    backend: str = "triton",
) -> torch.Tensor:
    """The fused second generator layer + eq. (3) (Triton GEMM-epilogue kernel).

    h: generator hidden activations after ReLU/dropout, (..., 2d) (DSG: [h_gamma, h_beta]) or
    (..., d) with ``shared=True`` (DShG). w_gamma, w_beta: (d, d) Linear weights; b_*: (d,).
    fv, fk: (..., d). ``backend`` picks the modulation backward kernel ("triton" | "native").
    Equal to ``hyper_modulate(fv, fk, h_g @ w_gammaᵀ + b_gamma, h_b @ w_betaᵀ + b_beta, ...)``.
    """
    if triton is None:
        raise RuntimeError("fused_generator_modulate needs triton, which is not installed")
    act = _check_activation(activation, "fused_generator_modulate")
    d = fv.shape[-1]
    if fk.shape != fv.shape:
        raise ValueError(f"fused_generator_modulate: fk has shape {tuple(fk.shape)} but fv has "
                         f"{tuple(fv.shape)}")
    width = d if shared else 2 * d
    if h.shape[:-1] != fv.shape[:-1] or h.shape[-1] != width:
        raise ValueError(f"fused_generator_modulate: h has shape {tuple(h.shape)}, expected "
                         f"{(*fv.shape[:-1], width)}")
    for name, t in (("w_gamma", w_gamma), ("w_beta", w_beta)):
        if t.shape != (d, d):
            raise ValueError(f"fused_generator_modulate: {name} has shape {tuple(t.shape)}, "
                             f"expected ({d}, {d})")
    for name, t in (("b_gamma", b_gamma), ("b_beta", b_beta), ("ln_weight", ln_weight),
                    ("ln_bias", ln_bias)):
        if t.shape != (d,):
            raise ValueError(f"fused_generator_modulate: {name} has shape {tuple(t.shape)}, "
                             f"expected ({d},)")
    _triton_check(fv, d)
    dtype = fv.dtype
    if h.dtype != dtype or w_gamma.dtype != dtype or w_beta.dtype != dtype or fk.dtype != dtype:
        raise TypeError("fused_generator_modulate: h, fv, fk, w_gamma, w_beta must share a dtype")
    shape = fv.shape
    out = _FusedGenModulateFunction.apply(
        h.contiguous().reshape(-1, width), fv.contiguous().reshape(-1, d),
        fk.contiguous().reshape(-1, d), w_gamma.contiguous(), b_gamma.contiguous(),
        w_beta.contiguous(), b_beta.contiguous(), ln_weight.contiguous(), ln_bias.contiguous(),
        float(eps), act, bool(shared), backend,
    )
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------
# HyperFusion module
# --------------------------------------------------------------------------------------------


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype active for ``device_type``, or None when autocast is off there."""
    try:
        on = torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device_type argument
        on = torch.is_autocast_enabled() if device_type == "cuda" else False
    if not on:
        return None
    try:
        return torch.get_autocast_dtype(device_type)
    except AttributeError:  # torch < 2.4
        return torch.get_autocast_gpu_dtype() if device_type == "cuda" else torch.bfloat16


def _generator(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    """The paper's two-layer feed-forward generator: Linear → ReLU → Dropout → Linear."""
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(d_hidden, d_out))


class HyperFusion(nn.Module):
    """HyperSign's hypernetwork early fusion of RGB (F_v) and keypoint (F_k) features (Sec. 2.2).

    ``variant`` (Fig. 4, Table 3 of the paper; the paper gives only the figure caption for the
    non-default variants, so their reading here is ours):

    * ``"dsg"`` — Dual Separate Generators (the paper's choice, default). Two generators on
      c = [F_v; F_k]: gamma = ``gamma_net``(c), beta = ``beta_net``(c), each
      Linear(2d→d) → ReLU → Dropout → Linear(d→d); F_f = σ(gamma ⊙ ``layernorm``(F_v ⊙ F_k) + beta).
    * ``"dshg"`` — Dual Shared Generator: one ``generator`` Linear(2d→d) → ReLU → Dropout →
      Linear(d→2d) on c, its output split into (gamma, beta); then eq. (3) as for DSG.
    * ``"pig"`` — Parallel Individual Generators: each stream has its own generators fed by that
      stream only (gamma_net/beta_net on F_v, gamma_net_k/beta_net_k on F_k, each
      Linear(d→d) → ReLU → Dropout → Linear(d→d)) and its own dynamic MLP on its own features:
      F_f,v = σ(gamma_v ⊙ LN_v(F_v) + beta_v), F_f,k = σ(gamma_k ⊙ LN_k(F_k) + beta_k) with
      LN_v = ``layernorm``, LN_k = ``layernorm_k``; the streams are combined after the dynamic MLPs
      by their mean, F_f = (F_f,v + F_f,k) / 2 (mean rather than sum keeps F_f on DSG's scale).
    * ``"cig"`` — Cross Individual Generators: the same modules as PIG, but each stream's dynamic
      MLP takes its weights from the *other* stream's generators:
      F_f,v = σ(G_W,k(F_k) ⊙ LN_v(F_v) + G_b,k(F_k)),
      F_f,k = σ(G_W,v(F_v) ⊙ LN_k(F_k) + G_b,v(F_v)),  F_f = (F_f,v + F_f,k) / 2.

    The single-stream dynamic MLPs of PIG/CIG are ``hyper_modulate`` with fk = 1.

    ``forward(fv, fk, backend=None)``: fv, fk (..., dim) → F_f (..., dim). For DSG/DShG with the
    triton backend (any device; CPU under the Triton interpreter) or the native backend on CUDA,
    the fused path runs: the generators' first layers as one GEMM, ReLU + dropout, then one Triton
    kernel for the second layers with eq. (3) in its epilogue (gamma, beta never stored; backward
    recomputes them). Under fp16 / bf16 autocast (the trainer's CUDA runs) it runs in the autocast
    dtype and returns fv's dtype, as the unfused path does. ``fused = False`` forces the unfused
    ops.
    """

    def __init__(self, dim: int, dropout: float = 0.5, activation: str | None = None,
                 variant: str = "dsg") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"HyperFusion: unknown variant {variant!r}; expected one of "
                             f"{VARIANTS}")
        _check_activation(activation, "HyperFusion")
        if dim <= 0:
            raise ValueError(f"HyperFusion: dim must be positive, got {dim}")
        self.dim, self.activation, self.variant = dim, activation, variant
        self.fused = True
        if variant == "dsg":
            self.gamma_net = _generator(2 * dim, dim, dim, dropout)
            self.beta_net = _generator(2 * dim, dim, dim, dropout)
        elif variant == "dshg":
            self.generator = _generator(2 * dim, dim, 2 * dim, dropout)
        else:
            self.gamma_net = _generator(dim, dim, dim, dropout)
            self.beta_net = _generator(dim, dim, dim, dropout)
            self.gamma_net_k = _generator(dim, dim, dim, dropout)
            self.beta_net_k = _generator(dim, dim, dim, dropout)
            self.layernorm_k = nn.LayerNorm(dim)
        self.layernorm = nn.LayerNorm(dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, variant={self.variant!r}, activation={self.activation!r}"

    def _use_fused(self, name: str, fv: torch.Tensor, fk: torch.Tensor) -> bool:
        if not self.fused or triton is None or self.variant not in ("dsg", "dshg"):
            return False
        if fv.dtype == torch.float64 or self.dim > TRITON_MAX_D or fv.numel() == 0:
            return False
        # The fused kernel wants one dtype throughout; under autocast that is autocast's dtype.
        if fk.dtype != fv.dtype or self.layernorm.weight.dtype != fv.dtype:
            return False
        if _autocast_dtype(fv.device.type) not in (None, torch.float16, torch.bfloat16):
            return False
        if fv.is_cuda:
            return name in ("triton", "native")
        return name == "triton" and fv.device.type == "cpu" and triton_interpreting()

    def forward(self, fv: torch.Tensor, fk: torch.Tensor, backend: str | None = None):
        if fv.shape != fk.shape:
            raise ValueError(f"HyperFusion: fv has shape {tuple(fv.shape)} but fk has "
                             f"{tuple(fk.shape)}")
        if fv.shape[-1] != self.dim:
            raise ValueError(f"HyperFusion: fv has last dim {fv.shape[-1]}, expected dim="
                             f"{self.dim}")
        ln = self.layernorm
        if self.variant in ("pig", "cig"):
            # Generators fed by F_v: gamma_net/beta_net; by F_k: gamma_net_k/beta_net_k.
            gen_v = (self.gamma_net, self.beta_net)
            gen_k = (self.gamma_net_k, self.beta_net_k)
            # PIG: each stream tailored by its own generators; CIG: by the other stream's.
            (gw_v, gb_v), src_v = (gen_v, fv) if self.variant == "pig" else (gen_k, fk)
            (gw_k, gb_k), src_k = (gen_k, fk) if self.variant == "pig" else (gen_v, fv)
            ones = torch.ones_like(fv)
            lnk = self.layernorm_k
            dt = fv.dtype  # generator outputs may be in autocast's dtype
            out_v = hyper_modulate(fv, ones, gw_v(src_v).to(dt), gb_v(src_v).to(dt), ln.weight,
                                   ln.bias, ln.eps, self.activation, backend)
            out_k = hyper_modulate(fk, ones, gw_k(src_k).to(dt), gb_k(src_k).to(dt), lnk.weight,
                                   lnk.bias, lnk.eps, self.activation, backend)
            return 0.5 * (out_v + out_k)
        cat = torch.cat([fv, fk], dim=-1)
        name = resolve(backend, fv.device)
        if self._use_fused(name, fv, fk):
            return self._forward_fused(cat, fv, fk, name)
        if self.variant == "dsg":
            gamma, beta = self.gamma_net(cat), self.beta_net(cat)
        else:
            gamma, beta = self.generator(cat).chunk(2, dim=-1)
        gamma, beta = gamma.to(fv.dtype), beta.to(fv.dtype)  # autocast may have cast them
        return hyper_modulate(fv, fk, gamma, beta, ln.weight, ln.bias, ln.eps, self.activation,
                              name)

    def _forward_fused(self, cat, fv, fk, name):
        cast = _autocast_dtype(fv.device.type)
        if cast is None or cast == fv.dtype:
            return self._fused(cat, fv, fk, name, None)
        # Autocast training: the generators' GEMMs in the autocast dtype (as the unfused path
        # runs them), the fused kernel in it too, the result back in fv's dtype (as unfused).
        with torch.autocast(fv.device.type, enabled=False):
            out = self._fused(cat.to(cast), fv.to(cast), fk.to(cast), name, cast)
        return out.to(fv.dtype)

    def _fused(self, cat, fv, fk, name, dtype: torch.dtype | None):
        """The fused forward with every parameter cast to ``dtype`` (None: as they are)."""

        def p(t: torch.Tensor) -> torch.Tensor:
            return t if dtype is None else t.to(dtype)

        ln = self.layernorm
        if self.variant == "dsg":
            g0, b0 = self.gamma_net[0], self.beta_net[0]
            # Both first layers as ONE GEMM: (2d, 2d) weight → hidden [h_gamma, h_beta].
            hidden = F.linear(cat, p(torch.cat([g0.weight, b0.weight], 0)),
                              p(torch.cat([g0.bias, b0.bias], 0)))
            drop = self.gamma_net[2].p
            g3, b3 = self.gamma_net[3], self.beta_net[3]
            wg, bg, wb, bb, shared = g3.weight, g3.bias, b3.weight, b3.bias, False
        else:
            g0 = self.generator[0]
            hidden = F.linear(cat, p(g0.weight), p(g0.bias))
            drop = self.generator[2].p
            w2, b2 = self.generator[3].weight, self.generator[3].bias
            d = self.dim
            wg, bg, wb, bb, shared = w2[:d], b2[:d], w2[d:], b2[d:], True
        # Same p on both halves: one dropout call has the distribution of two separate ones.
        hidden = F.dropout(torch.relu(hidden), drop, self.training)
        return fused_generator_modulate(hidden, fv, fk, p(wg), p(bg), p(wb), p(bb), p(ln.weight),
                                        p(ln.bias), ln.eps, self.activation, shared, name)


__all__ = [
    "ACTIVATIONS",
    "VARIANTS",
    "HyperFusion",
    "fused_generator_modulate",
    "hyper_modulate",
    "hyper_modulate_reference",
]
