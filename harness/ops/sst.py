"""``sst_convert``: HyperSign's SST converter (Sec. 2.3.2, Algorithm 1).

Given features ``F`` (B, N, d) already mapped by the query MLP and the shared semantic tokens
``c`` (C, d), the converter computes

    logits[b, n, i] = scale * <F[b, n], c_i>                      (B, N, C), never stored
    r[b, i]         = pool_{n valid} logits[b, n, i]              pool in {max, mean, sum}
    w[b]            = sparsemax(r[b])                             (B, C)
    f[b]            = sum_i w[b, i] * c_i                         (B, d)

and returns ``(w, f)``. The paper uses ``max`` (r_i = max_j <F_j, c_i>); ``mean`` and ``sum`` are
the variants found in public code. Padded frames (mask False) never contribute: unlike the public
HyperSign code, which zeroes padded logits and then averages over all N, the mean here is over the
valid frames only. ``scale`` is HyperSign's (optionally learnable) logit scale.

Design of the fused kernels (Triton, CUDA; one program / block per batch row b)
---------------------------------------------------------------------------------
* ``max``: feats tiles (BLOCK_N x BLOCK_D) and token tiles (BLOCK_C x BLOCK_D) stream through
  ``tl.dot`` into a (BLOCK_N x BLOCK_C) fp32 accumulator; the scaled logits are reduced over the
  valid frames in registers, keeping the running max, the first argmax frame (int32, B x C) and the
  unscaled dot product at the argmax (``raw``, fp32, B x C). The (B, N, C) logits never exist.
* ``mean`` / ``sum``: pooling is linear, so r = scale * (sum_{n valid} F[b, n] / count) @ c^T.
  The kernel streams the valid frames once into the pooled feature (B x d, fp32, kept for
  backward) and does one mat-vec with the tokens: O(N d + C d) instead of O(N C d), no logits.
* Sparsemax over C in registers without a sort (bisection on tau + exact Michelot refinement,
  see ``harness.ops.sparsemax``), then ``f = w @ c`` streamed over token tiles. Only ``w``, ``f``
  and the small per-row saved tensors (``raw``; ``argmax`` for max; pooled feature for mean/sum)
  are written.
* Backward never rebuilds the logits: d_r = sparsemax backward of (dw + d_f @ c^T) from the saved
  ``w``; d_F[b, n] = scale * d_r[b] @ c / count on valid frames (mean/sum) or
  scale * sum_{i : argmax[b, i] = n} d_r[b, i] c_i (max; a one-hot (BLOCK_N x BLOCK_C) tile times
  a token tile, so it is deterministic, no atomics); d_c = w^T @ d_f + scale * sum_b d_r[b, i] *
  P[b, i] with P the pooled feature (mean/sum) or F[b, argmax[b, i]] (max);
  d_scale = sum d_r * raw, i.e. from the *unscaled* pooled values, so scale = 0 is fine.

Ties in max pooling are routed to the first maximal frame (as ``torch.max`` does).
Non-finite values: NaN/Inf in valid frames or tokens propagate (a batch row whose pooled
relevances hold a NaN or Inf gets all-NaN weights and output); values in padded frames are never
read by the fused kernels, so they cannot leak. A row with no valid frame is an error (checked on
GPU tensors only with ``SIGNBENCH_CHECK_VALUES=1``: docs/kernels.md, "Host synchronisation").
"""

from __future__ import annotations

import torch

from harness.ops import _native
from harness.ops.dispatch import check_values, resolve
from harness.ops.sparsemax import N_BISECT, N_REFINE, sparsemax_reference
from harness.ops.sparsemax import _backward_torch as _sparsemax_backward_torch

try:  # Triton is optional: without it the backend is reported unavailable.
    import triton
    import triton.language as tl

    from harness.ops.sparsemax import sparsemax_threshold
except ImportError:  # pragma: no cover - exercised only on machines without triton
    triton = None

POOLS: tuple[str, ...] = ("max", "mean", "sum")
_POOL_CODE = {"max": 0, "mean": 1, "sum": 2}
#: Largest token count C the Triton kernel holds in registers for the sparsemax step.
TRITON_MAX_C = 1 << 14


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _valid(feats: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
    return mask


def sst_convert_reference(
    feats: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: float | torch.Tensor = 1.0,
    pool: str = "max",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth: materialises the (B, N, C) logits; differentiable through torch autograd.

    Computed in fp32 (fp64 for fp64 inputs); outputs in ``feats``'s dtype.
    """
    cd = _compute_dtype(feats.dtype)
    f, t = feats.to(cd), tokens.to(cd)
    s = scale.to(cd) if isinstance(scale, torch.Tensor) else scale
    logits = s * torch.einsum("bnd,cd->bnc", f, t)
    valid = _valid(f, mask)[:, :, None]
    if pool == "max":
        pooled = logits.masked_fill(~valid, float("-inf")).max(dim=1).values
    elif pool in ("mean", "sum"):
        pooled = logits.masked_fill(~valid, 0.0).sum(dim=1)
        if pool == "mean":
            pooled = pooled / valid.sum(dim=1).to(cd)
    else:
        raise ValueError(f"sst_convert: pool must be one of {POOLS}, got {pool!r}")
    weights = sparsemax_reference(pooled, dim=-1)
    out = weights @ t
    return weights.to(feats.dtype), out.to(feats.dtype)


# --------------------------------------------------------------------------------------------
# Backend interface. forward(feats, tokens, mask, scale, pool) ->
#   (weights, out, raw, argmax, fsum): raw = unscaled pooled relevances (B, C), argmax (B, C)
#   int32 for max (else empty), fsum = pooled feature (B, d) for mean/sum (else empty).
# backward(feats, tokens, mask, scale, pool, weights, argmax, fsum, d_weights, d_out) ->
#   (d_feats, d_tokens, d_pooled)
# --------------------------------------------------------------------------------------------


def _forward_torch(feats, tokens, mask, scale, pool):
    """Readable version of what the fused kernels compute (the max path materialises logits)."""
    cd = _compute_dtype(feats.dtype)
    f, t = feats.to(cd), tokens.to(cd)
    valid = _valid(f, mask)
    empty = torch.empty(0, device=f.device)
    if pool == "max":
        dots = torch.einsum("bnd,cd->bnc", f, t)
        logits = (dots * scale).masked_fill(~valid[:, :, None], float("-inf"))
        idx = logits.max(dim=1).indices  # first maximal frame
        raw = dots.gather(1, idx[:, None, :]).squeeze(1)
        raw = torch.where(logits.isnan().any(dim=1), float("nan"), raw)
        argmax, fsum = idx.to(torch.int32), empty.to(cd)
    else:
        fsum = torch.where(valid[:, :, None], f, 0.0).sum(dim=1)
        if pool == "mean":
            fsum = fsum / valid.sum(dim=1, keepdim=True).to(cd)
        raw = fsum @ t.T
        argmax = empty.to(torch.int32)
    weights = sparsemax_reference(raw * scale, dim=-1)
    out = weights @ t
    return weights.to(feats.dtype), out.to(feats.dtype), raw, argmax, fsum


def _backward_torch(feats, tokens, mask, scale, pool, weights, argmax, fsum, d_weights, d_out):
    cd = _compute_dtype(feats.dtype)
    f, t = feats.to(cd), tokens.to(cd)
    w, dout = weights.to(cd), d_out.to(cd)
    d_pooled = _sparsemax_backward_torch(w, d_weights.to(cd) + dout @ t.T)
    d_tokens = w.T @ dout
    if pool == "max":
        idx = argmax.long().clamp(min=0)[:, :, None].expand(-1, -1, f.shape[2])
        contrib = scale * d_pooled[:, :, None] * t[None]  # (B, C, d)
        d_feats = torch.zeros_like(f).scatter_add_(1, idx, contrib)
        d_tokens = d_tokens + scale * (d_pooled[:, :, None] * f.gather(1, idx)).sum(dim=0)
    else:
        valid = _valid(f, mask)
        v = scale * (d_pooled @ t)
        if pool == "mean":
            v = v / valid.sum(dim=1, keepdim=True).to(cd)
        d_feats = torch.where(valid[:, :, None], v[:, None, :], 0.0)
        d_tokens = d_tokens + scale * (d_pooled.T @ fsum)
    return d_feats.to(feats.dtype), d_tokens.to(tokens.dtype), d_pooled


# --------------------------------------------------------------------------------------------
# Triton backend
# --------------------------------------------------------------------------------------------

if triton is not None:

    @triton.jit
    def _row_valid(mask_ptr, b, N, nn, HAS_MASK: tl.constexpr):
        valid = nn < N
        if HAS_MASK:
            valid = valid & (tl.load(mask_ptr + b * N + nn, mask=nn < N, other=0) != 0)
        return valid

    @triton.jit
    def _pool_denominator(mask_ptr, b, N, offs_n, HAS_MASK: tl.constexpr, POOL: tl.constexpr,
                          BLOCK_N: tl.constexpr):
        """Row ``b``'s number of valid frames for mean pooling (POOL == 1), 1 for sum."""
        cnt = tl.sum(tl.zeros([BLOCK_N], tl.float32), axis=0)
        for n0 in range(0, N, BLOCK_N):
            valid = _row_valid(mask_ptr, b, N, n0 + offs_n, HAS_MASK)
            cnt += tl.sum(tl.where(valid, 1.0, 0.0), axis=0)
        return cnt if POOL == 1 else cnt * 0.0 + 1.0

    @triton.jit
    def _sst_fwd_kernel(
        feats_ptr, tokens_ptr, mask_ptr, weights_ptr, out_ptr, raw_ptr, idx_ptr, fsum_ptr,
        scale, N, C, D,
        POOL: tl.constexpr, HAS_MASK: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
        BLOCK_CF: tl.constexpr, N_BISECT: tl.constexpr, N_REFINE: tl.constexpr,
        DOT_PRECISION: tl.constexpr,
    ):  # fmt: skip
        b = tl.program_id(0).to(tl.int64)
        feats_row = feats_ptr + b * N * D
        offs_n = tl.arange(0, BLOCK_N)
        offs_c = tl.arange(0, BLOCK_C)
        offs_d = tl.arange(0, BLOCK_D)
        if POOL == 0:
            # max: stream feats @ tokens^T tiles, running max / first argmax over valid frames.
            for c0 in range(0, C, BLOCK_C):
                cc = c0 + offs_c
                c_ok = cc < C
                run_max = tl.full([BLOCK_C], -float("inf"), tl.float32)
                run_idx = tl.full([BLOCK_C], -1, tl.int32)
                run_raw = tl.full([BLOCK_C], float("nan"), tl.float32)
                nan_seen = tl.zeros([BLOCK_C], tl.int32)
                for n0 in range(0, N, BLOCK_N):
                    nn = n0 + offs_n
                    valid = _row_valid(mask_ptr, b, N, nn, HAS_MASK)
                    acc = tl.zeros([BLOCK_N, BLOCK_C], tl.float32)
                    for d0 in range(0, D, BLOCK_D):
                        dd = d0 + offs_d
                        d_ok = dd < D
                        f = tl.load(
                            feats_row + nn[:, None] * D + dd[None, :],
                            mask=valid[:, None] & d_ok[None, :], other=0.0,
                        )  # fmt: skip
                        t = tl.load(
                            tokens_ptr + cc[:, None] * D + dd[None, :],
                            mask=c_ok[:, None] & d_ok[None, :], other=0.0,
                        )  # fmt: skip
                        acc = tl.dot(f, tl.trans(t), acc, input_precision=DOT_PRECISION)
                    logit = tl.where(valid[:, None], acc * scale, -float("inf"))
                    is_nan = valid[:, None] & (logit != logit)
                    nan_seen = tl.maximum(nan_seen, tl.max(tl.where(is_nan, 1, 0), axis=0))
                    t_max, t_arg = tl.max(
                        logit, axis=0, return_indices=True, return_indices_tie_break_left=True
                    )
                    t_raw = tl.sum(tl.where(offs_n[:, None] == t_arg[None, :], acc, 0.0), axis=0)
                    upd = t_max > run_max
                    run_max = tl.where(upd, t_max, run_max)
                    run_idx = tl.where(upd, n0 + t_arg.to(tl.int32), run_idx)
                    run_raw = tl.where(upd, t_raw, run_raw)
                run_raw = tl.where(nan_seen > 0, float("nan"), run_raw)
                tl.store(raw_ptr + b * C + cc, run_raw, mask=c_ok)
                tl.store(idx_ptr + b * C + cc, run_idx, mask=c_ok)
        else:
            # mean / sum: pooling is linear -> pooled feature, then one mat-vec with the tokens.
            denom = _pool_denominator(mask_ptr, b, N, offs_n, HAS_MASK, POOL, BLOCK_N)
            for d0 in range(0, D, BLOCK_D):
                dd = d0 + offs_d
                d_ok = dd < D
                accd = tl.zeros([BLOCK_D], tl.float32)
                for n0 in range(0, N, BLOCK_N):
                    nn = n0 + offs_n
                    valid = _row_valid(mask_ptr, b, N, nn, HAS_MASK)
                    f = tl.load(
                        feats_row + nn[:, None] * D + dd[None, :],
                        mask=valid[:, None] & d_ok[None, :], other=0.0,
                    )  # fmt: skip
                    accd += tl.sum(f.to(tl.float32), axis=0)
                tl.store(fsum_ptr + b * D + dd, accd / denom, mask=d_ok)
            tl.debug_barrier()
            for c0 in range(0, C, BLOCK_C):
                cc = c0 + offs_c
                c_ok = cc < C
                accc = tl.zeros([BLOCK_C], tl.float32)
                for d0 in range(0, D, BLOCK_D):
                    dd = d0 + offs_d
                    d_ok = dd < D
                    t = tl.load(
                        tokens_ptr + cc[:, None] * D + dd[None, :],
                        mask=c_ok[:, None] & d_ok[None, :], other=0.0,
                    ).to(tl.float32)  # fmt: skip
                    fb = tl.load(fsum_ptr + b * D + dd, mask=d_ok, other=0.0)
                    accc += tl.sum(t * fb[None, :], axis=1)
                tl.store(raw_ptr + b * C + cc, accc, mask=c_ok)
        tl.debug_barrier()
        # sparsemax over the whole row of C pooled relevances, in registers.
        cf = tl.arange(0, BLOCK_CF)
        cf_ok = cf < C
        z = tl.load(raw_ptr + b * C + cf, mask=cf_ok, other=0.0) * scale
        zmax, tau, bad = sparsemax_threshold(z, cf_ok, N_BISECT, N_REFINE)
        w = tl.where(bad, float("nan"), tl.maximum(z - zmax - tau, 0.0))
        tl.store(weights_ptr + b * C + cf, w.to(weights_ptr.dtype.element_ty), mask=cf_ok)
        # out = w @ tokens, streamed over token tiles (w recomputed per tile, same arithmetic).
        for d0 in range(0, D, BLOCK_D):
            dd = d0 + offs_d
            d_ok = dd < D
            acco = tl.zeros([BLOCK_D], tl.float32)
            for c0 in range(0, C, BLOCK_C):
                cc = c0 + offs_c
                c_ok = cc < C
                zc = tl.load(raw_ptr + b * C + cc, mask=c_ok, other=0.0) * scale
                wc = tl.where(bad, float("nan"), tl.maximum(zc - zmax - tau, 0.0))
                wc = tl.where(c_ok, wc, 0.0)
                t = tl.load(
                    tokens_ptr + cc[:, None] * D + dd[None, :],
                    mask=c_ok[:, None] & d_ok[None, :], other=0.0,
                ).to(tl.float32)  # fmt: skip
                acco += tl.sum(wc[:, None] * t, axis=0)
            tl.store(out_ptr + b * D + dd, acco.to(out_ptr.dtype.element_ty), mask=d_ok)

    @triton.jit
    def _sst_bwd_row_kernel(
        tokens_ptr, mask_ptr, weights_ptr, dw_ptr, dout_ptr, dp_ptr, idx_ptr, dfeats_ptr,
        scale, N, C, D,
        POOL: tl.constexpr, HAS_MASK: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        b = tl.program_id(0).to(tl.int64)
        offs_n = tl.arange(0, BLOCK_N)
        offs_c = tl.arange(0, BLOCK_C)
        offs_d = tl.arange(0, BLOCK_D)
        # pass 1: total grad of the weights, g = dw + d_out @ tokens^T; support statistics.
        ssum = tl.sum(tl.zeros([BLOCK_C], tl.float32), axis=0)
        scnt = ssum
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            c_ok = cc < C
            g = tl.load(dw_ptr + b * C + cc, mask=c_ok, other=0.0).to(tl.float32)
            for d0 in range(0, D, BLOCK_D):
                dd = d0 + offs_d
                d_ok = dd < D
                t = tl.load(
                    tokens_ptr + cc[:, None] * D + dd[None, :],
                    mask=c_ok[:, None] & d_ok[None, :], other=0.0,
                ).to(tl.float32)  # fmt: skip
                do = tl.load(dout_ptr + b * D + dd, mask=d_ok, other=0.0).to(tl.float32)
                g += tl.sum(t * do[None, :], axis=1)
            w = tl.load(weights_ptr + b * C + cc, mask=c_ok, other=0.0).to(tl.float32)
            support = (w > 0) & c_ok
            ssum += tl.sum(tl.where(support, g, 0.0), axis=0)
            scnt += tl.sum(tl.where(support, 1.0, 0.0), axis=0)
            tl.store(dp_ptr + b * C + cc, g, mask=c_ok)
        tl.debug_barrier()
        mean = ssum / tl.maximum(scnt, 1.0)
        # pass 2: sparsemax backward, d_pooled = g - mean on the support, 0 elsewhere.
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            c_ok = cc < C
            g = tl.load(dp_ptr + b * C + cc, mask=c_ok, other=0.0)
            w = tl.load(weights_ptr + b * C + cc, mask=c_ok, other=0.0).to(tl.float32)
            tl.store(dp_ptr + b * C + cc, tl.where(w > 0, g - mean, 0.0 * w), mask=c_ok)
        tl.debug_barrier()
        # pass 3: d_feats for this row.
        dfeats_row = dfeats_ptr + b * N * D
        if POOL == 0:
            for n0 in range(0, N, BLOCK_N):
                nn = n0 + offs_n
                for d0 in range(0, D, BLOCK_D):
                    dd = d0 + offs_d
                    d_ok = dd < D
                    acc = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
                    for c0 in range(0, C, BLOCK_C):
                        cc = c0 + offs_c
                        c_ok = cc < C
                        dpv = tl.load(dp_ptr + b * C + cc, mask=c_ok, other=0.0)
                        ix = tl.load(idx_ptr + b * C + cc, mask=c_ok, other=-1)
                        onehot = tl.where(ix[None, :] == nn[:, None], dpv[None, :], 0.0)
                        t = tl.load(
                            tokens_ptr + cc[:, None] * D + dd[None, :],
                            mask=c_ok[:, None] & d_ok[None, :], other=0.0,
                        ).to(tl.float32)  # fmt: skip
                        acc = tl.dot(onehot, t, acc, input_precision="ieee")
                    tl.store(
                        dfeats_row + nn[:, None] * D + dd[None, :],
                        (acc * scale).to(dfeats_ptr.dtype.element_ty),
                        mask=(nn < N)[:, None] & d_ok[None, :],
                    )
        else:
            denom = _pool_denominator(mask_ptr, b, N, offs_n, HAS_MASK, POOL, BLOCK_N)
            for d0 in range(0, D, BLOCK_D):
                dd = d0 + offs_d
                d_ok = dd < D
                v = tl.zeros([BLOCK_D], tl.float32)
                for c0 in range(0, C, BLOCK_C):
                    cc = c0 + offs_c
                    c_ok = cc < C
                    dpv = tl.load(dp_ptr + b * C + cc, mask=c_ok, other=0.0)
                    t = tl.load(
                        tokens_ptr + cc[:, None] * D + dd[None, :],
                        mask=c_ok[:, None] & d_ok[None, :], other=0.0,
                    ).to(tl.float32)  # fmt: skip
                    v += tl.sum(dpv[:, None] * t, axis=0)
                v = v * scale / denom
                for n0 in range(0, N, BLOCK_N):
                    nn = n0 + offs_n
                    valid = _row_valid(mask_ptr, b, N, nn, HAS_MASK)
                    val = tl.where(valid[:, None], v[None, :], 0.0)
                    tl.store(
                        dfeats_row + nn[:, None] * D + dd[None, :],
                        val.to(dfeats_ptr.dtype.element_ty),
                        mask=(nn < N)[:, None] & d_ok[None, :],
                    )

    @triton.jit
    def _sst_bwd_tokens_kernel(
        feats_ptr, weights_ptr, dout_ptr, dp_ptr, idx_ptr, fsum_ptr, dtokens_ptr,
        scale, B, N, C, D,
        POOL: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        cc = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
        dd = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        c_ok = cc < C
        d_ok = dd < D
        both = c_ok[:, None] & d_ok[None, :]
        acc = tl.zeros([BLOCK_C, BLOCK_D], tl.float32)
        feats_b = feats_ptr
        w_b = weights_ptr
        dout_b = dout_ptr
        dp_b = dp_ptr
        idx_b = idx_ptr
        fsum_b = fsum_ptr
        for _ in range(0, B):
            w = tl.load(w_b + cc, mask=c_ok, other=0.0).to(tl.float32)
            do = tl.load(dout_b + dd, mask=d_ok, other=0.0).to(tl.float32)
            dpv = tl.load(dp_b + cc, mask=c_ok, other=0.0)
            if POOL == 0:
                ix = tl.maximum(tl.load(idx_b + cc, mask=c_ok, other=0), 0)
                p = tl.load(feats_b + ix[:, None] * D + dd[None, :], mask=both, other=0.0)
                p = p.to(tl.float32)
                idx_b += C
                feats_b += N * D
            else:
                p = tl.load(fsum_b + dd, mask=d_ok, other=0.0)[None, :]
                fsum_b += D
            acc += w[:, None] * do[None, :] + scale * dpv[:, None] * p
            w_b += C
            dout_b += D
            dp_b += C
        tl.store(
            dtokens_ptr + cc[:, None] * D + dd[None, :],
            acc.to(dtokens_ptr.dtype.element_ty),
            mask=both,
        )


_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _triton_blocks(feats: torch.Tensor, c: int, d: int) -> dict[str, int]:
    return triton_blocks(c, d, feats.is_cuda)


#: warps of the forward and backward row kernels: with 4, both spilled on sm_80 / sm_90 at the
#: benchmark's C = d = 128 (``signbench kernels compile``)
ROW_WARPS = 8


def fwd_row_config(c: int) -> tuple[int, int]:
    """(BLOCK_CF, num_warps) of the forward kernel: all C pooled logits of a row at once."""
    return max(16, triton.next_power_of_2(c)), ROW_WARPS


def triton_blocks(c: int, d: int, cuda: bool) -> dict[str, int]:
    """The tile sizes the three kernels share, for C tokens of width d (BLOCK_N = 32 frames
    spilled the row backward kernel's max-pool path in fp16 / bf16 on sm_80)."""
    interp = not cuda
    return {
        "BLOCK_N": 16,
        "BLOCK_C": min(max(16, triton.next_power_of_2(c)), 16 if interp else 64),
        "BLOCK_D": min(max(16, triton.next_power_of_2(d)), 16 if interp else 64),
    }


def _mask_arg(feats: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    # A bool tensor's bytes are 0/1: hand them over as uint8 without a copy.
    return feats if mask is None else mask.view(torch.uint8)


def _forward_triton(feats, tokens, mask, scale, pool):
    _native.dtype_code(feats, "sst_convert feats (triton)", _TRITON_DTYPES)
    bsz, n, d = feats.shape
    c = tokens.shape[0]
    if c > TRITON_MAX_C:
        raise ValueError(
            f"sst_convert (triton): C={c} exceeds the in-register limit {TRITON_MAX_C}"
        )
    dev = feats.device
    weights = torch.empty(bsz, c, device=dev, dtype=feats.dtype)
    out = torch.empty(bsz, d, device=dev, dtype=feats.dtype)
    raw = torch.empty(bsz, c, device=dev, dtype=torch.float32)
    is_max = pool == "max"
    argmax = torch.empty(bsz, c if is_max else 0, device=dev, dtype=torch.int32)
    fsum = torch.empty(bsz, 0 if is_max else d, device=dev, dtype=torch.float32)
    cf, warps = fwd_row_config(c)
    _sst_fwd_kernel[(bsz,)](
        feats, tokens, _mask_arg(feats, mask), weights, out, raw, argmax if is_max else raw,
        raw if is_max else fsum, float(scale), n, c, d,
        POOL=_POOL_CODE[pool], HAS_MASK=mask is not None, BLOCK_CF=cf,
        N_BISECT=N_BISECT, N_REFINE=N_REFINE,
        DOT_PRECISION="ieee" if feats.dtype == torch.float32 else "tf32",
        num_warps=warps, **_triton_blocks(feats, c, d),
    )  # fmt: skip
    return weights, out, raw, argmax, fsum


def _backward_triton(feats, tokens, mask, scale, pool, weights, argmax, fsum, d_weights, d_out):
    bsz, n, d = feats.shape
    c = tokens.shape[0]
    blocks = _triton_blocks(feats, c, d)
    d_feats = torch.empty_like(feats)
    d_tokens = torch.empty_like(tokens)
    d_pooled = torch.empty(bsz, c, device=feats.device, dtype=torch.float32)
    is_max = pool == "max"
    d_weights, d_out = d_weights.contiguous(), d_out.contiguous()
    _sst_bwd_row_kernel[(bsz,)](
        tokens, _mask_arg(feats, mask), weights, d_weights, d_out, d_pooled,
        argmax if is_max else d_pooled, d_feats, float(scale), n, c, d,
        POOL=_POOL_CODE[pool], HAS_MASK=mask is not None, **blocks, num_warps=ROW_WARPS,
    )  # fmt: skip
    grid = (triton.cdiv(c, blocks["BLOCK_C"]), triton.cdiv(d, blocks["BLOCK_D"]))
    _sst_bwd_tokens_kernel[grid](
        feats, weights, d_out, d_pooled, argmax if is_max else d_pooled,
        d_pooled if is_max else fsum, d_tokens, float(scale), bsz, n, c, d,
        POOL=_POOL_CODE[pool], BLOCK_C=blocks["BLOCK_C"], BLOCK_D=blocks["BLOCK_D"],
    )  # fmt: skip
    return d_feats, d_tokens, d_pooled


# --------------------------------------------------------------------------------------------
# native backend (csrc/sst)
# --------------------------------------------------------------------------------------------


def _upcast_cpu(feats: torch.Tensor) -> bool:
    return feats.device.type == "cpu" and feats.dtype in (torch.float16, torch.bfloat16)


def _native_call(device: torch.device, name: str, *args) -> None:
    kernels = _native.kernels(device)
    if device.type == "cuda":
        getattr(kernels, name)(*args, _native.stream_handle(device))
    else:
        getattr(kernels, name)(*args)


def _forward_native(feats, tokens, mask, scale, pool):
    if _upcast_cpu(feats):  # CPU kernels compute in fp32
        w, o, raw, argmax, fsum = _forward_native(feats.float(), tokens.float(), mask, scale, pool)
        return w.to(feats.dtype), o.to(feats.dtype), raw, argmax, fsum
    allowed = _native.allowed_dtypes(feats, cuda_fp64=True)
    code = _native.dtype_code(feats, "sst_convert feats", allowed)
    bsz, n, d = feats.shape
    c = tokens.shape[0]
    dev, cd = feats.device, _compute_dtype(feats.dtype)
    weights = torch.empty(bsz, c, device=dev, dtype=feats.dtype)
    out = torch.empty(bsz, d, device=dev, dtype=feats.dtype)
    raw = torch.empty(bsz, c, device=dev, dtype=cd)
    is_max = pool == "max"
    argmax = torch.empty(bsz, c if is_max else 0, device=dev, dtype=torch.int32)
    fsum = torch.empty(bsz, 0 if is_max else d, device=dev, dtype=cd)
    mask_ptr = 0 if mask is None else mask.data_ptr()
    _native_call(
        dev, "sst_forward", feats.data_ptr(), tokens.data_ptr(), mask_ptr, weights.data_ptr(),
        out.data_ptr(), raw.data_ptr(), argmax.data_ptr(), fsum.data_ptr(), bsz, n, c, d,
        float(scale), _POOL_CODE[pool], code,
    )  # fmt: skip
    return weights, out, raw, argmax, fsum


def _backward_native(feats, tokens, mask, scale, pool, weights, argmax, fsum, d_weights, d_out):
    if _upcast_cpu(feats):
        d_f, d_t, d_p = _backward_native(
            feats.float(), tokens.float(), mask, scale, pool, weights.float(), argmax, fsum,
            d_weights.float(), d_out.float(),
        )  # fmt: skip
        return d_f.to(feats.dtype), d_t.to(tokens.dtype), d_p
    allowed = _native.allowed_dtypes(feats, cuda_fp64=True)
    code = _native.dtype_code(feats, "sst_convert feats", allowed)
    bsz, n, d = feats.shape
    c = tokens.shape[0]
    d_weights = d_weights.to(feats.dtype).contiguous()
    d_out = d_out.to(feats.dtype).contiguous()
    cd = _compute_dtype(feats.dtype)
    d_feats = torch.empty(feats.shape, device=feats.device, dtype=cd)  # accumulated in fp32
    d_tokens = torch.empty_like(tokens)
    d_pooled = torch.empty(bsz, c, device=feats.device, dtype=cd)
    mask_ptr = 0 if mask is None else mask.data_ptr()
    _native_call(
        feats.device, "sst_backward", feats.data_ptr(), tokens.data_ptr(), mask_ptr,
        weights.data_ptr(), argmax.data_ptr(), fsum.data_ptr(), d_weights.data_ptr(),
        d_out.data_ptr(), d_feats.data_ptr(), d_tokens.data_ptr(), d_pooled.data_ptr(),
        bsz, n, c, d, float(scale), _POOL_CODE[pool], code,
    )  # fmt: skip
    return d_feats.to(feats.dtype), d_tokens, d_pooled


_FORWARD = {"torch": _forward_torch, "triton": _forward_triton, "native": _forward_native}
_BACKWARD = {"torch": _backward_torch, "triton": _backward_triton, "native": _backward_native}


class _SSTConvertFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, tokens, scale_tensor, mask, scale, pool, backend):
        weights, out, raw, argmax, fsum = _FORWARD[backend](feats, tokens, mask, scale, pool)
        ctx.scale, ctx.pool, ctx.backend = scale, pool, backend
        ctx.has_mask = mask is not None
        ctx.scale_dtype = None if scale_tensor is None else scale_tensor.dtype
        saved = (feats, tokens, weights, raw, argmax, fsum)
        ctx.save_for_backward(*saved, *((mask,) if mask is not None else ()))
        return weights, out

    @staticmethod
    def backward(ctx, d_weights, d_out):
        feats, tokens, weights, raw, argmax, fsum, *rest = ctx.saved_tensors
        mask = rest[0] if ctx.has_mask else None
        d_feats, d_tokens, d_pooled = _BACKWARD[ctx.backend](
            feats, tokens, mask, ctx.scale, ctx.pool, weights, argmax, fsum, d_weights, d_out
        )
        d_scale = None
        if ctx.needs_input_grad[2]:
            # d r_scaled / d scale = unscaled pooled value: exact also when scale == 0.
            d_scale = (d_pooled * raw.to(d_pooled.dtype)).sum().to(ctx.scale_dtype)
        return d_feats, d_tokens, d_scale, None, None, None, None


def _check_inputs(feats, tokens, mask, scale, pool) -> None:
    if not isinstance(feats, torch.Tensor) or not isinstance(tokens, torch.Tensor):
        raise TypeError("sst_convert: feats and tokens must be torch.Tensors")
    if feats.dim() != 3:
        raise ValueError(f"sst_convert: feats must be (B, N, d), got shape {tuple(feats.shape)}")
    if tokens.dim() != 2:
        raise ValueError(f"sst_convert: tokens must be (C, d), got shape {tuple(tokens.shape)}")
    if tokens.shape[1] != feats.shape[2]:
        raise ValueError(
            f"sst_convert: tokens have d={tokens.shape[1]} but feats have d={feats.shape[2]}"
        )
    if not feats.is_floating_point():
        raise TypeError(f"sst_convert: feats must be floating point, got {feats.dtype}")
    if tokens.dtype != feats.dtype:
        raise TypeError(f"sst_convert: tokens are {tokens.dtype} but feats are {feats.dtype}")
    if tokens.device != feats.device:
        raise ValueError(f"sst_convert: tokens are on {tokens.device} but feats on {feats.device}")
    if min(feats.shape) == 0 or tokens.shape[0] == 0:
        raise ValueError(
            f"sst_convert: empty input (feats {tuple(feats.shape)}, tokens {tuple(tokens.shape)})"
        )
    if pool not in POOLS:
        raise ValueError(f"sst_convert: pool must be one of {POOLS}, got {pool!r}")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise TypeError(f"sst_convert: mask must be a bool tensor, got {got}")
        if tuple(mask.shape) != tuple(feats.shape[:2]):
            raise ValueError(
                f"sst_convert: mask must have shape (B, N) = {tuple(feats.shape[:2])}, "
                f"got {tuple(mask.shape)}"
            )
        if mask.device != feats.device:
            raise ValueError(f"sst_convert: mask is on {mask.device} but feats on {feats.device}")
        # A value check: on a GPU it would sync every call, so it runs there only when asked.
        empty = (~mask.any(dim=1)).nonzero().flatten().tolist() if check_values(mask) else []
        if empty:
            raise ValueError(
                f"sst_convert: mask row {empty[0]} has no valid frame (rows without valid "
                f"frames: {empty[:8]})"
            )
    if isinstance(scale, torch.Tensor):
        if scale.dim() != 0:
            raise ValueError(f"sst_convert: scale must be a 0-d tensor, got {tuple(scale.shape)}")
        if not scale.is_floating_point():
            raise TypeError(f"sst_convert: scale must be floating point, got {scale.dtype}")
        if scale.device != feats.device:
            raise ValueError(f"sst_convert: scale is on {scale.device} but feats on {feats.device}")


def sst_convert(
    feats: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: float | torch.Tensor = 1.0,
    pool: str = "max",
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """HyperSign's SST converter: ``(weights (B, C), out (B, d))``, see the module docstring.

    ``feats`` (B, N, d) and ``tokens`` (C, d) share a floating dtype and device; ``mask`` (B, N)
    bool, True = valid frame (None: all valid); ``scale`` a float or a 0-d tensor (gradients flow
    to it when it requires grad); ``pool`` in ``("max", "mean", "sum")``.
    """
    _check_inputs(feats, tokens, mask, scale, pool)
    name = resolve(backend, feats.device)
    scale_tensor = scale if isinstance(scale, torch.Tensor) else None
    return _SSTConvertFunction.apply(
        feats.contiguous(),
        tokens.contiguous(),
        scale_tensor,
        None if mask is None else mask.contiguous(),
        float(scale.detach()) if isinstance(scale, torch.Tensor) else float(scale),
        pool,
        name,
    )
