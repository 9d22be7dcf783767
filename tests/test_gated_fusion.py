"""gated_blend and the GatedCrossAttention / LocalWindowSelfAttention modules: every backend
against the reference, the reference and the modules against hand-written torch computations of
SignFuse eqs. 6–11 (independent of the code under test)."""

from __future__ import annotations

import math

import pytest
import torch

from harness.ops import availability
from harness.ops.gated_fusion import (
    GatedCrossAttention,
    LocalWindowSelfAttention,
    gated_blend,
    gated_blend_reference,
)

BACKENDS = ("torch", "native", "triton")
KERNEL_BACKENDS = ("native", "triton")
TOL = {torch.float32: dict(atol=2e-5, rtol=2e-5), torch.float16: dict(atol=1e-2, rtol=2e-3)}
GRAD_TOL = {torch.float32: dict(atol=1e-4, rtol=1e-4), torch.float16: dict(atol=3e-2, rtol=1e-2)}
NAMES = ("o_vs", "o_sv", "fv", "fs", "gate_weight", "gate_bias", "ln_weight", "ln_bias")


def _backend(name: str) -> str:
    ok, reason = availability(name, "cpu")
    if not ok:
        pytest.skip(f"{name} unavailable on cpu: {reason}")
    return name


def _blend_inputs(shape, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    d = shape[-1]
    acts = [torch.randn(*shape, generator=gen) for _ in range(4)]
    w = torch.randn(d, 2 * d, generator=gen) / math.sqrt(2 * d)
    b = torch.randn(d, generator=gen) * 0.1
    lw = 1 + 0.2 * torch.randn(d, generator=gen)
    lb = 0.1 * torch.randn(d, generator=gen)
    dy = torch.randn(*shape, generator=gen)
    return [t.to(dtype) for t in (*acts, w, b, lw, lb)], dy.to(dtype)


def _by_hand(o_vs, o_sv, fv, fs, w, b, lw, lb, eps=1e-5):
    """Eqs. 10–11 written out (fp64): split gate weight, explicit LayerNorm statistics."""
    o_vs, o_sv, fv, fs, w, b, lw, lb = (t.double() for t in (o_vs, o_sv, fv, fs, w, b, lw, lb))
    d = o_vs.shape[-1]
    alpha = torch.sigmoid(o_vs @ w[:, :d].t() + o_sv @ w[:, d:].t() + b)
    h = alpha * o_vs + (1 - alpha) * o_sv
    mu = h.mean(-1, keepdim=True)
    var = ((h - mu) ** 2).mean(-1, keepdim=True)
    return (h - mu) / torch.sqrt(var + eps) * lw + lb + (fv + fs) / 2


def _run_blend(backend, inputs, dy):
    leaves = [t.clone().requires_grad_() for t in inputs]
    y = gated_blend(*leaves, backend=backend)
    y.backward(dy)
    return y, [t.grad for t in leaves]


# --- reference ------------------------------------------------------------------------------


def test_reference_matches_hand_written_equations():
    inputs, _ = _blend_inputs((2, 5, 24), torch.float64)
    torch.testing.assert_close(gated_blend_reference(*inputs), _by_hand(*inputs))


def test_reference_gradcheck_float64():
    inputs, _ = _blend_inputs((2, 4), torch.float64, seed=1)
    leaves = [t.clone().requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(gated_blend_reference, leaves)


# --- backends -------------------------------------------------------------------------------


# torch is the reference (checked against the hand-written equations above)
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape", [(2, 5, 24), (1, 37, 64), (3, 16), (1, 1, 40)])
def test_blend_backend_matches_reference(backend, dtype, shape):
    backend = _backend(backend)
    inputs, dy = _blend_inputs(shape, dtype, seed=len(shape) + shape[-1])
    y, grads = _run_blend(backend, inputs, dy)
    y_ref, grads_ref = _run_blend("torch", inputs, dy)
    assert y.dtype == dtype and y.shape == shape
    torch.testing.assert_close(y, y_ref, **TOL[dtype])
    for name, g, g_ref in zip(NAMES, grads, grads_ref, strict=True):
        assert g.dtype == dtype, name
        torch.testing.assert_close(g, g_ref, **GRAD_TOL[dtype], msg=lambda m, n=name: f"{n}: {m}")


def test_blend_native_float64():
    backend = _backend("native")
    inputs, dy = _blend_inputs((4, 9, 20), torch.float64, seed=7)
    y, grads = _run_blend(backend, inputs, dy)
    _, grads_ref = _run_blend("torch", inputs, dy)
    torch.testing.assert_close(y, _by_hand(*inputs), atol=1e-12, rtol=1e-12)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_blend_non_contiguous_inputs(backend):
    backend = _backend(backend)
    inputs, _ = _blend_inputs((5, 2, 24), torch.float32, seed=3)
    acts = [t.transpose(0, 1) for t in inputs[:4]]  # (2, 5, 24) views
    w = inputs[4].t().contiguous().t()  # same values, column-major storage
    assert not acts[0].is_contiguous() and not w.is_contiguous()
    y = gated_blend(*acts, w, *inputs[5:], backend=backend)
    torch.testing.assert_close(y, _by_hand(*acts, w, *inputs[5:]).float(), **TOL[torch.float32])


def test_blend_nan_propagates():
    inputs, _ = _blend_inputs((3, 8), torch.float32)
    inputs[0] = inputs[0].clone()
    inputs[0][1, 2] = float("nan")
    for backend in ("torch", "native"):
        if availability(backend, "cpu")[0]:
            y = gated_blend(*inputs, backend=backend)
            assert torch.isnan(y[1]).all() and torch.isfinite(y[[0, 2]]).all()


def test_blend_errors_name_the_argument():
    inputs, _ = _blend_inputs((2, 3, 8), torch.float32)
    bad = list(inputs)
    bad[1] = inputs[1][:, :2]
    with pytest.raises(ValueError, match="o_sv has shape"):
        gated_blend(*bad)
    bad = list(inputs)
    bad[4] = inputs[4].t()
    with pytest.raises(ValueError, match=r"gate_weight has shape \(16, 8\), expected \(8, 16\)"):
        gated_blend(*bad)
    bad = list(inputs)
    bad[6] = inputs[6][:4]
    with pytest.raises(ValueError, match="ln_weight has shape"):
        gated_blend(*bad)
    bad = list(inputs)
    bad[3] = inputs[3].double()
    with pytest.raises(TypeError, match=r"fs is torch\.float64"):
        gated_blend(*bad)


# --- modules --------------------------------------------------------------------------------


def _mha_by_hand(q, k, v, key_mask, n_heads, band=None):
    """Dense multi-head attention (fp64) with explicit masks; rows without a valid key → 0."""
    B, Tq, d = q.shape
    Tk, dh = k.shape[1], d // n_heads
    q, k, v = (t.double().view(B, -1, n_heads, dh).permute(0, 2, 1, 3) for t in (q, k, v))
    scores = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(dh)
    allowed = torch.ones(B, 1, Tq, Tk, dtype=torch.bool)
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, :]
    if band is not None:
        allowed = allowed & band
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    probs = torch.where(allowed.any(-1, keepdim=True), probs, torch.zeros_like(probs))
    return torch.einsum("bhij,bhjd->bhid", probs, v).permute(0, 2, 1, 3).reshape(B, Tq, d)


def _cmfa_by_hand(m: GatedCrossAttention, fv, fs, mask_v, mask_s):
    def lin(layer, x):
        return x.double() @ layer.weight.double().t() + layer.bias.double()

    H = m.n_heads
    if m.mode == "cross":
        o_vs = _mha_by_hand(lin(m.q_v, fv), lin(m.k_s, fs), lin(m.v_s, fs), mask_s, H)  # eq. 8
        o_sv = _mha_by_hand(lin(m.q_s, fs), lin(m.k_v, fv), lin(m.v_v, fv), mask_v, H)  # eq. 9
    else:
        o_vs, o_sv = fv.double(), fs.double()
    alpha = torch.sigmoid(lin(m.gate, torch.cat([o_vs, o_sv], -1)))  # eq. 10
    h = alpha * o_vs + (1 - alpha) * o_sv
    mu = h.mean(-1, keepdim=True)
    var = ((h - mu) ** 2).mean(-1, keepdim=True)
    ln = (h - mu) / torch.sqrt(var + m.norm.eps) * m.norm.weight.double() + m.norm.bias.double()
    return ln + (fv.double() + fs.double()) / 2  # eq. 11


def _module_inputs(B=2, T=7, d=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    fv = torch.randn(B, T, d, generator=gen)
    fs = torch.randn(B, T, d, generator=gen)
    mask_v = torch.ones(B, T, dtype=torch.bool)
    mask_v[0, 5:] = False
    mask_s = torch.ones(B, T, dtype=torch.bool)
    mask_s[1, 1:] = False  # a single valid skeletal key
    return fv, fs, mask_v, mask_s


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["cross", "gate"])
def test_module_matches_equations_6_to_11(backend, mode):
    backend = _backend(backend)
    torch.manual_seed(0)
    m = GatedCrossAttention(32, 2, mode=mode)
    with torch.no_grad():  # non-trivial LayerNorm affine so eq. 11's LN is really exercised
        m.norm.weight.uniform_(0.5, 1.5)
        m.norm.bias.uniform_(-0.2, 0.2)
    fv, fs, mask_v, mask_s = _module_inputs()
    y = m(fv, fs, mask_v, mask_s, backend=backend)
    want = _cmfa_by_hand(m, fv, fs, mask_v, mask_s).float()
    torch.testing.assert_close(y, want, **TOL[torch.float32])


@pytest.mark.parametrize("backend", ["native", "triton"])
def test_module_gradients_match_torch_backend(backend):
    backend = _backend(backend)
    torch.manual_seed(1)
    m = GatedCrossAttention(32, 2)
    fv, fs, mask_v, mask_s = _module_inputs(seed=1)
    mask_s[1] = False  # batch 1: O_v→s has no valid key at all (zeros, finite grads)
    grads = {}
    for name in ("torch", backend):
        m.zero_grad()
        a, b = fv.clone().requires_grad_(), fs.clone().requires_grad_()
        m(a, b, mask_v, mask_s, backend=name).square().sum().backward()
        grads[name] = [a.grad, b.grad] + [p.grad.clone() for p in m.parameters()]
    for g, g_ref in zip(grads[backend], grads["torch"], strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, g_ref, **GRAD_TOL[torch.float32])


def test_module_submodules_and_parameter_count():
    m = GatedCrossAttention(16, 4)
    names = {n for n, _ in m.named_children()}
    assert names == {"q_v", "k_v", "v_v", "q_s", "k_s", "v_s", "gate", "norm"}
    d = 16
    assert sum(p.numel() for p in m.parameters()) == 6 * (d * d + d) + (2 * d * d + d) + 2 * d
    g = GatedCrossAttention(16, 4, mode="gate")
    assert {n for n, _ in g.named_children()} == {"gate", "norm"}


def test_module_errors():
    m = GatedCrossAttention(8, 2)
    fv = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="Tv == Ts"):
        m(fv, torch.randn(2, 6, 8))
    with pytest.raises(ValueError, match="feature size 4"):
        m(fv, torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"mask_s has shape \(2, 4\)"):
        m(fv, fv, mask_s=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask_v must be a bool"):
        m(fv, fv, mask_v=torch.ones(2, 5))
    with pytest.raises(ValueError, match="not divisible"):
        GatedCrossAttention(10, 4)
    with pytest.raises(ValueError, match="mode must be"):
        GatedCrossAttention(8, 2, mode="concat")


@pytest.mark.parametrize("backend", BACKENDS)
def test_local_window_self_attention_matches_band_attention(backend):
    backend = _backend(backend)
    torch.manual_seed(2)
    m = LocalWindowSelfAttention(32, 2, window=7)
    x = torch.randn(2, 19, 32)
    mask = torch.ones(2, 19, dtype=torch.bool)
    mask[1, 12:] = False
    i = torch.arange(19)
    band = ((i[:, None] - i[None, :]).abs() <= 3)[None, None]

    def lin(layer, t):
        return t.double() @ layer.weight.double().t() + layer.bias.double()

    att = _mha_by_hand(lin(m.q, x), lin(m.k, x), lin(m.v, x), mask, 2, band=band)
    want = lin(m.out, att).float()
    torch.testing.assert_close(m(x, mask, backend=backend), want, **TOL[torch.float32])


@pytest.mark.parametrize("shape", [(70, 300), (2, 65, 33)])
def test_blend_native_blocked_gate_gemm(shape):
    """The fp32 native forward computes z in 64-row blocks against 32-column panels of W_gᵀ with
    K = 2d cut into 256-wide slices: rows past a block, d not a panel multiple, and a slice that
    straddles the o_vs / o_sv boundary (d = 300: slice [256, 512)) must match the equations."""
    backend = _backend("native")
    inputs, dy = _blend_inputs(shape, torch.float32, seed=41)
    y, grads = _run_blend(backend, inputs, dy)
    torch.testing.assert_close(y.double(), _by_hand(*(t.double() for t in inputs)),
                               atol=2e-5, rtol=2e-5)
    _, grads_ref = _run_blend("torch", inputs, dy)
    for name, g, g_ref in zip(NAMES, grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, **GRAD_TOL[torch.float32],
                                   msg=lambda m, n=name: f"{n}: {m}")
