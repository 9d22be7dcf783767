"""sst_convert (HyperSign's SST converter): every backend against the torch reference (outputs and
gradients for feats, tokens and a learnable scale), the reference against an independent
per-row computation, masking, ties, edge shapes and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.ops import sst as sst_module
from harness.ops.dispatch import BACKENDS, availability
from harness.ops.sst import sst_convert, sst_convert_reference

TOL = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float16: {"atol": 2e-3, "rtol": 1e-2},
    torch.float64: {"atol": 1e-10, "rtol": 1e-10},
    torch.bfloat16: {"atol": 1e-2, "rtol": 2e-2},
}
GRAD_TOL = {
    torch.float32: {"atol": 5e-5, "rtol": 1e-4},
    torch.float16: {"atol": 1e-2, "rtol": 2e-2},
    torch.float64: {"atol": 1e-10, "rtol": 1e-10},
    torch.bfloat16: {"atol": 5e-2, "rtol": 5e-2},
}
POOLS = ("max", "mean", "sum")


def backend_params(names=BACKENDS):
    params = []
    for name in names:
        ok, reason = availability(name, "cpu")
        params.append(pytest.param(name, marks=pytest.mark.skipif(not ok, reason=reason)))
    return params


def make_inputs(b, n, c, d, seed=0, dtype=torch.float32, masked=True):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, n, d, generator=gen).to(dtype)
    tokens = (torch.randn(c, d, generator=gen) / d**0.25).to(dtype)
    mask = None
    if masked:
        lengths = torch.randint(1, n + 1, (b,), generator=gen)
        lengths[0] = n
        mask = torch.arange(n)[None, :] < lengths[:, None]
    return feats, tokens, mask


def run_with_grads(fn, feats, tokens, mask, scale, pool, seed=11):
    feats = feats.detach().clone().requires_grad_(True)
    tokens = tokens.detach().clone().requires_grad_(True)
    scale = scale.detach().clone().requires_grad_(True)
    weights, out = fn(feats, tokens, mask, scale, pool)
    gen = torch.Generator().manual_seed(seed)
    gw = torch.randn(weights.shape, generator=gen).to(weights.device, weights.dtype)
    go = torch.randn(out.shape, generator=gen).to(out.device, out.dtype)
    loss = (weights.float() * gw.float()).sum() + (out.float() * go.float()).sum()
    grads = torch.autograd.grad(loss, (feats, tokens, scale))
    return weights, out, grads


def check_backend(backend, feats, tokens, mask, scale_value, pool, ref_inputs=None):
    """Compare ``backend`` with autograd through the reference (on ``ref_inputs`` if given)."""
    dtype = feats.dtype
    scale = torch.tensor(scale_value, dtype=torch.float32, device=feats.device)

    def fused(f, t, m, s, p):
        return sst_convert(f, t, m, s, p, backend=backend)

    w, o, grads = run_with_grads(fused, feats, tokens, mask, scale, pool)
    rf, rt, rm = ref_inputs or (feats, tokens, mask)
    w_ref, o_ref, grads_ref = run_with_grads(sst_convert_reference, rf, rt, rm, scale, pool)
    assert w.dtype == dtype and o.dtype == dtype
    assert w.shape == (feats.shape[0], tokens.shape[0]) and o.shape == feats.shape[::2]
    torch.testing.assert_close(w, w_ref, **TOL[dtype])
    torch.testing.assert_close(o, o_ref, **TOL[dtype])
    for name, g, g_ref in zip(("feats", "tokens", "scale"), grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, **GRAD_TOL[dtype], msg=lambda m, n=name: f"{n}: {m}")
    return w, o, grads


# ---------------------------------------------------------------- the reference itself


@pytest.mark.parametrize("pool", POOLS)
def test_reference_matches_per_row_numpy(pool):
    """Independent check of the reference: plain numpy loops over rows, simplex projection by
    bisection in float64."""
    feats, tokens, mask = make_inputs(3, 6, 5, 4, seed=2, dtype=torch.float64)
    w, o = sst_convert_reference(feats, tokens, mask, 1.7, pool)
    for b in range(3):
        f = feats[b][mask[b]].numpy()
        logits = 1.7 * f @ tokens.numpy().T
        r = {"max": logits.max(0), "mean": logits.mean(0), "sum": logits.sum(0)}[pool]
        lo, hi = r.max() - 1, r.max()
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.maximum(r - mid, 0).sum() >= 1 else (lo, mid)
        p = np.maximum(r - lo, 0)
        np.testing.assert_allclose(w[b].numpy(), p, atol=1e-12)
        np.testing.assert_allclose(o[b].numpy(), p @ tokens.numpy(), atol=1e-12)


@pytest.mark.parametrize("pool", POOLS)
def test_reference_gradcheck_float64(pool):
    feats, tokens, mask = make_inputs(2, 5, 6, 3, seed=4, dtype=torch.float64)
    feats.requires_grad_(True)
    tokens.requires_grad_(True)
    scale = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)

    def fn(f, t, s):
        return sst_convert_reference(f, t, mask, s, pool)

    assert torch.autograd.gradcheck(fn, (feats, tokens, scale))


# ---------------------------------------------------------------- backends vs reference


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_backend_matches_reference(backend, pool, dtype):
    feats, tokens, mask = make_inputs(3, 21, 19, 23, seed=1, dtype=dtype)
    check_backend(backend, feats, tokens, mask, 0.7, pool)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("pool", POOLS)
def test_no_mask_negative_scale_non_contiguous(backend, pool):
    gen = torch.Generator().manual_seed(9)
    feats = torch.randn(17, 2, 5, generator=gen).permute(1, 0, 2)  # (2, 17, 5) view
    tokens = torch.randn(7, 10, generator=gen)[:, ::2]  # (7, 5) strided view
    assert not feats.is_contiguous() and not tokens.is_contiguous()
    check_backend(backend, feats, tokens, None, -1.4, pool)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("pool", POOLS)
def test_padded_frames_never_leak(backend, pool):
    feats, tokens, mask = make_inputs(3, 9, 6, 5, seed=3)
    clean = torch.where(mask[:, :, None], feats, 0.0)
    poisoned = torch.where(mask[:, :, None], feats, 1e30)
    poisoned[2, -1, 0] = float("nan")
    mask[2, -1] = False
    clean[2, -1] = 0.0
    _, _, grads = check_backend(
        backend, poisoned, tokens, mask, 2.0, pool, ref_inputs=(clean, tokens, mask)
    )
    assert (grads[0][~mask] == 0).all()


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("pool", POOLS)
def test_edge_shapes(backend, pool):
    # N = 1; a row with a single valid frame; d and C not multiples of 16.
    feats, tokens, _ = make_inputs(2, 1, 5, 3, seed=5)
    check_backend(backend, feats, tokens, None, 1.0, pool)
    feats, tokens, _ = make_inputs(2, 6, 9, 17, seed=6)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 4] = True
    mask[1, :3] = True
    check_backend(backend, feats, tokens, mask, 3.0, pool)


@pytest.mark.parametrize("backend", backend_params())
def test_thousand_tokens(backend):
    feats, tokens, mask = make_inputs(2, 5, 1000, 16, seed=8)
    for pool in ("max", "mean"):
        w, _, _ = check_backend(backend, feats, tokens, mask, 4.0, pool)
        assert torch.allclose(w.sum(1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("pool", POOLS)
def test_zero_scale_gradient(backend, pool):
    feats, tokens, mask = make_inputs(2, 7, 6, 5, seed=10)
    _, _, grads = check_backend(backend, feats, tokens, mask, 0.0, pool)
    assert torch.isfinite(grads[2]) and grads[2] != 0


@pytest.mark.parametrize("backend", backend_params(["native", "torch"]))
def test_float64(backend):
    feats, tokens, mask = make_inputs(2, 8, 7, 6, seed=12, dtype=torch.float64)
    for pool in POOLS:
        check_backend(backend, feats, tokens, mask, 1.5, pool)


@pytest.mark.parametrize("backend", backend_params())
def test_max_ties_route_to_first_frame(backend):
    """Identical frames tie exactly: the saved argmax is the first maximal valid frame."""
    feats, tokens, _ = make_inputs(2, 40, 8, 5, seed=13)
    feats[:, 4] = feats[:, 1]
    feats[:, 5] = feats[:, 1]
    feats[0, 1] = 100 * feats[0, 1]  # row 0: frames 1, 4 and 35 tie (35 in another N-tile)
    feats[0, 4] = feats[0, 1]
    feats[0, 35] = feats[0, 1]
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 1] = False  # row 1: the first copy is padded, so ties go to frame 4
    forward = sst_module._FORWARD[backend]
    w, o, _, argmax, _ = forward(feats, tokens, mask, 1.0, "max")
    logits = np.einsum("bnd,cd->bnc", feats.double().numpy(), tokens.double().numpy())
    logits[~mask.numpy()] = -np.inf
    expected = logits.argmax(axis=1)  # numpy: first occurrence of the max
    assert (argmax.long().numpy() == expected).all()
    w_ref, o_ref = sst_convert_reference(feats, tokens, mask, 1.0, "max")
    torch.testing.assert_close(w, w_ref)
    torch.testing.assert_close(o, o_ref)


@pytest.mark.parametrize("backend", backend_params())
def test_nan_in_valid_frame_propagates(backend):
    feats, tokens, _ = make_inputs(2, 4, 5, 3, seed=14)
    feats[1, 2, 0] = float("nan")
    for pool in POOLS:
        w, o = sst_convert(feats, tokens, None, 1.0, pool, backend=backend)
        assert torch.isnan(w[1]).all() and torch.isnan(o[1]).all()
        assert torch.isfinite(w[0]).all() and torch.isfinite(o[0]).all()


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["native", "triton"])
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_backends_match_reference(backend, pool, dtype):
    ok, reason = availability(backend, "cuda")
    if not ok:
        pytest.skip(reason)
    feats, tokens, mask = make_inputs(5, 70, 130, 48, seed=21, dtype=dtype)
    feats[1, -3:] = 1e4  # padded frames (row 1 may be shorter) must not leak
    check_backend(backend, feats.cuda(), tokens.cuda(), mask.cuda(), 0.7, pool)
    feats, tokens, mask = make_inputs(3, 9, 1024, 128, seed=22, dtype=dtype)
    check_backend(backend, feats.cuda(), tokens.cuda(), mask.cuda(), 1.0, pool)


def test_errors():
    feats, tokens, mask = make_inputs(3, 4, 5, 6)
    mask[1] = False
    with pytest.raises(ValueError, match="mask row 1 has no valid frame"):
        sst_convert(feats, tokens, mask)
    with pytest.raises(TypeError, match=r"tokens are torch.float64 but feats are torch.float32"):
        sst_convert(feats, tokens.double())
    with pytest.raises(ValueError, match="tokens are on meta but feats on cpu"):
        sst_convert(feats, tokens.to("meta"))
    with pytest.raises(ValueError, match="mask is on meta"):
        sst_convert(feats, tokens, torch.ones(3, 4, dtype=torch.bool, device="meta"))
    with pytest.raises(ValueError, match="scale is on meta"):
        sst_convert(feats, tokens, None, torch.tensor(1.0, device="meta"))
    with pytest.raises(ValueError, match=r"feats must be \(B, N, d\)"):
        sst_convert(feats[0], tokens)
    with pytest.raises(ValueError, match="tokens have d=5 but feats have d=6"):
        sst_convert(feats, tokens[:, :5])
    with pytest.raises(ValueError, match=r"mask must have shape \(B, N\) = \(3, 4\)"):
        sst_convert(feats, tokens, torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        sst_convert(feats, tokens, torch.ones(3, 4))
    with pytest.raises(ValueError, match="pool must be one of"):
        sst_convert(feats, tokens, pool="median")
    with pytest.raises(ValueError, match="scale must be a 0-d tensor"):
        sst_convert(feats, tokens, scale=torch.ones(2))
    with pytest.raises(TypeError, match="feats must be floating point"):
        sst_convert(feats.long(), tokens.long())


@pytest.mark.parametrize("backend", backend_params(("native",)))
@pytest.mark.parametrize(("c", "d", "scale"), [(37, 19, 0.7), (130, 64, -1.3)])
def test_native_tiled_max_pool_matches_reference(backend, c, d, scale):
    """The fp32 native max pool gathers valid frames 32 at a time and computes their logits
    against zero-padded 32-token panels: frame tiles across a mask with holes, a token count
    that is not a panel multiple, and a negative scale (max of scaled = min of raw) must all
    match the reference, gradients included."""
    feats, tokens, _ = make_inputs(3, 75, c, d, seed=31)
    gen = torch.Generator().manual_seed(32)
    mask = torch.rand(3, 75, generator=gen) > 0.4
    mask[:, 0] = True
    mask[1, 20:60] = False  # a whole tile of padding in the middle
    check_backend(backend, feats, tokens, mask, scale, "max")
