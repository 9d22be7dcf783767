"""hyper_modulate and HyperFusion (HyperSign eq. 3 and Fig. 4): every backend against the reference.

The reference itself is checked against a hand-written float64 computation of the formula (explicit
mean / biased variance, explicit activation formulas) and by gradcheck, so no test compares code
with itself.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harness.ops import hyper as hyper_mod
from harness.ops.dispatch import BACKENDS, availability
from harness.ops.hyper import (
    ACTIVATIONS,
    HyperFusion,
    fused_generator_modulate,
    hyper_modulate,
    hyper_modulate_reference,
)

TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-5}, torch.float16: {"rtol": 1e-2, "atol": 2e-3},
       torch.float64: {"rtol": 1e-10, "atol": 1e-10}}
GRAD_TOL = {torch.float32: {"rtol": 1e-4, "atol": 1e-4},
            torch.float16: {"rtol": 2e-2, "atol": 1e-2}}


def _backend_params(names=BACKENDS):
    params = []
    for name in names:
        ok, reason = availability(name, "cpu")
        params.append(pytest.param(name, id=name,
                                   marks=() if ok else pytest.mark.skip(reason=reason)))
    return params


def _inputs(shape, dtype=torch.float32, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    d = shape[-1]
    fv, fk, gamma, beta = (scale * torch.randn(shape, generator=gen) for _ in range(4))
    w = 1.0 + 0.5 * torch.randn(d, generator=gen)
    b = 0.5 * torch.randn(d, generator=gen)
    param = torch.float64 if dtype == torch.float64 else torch.float32  # fp32 LN params for halves
    return [t.to(dtype) for t in (fv, fk, gamma, beta)] + [w.to(param), b.to(param)]


def _by_hand(fv, fk, gamma, beta, w, b, eps, activation):
    """Eq. (3) in float64, written out: independent of the reference's F.layer_norm / F.gelu."""
    fv, fk, gamma, beta, w, b = (t.double() for t in (fv, fk, gamma, beta, w, b))
    x = fv * fk
    mean = x.sum(-1, keepdim=True) / x.shape[-1]
    var = ((x - mean) ** 2).sum(-1, keepdim=True) / x.shape[-1]
    z = gamma * ((x - mean) / torch.sqrt(var + eps) * w + b) + beta
    if activation == "relu":
        return torch.where(z > 0, z, torch.zeros_like(z))
    if activation == "gelu":
        return 0.5 * z * (1 + torch.special.erf(z / math.sqrt(2)))
    if activation == "sigmoid":
        return 1 / (1 + torch.exp(-z))
    if activation == "silu":
        return z / (1 + torch.exp(-z))
    return z


def _run(backend, tensors, activation, eps=1e-5, dout=None):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = hyper_modulate(*leaves, eps=eps, activation=activation, backend=backend)
    if dout is None:
        dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out.dtype)
    grads = torch.autograd.grad(out, leaves, dout)
    return out, grads, dout


def _ref(tensors, activation, eps=1e-5, dout=None):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = hyper_modulate_reference(*leaves, eps=eps, activation=activation)
    return out, torch.autograd.grad(out, leaves, dout)


# ---------------------------------------------------------------- reference is right


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_reference_matches_hand_written_formula(activation):
    tensors = _inputs((4, 6, 37), torch.float64, seed=1)
    out = hyper_modulate_reference(*tensors, eps=1e-5, activation=activation)
    torch.testing.assert_close(out, _by_hand(*tensors, 1e-5, activation), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_reference_gradcheck_float64(activation):
    tensors = [t.requires_grad_(True) for t in _inputs((3, 7), torch.float64, seed=2)]
    assert torch.autograd.gradcheck(
        lambda *a: hyper_modulate_reference(*a, eps=1e-5, activation=activation), tensors)


# ---------------------------------------------------------------- every backend vs reference
# (the torch backend is the reference; its own checks: the hand-written formula and gradcheck)


@pytest.mark.parametrize("backend", _backend_params(("native", "triton")))
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape", [(7, 33), (3, 5, 100), (3, 1000)], ids=str)
def test_backend_matches_reference(backend, activation, dtype, shape):
    tensors = _inputs(shape, dtype, seed=sum(shape))
    out, grads, dout = _run(backend, tensors, activation)
    ref_out, ref_grads = _ref(tensors, activation, dout=dout)
    assert out.dtype == dtype and out.shape == shape
    torch.testing.assert_close(out, ref_out, **TOL[dtype])
    names = ("fv", "fk", "gamma", "beta", "ln_weight", "ln_bias")
    for name, g, r in zip(names, grads, ref_grads, strict=True):
        assert g.dtype == r.dtype, name
        # dln_* sum over rows: scale the tolerance with the row count.
        scale = math.sqrt(out.numel() / shape[-1]) if name.startswith("ln") else 1.0
        tol = {k: v * scale for k, v in GRAD_TOL[dtype].items()}
        torch.testing.assert_close(g, r, **tol, msg=lambda m, n=name: f"d{n}: {m}")


@pytest.mark.parametrize("backend", _backend_params(("torch", "native")))
def test_float64_matches_hand_written_formula(backend):
    tensors = _inputs((5, 19), torch.float64, seed=3)
    out, grads, dout = _run(backend, tensors, "gelu")
    torch.testing.assert_close(out, _by_hand(*tensors, 1e-5, "gelu"), rtol=1e-10, atol=1e-10)
    _, ref_grads = _ref(tensors, "gelu", dout=dout)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", _backend_params())
def test_non_contiguous_inputs(backend):
    fv, fk, gamma, beta, _, _ = _inputs((40, 9), seed=4)
    # (9, 40) → transpose gives non-contiguous (9, 40) views; ln params strided too.
    tensors = [t.t() for t in (fv, fk, gamma, beta)] + [torch.randn(80)[::2], torch.randn(40)]
    assert not tensors[0].is_contiguous() and not tensors[4].is_contiguous()
    out, grads, dout = _run(backend, tensors, "silu")
    ref_out, ref_grads = _ref([t.contiguous() for t in tensors], "silu", dout=dout)
    torch.testing.assert_close(out, ref_out, **TOL[torch.float32])
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", _backend_params())
def test_large_magnitude_and_nearly_constant_rows(backend):
    """LayerNorm stability: E[x²]−E[x]² in fp32 would lose every digit on these rows."""
    gen = torch.Generator().manual_seed(5)
    d = 257
    fv = torch.randn(6, d, generator=gen)
    fv[0] = 1000.0 + 0.1 * torch.randn(d, generator=gen)  # ~1e3, std 0.1
    fv[1] = -3000.0 + torch.randn(d, generator=gen)
    fv[2] = 5.0 + 1e-3 * torch.randn(d, generator=gen)  # nearly constant (var ~ eps/10)
    fv[3] = 7.0  # exactly constant: x̂ = 0, out = act(gamma·ln_bias + beta)
    fk = torch.ones(6, d)
    fk[4] = 1e3 * torch.randn(d, generator=gen)
    gamma, beta = torch.randn(6, d, generator=gen), torch.randn(6, d, generator=gen)
    w, b = torch.randn(d, generator=gen), torch.randn(d, generator=gen)
    tensors = [fv, fk, gamma, beta, w, b]
    out, grads, dout = _run(backend, tensors, None)
    exact = _by_hand(*tensors, 1e-5, None)
    torch.testing.assert_close(out.double(), exact, rtol=1e-3, atol=2e-3)
    torch.testing.assert_close(out[3], gamma[3] * b + beta[3], rtol=1e-6, atol=1e-6)
    # Gradients against float64 truth (the fp32 torch autograd is itself off by ~1e-4 relative
    # here), with an absolute tolerance relative to each gradient's magnitude.
    _, exact_grads = _ref([t.double() for t in tensors], None, dout=dout.double())
    for g, r in zip(grads, exact_grads, strict=True):
        torch.testing.assert_close(g.double(), r, rtol=1e-3, atol=1e-3 * r.abs().max().item())


@pytest.mark.parametrize("backend", _backend_params())
def test_nan_propagates(backend):
    fv, fk, gamma, beta, w, b = _inputs((4, 24), seed=6)
    fv[1, 3] = float("nan")
    gamma[2, 5] = float("nan")
    out = hyper_modulate(fv, fk, gamma, beta, w, b, activation="relu", backend=backend)
    assert torch.isnan(out[1]).all()  # bad statistics poison the whole row
    assert torch.isnan(out[2, 5]) and torch.isnan(out[2]).sum() == 1
    assert torch.isfinite(out[[0, 3]]).all()


@pytest.mark.parametrize("backend", _backend_params())
def test_empty_rows(backend):
    tensors = _inputs((0, 16), seed=0)
    assert hyper_modulate(*tensors, backend=backend).shape == (0, 16)


def test_native_cpu_half_inputs_upcast_and_bf16_dtype_kept():
    if not availability("native", "cpu")[0]:
        pytest.skip(availability("native", "cpu")[1])
    tensors = _inputs((5, 31), torch.bfloat16, seed=8)
    out = hyper_modulate(*tensors, activation="gelu", backend="native")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, hyper_modulate_reference(*tensors, activation="gelu"),
                               rtol=1e-2, atol=1e-2)


# ---------------------------------------------------------------- errors


def test_errors_name_the_argument():
    fv, fk, gamma, beta, w, b = _inputs((3, 8))
    with pytest.raises(ValueError, match=r"gamma has shape \(3, 7\) but fv has \(3, 8\)"):
        hyper_modulate(fv, fk, gamma[:, :7], beta, w, b)
    with pytest.raises(ValueError, match=r"fk has shape"):
        hyper_modulate(fv, fk[:2], gamma, beta, w, b)
    with pytest.raises(ValueError, match=r"ln_bias has shape \(9,\), expected \(8,\)"):
        hyper_modulate(fv, fk, gamma, beta, w, torch.zeros(9))
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        hyper_modulate(fv, fk, gamma, beta, w, b, activation="tanh")
    with pytest.raises(TypeError, match=r"beta is torch\.float16 but fv is torch\.float32"):
        hyper_modulate(fv, fk, gamma, beta.half(), w, b)
    with pytest.raises(TypeError, match="fk must be floating point"):
        hyper_modulate(fv, fk.long(), gamma, beta, w, b)
    with pytest.raises(ValueError, match="fk is on meta but fv is on cpu"):
        hyper_modulate(fv, fk.to("meta"), gamma, beta, w, b)
    with pytest.raises(ValueError, match="unknown backend"):
        hyper_modulate(fv, fk, gamma, beta, w, b, backend="cudnn")
    with pytest.raises(ValueError, match="unknown activation"):
        hyper_modulate_reference(fv, fk, gamma, beta, w, b, activation="elu")


def test_triton_rejects_float64():
    if not availability("triton", "cpu")[0]:
        pytest.skip(availability("triton", "cpu")[1])
    with pytest.raises(TypeError, match="float64 is not supported"):
        hyper_modulate(*_inputs((2, 8), torch.float64), backend="triton")


# ---------------------------------------------------------------- HyperFusion module


def test_hyperfusion_submodules_and_parameter_count():
    with torch.device("meta"):
        m = HyperFusion(1024)
    d = 1024
    assert [type(m.gamma_net[i]).__name__ for i in range(4)] == [
        "Linear", "ReLU", "Dropout", "Linear"]
    assert (m.gamma_net[0].in_features, m.gamma_net[0].out_features) == (2 * d, d)
    assert (m.beta_net[3].in_features, m.beta_net[3].out_features) == (d, d)
    assert m.gamma_net[2].p == 0.5 and isinstance(m.layernorm, torch.nn.LayerNorm)
    names = {n for n, _ in m.named_children()}
    assert names == {"gamma_net", "beta_net", "layernorm"}
    assert sum(p.numel() for p in m.parameters()) == 2 * (2 * d * d + d + d * d + d) + 2 * d
    with torch.device("meta"):
        shared = HyperFusion(1024, variant="dshg")
    assert sum(p.numel() for p in shared.parameters()) == (2 * d * d + d) + (d * 2 * d + 2 * d) \
        + 2 * d
    with torch.device("meta"):
        pig = HyperFusion(1024, variant="pig")
    assert sum(p.numel() for p in pig.parameters()) == 4 * (d * d + d + d * d + d) + 4 * d


def _mlp(seq, x):
    """Linear → ReLU → (eval) → Linear by hand from the module's weights."""
    h = x @ seq[0].weight.t() + seq[0].bias
    return torch.clamp(h, min=0) @ seq[3].weight.t() + seq[3].bias


def _eq3(x_in, w_gen, b_gen, ln, activation):
    mean = x_in.mean(-1, keepdim=True)
    var = ((x_in - mean) ** 2).mean(-1, keepdim=True)
    y = (x_in - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
    z = w_gen * y + b_gen
    return {None: z, "sigmoid": torch.sigmoid(z), "relu": torch.clamp(z, min=0)}[activation]


def _paper_formula(m, fv, fk):
    """The paper's F_f for each variant, written with plain tensor ops (float64)."""
    act = m.activation
    c = torch.cat([fv, fk], -1)
    if m.variant == "dsg":
        return _eq3(fv * fk, _mlp(m.gamma_net, c), _mlp(m.beta_net, c), m.layernorm, act)
    if m.variant == "dshg":
        wb = _mlp(m.generator, c)
        return _eq3(fv * fk, wb[..., : m.dim], wb[..., m.dim:], m.layernorm, act)
    gv, bv, gk, bk = m.gamma_net, m.beta_net, m.gamma_net_k, m.beta_net_k
    if m.variant == "pig":
        out_v = _eq3(fv, _mlp(gv, fv), _mlp(bv, fv), m.layernorm, act)
        out_k = _eq3(fk, _mlp(gk, fk), _mlp(bk, fk), m.layernorm_k, act)
    else:  # cig: each stream tailored by the other stream's generators
        out_v = _eq3(fv, _mlp(gk, fk), _mlp(bk, fk), m.layernorm, act)
        out_k = _eq3(fk, _mlp(gv, fv), _mlp(bv, fv), m.layernorm_k, act)
    return (out_v + out_k) / 2


def _randomise_ln(m, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("layernorm"):
                p.copy_(torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("backend", _backend_params())
@pytest.mark.parametrize("variant", ["dsg", "dshg", "pig", "cig"])
@pytest.mark.parametrize("activation", [None, "sigmoid"])
def test_hyperfusion_matches_paper_formula(backend, variant, activation):
    torch.manual_seed(0)
    m = HyperFusion(48, activation=activation, variant=variant).eval()
    _randomise_ln(m, 1)
    gen = torch.Generator().manual_seed(2)
    fv, fk = torch.randn(2, 9, 48, generator=gen), torch.randn(2, 9, 48, generator=gen)
    out = m(fv, fk, backend=backend)
    expected = _paper_formula(m.double(), fv.double(), fk.double())
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", _backend_params(("native", "triton")))
@pytest.mark.parametrize("variant", ["dsg", "dshg"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_hyperfusion_backend_grads_match_torch(backend, variant, dtype):
    """Module fwd+bwd (triton: the fused GEMM-epilogue path) vs the torch backend."""
    torch.manual_seed(3)
    m = HyperFusion(72, activation="gelu", variant=variant).eval().to(dtype)
    _randomise_ln(m, 4)
    gen = torch.Generator().manual_seed(5)
    fv = torch.randn(37, 72, generator=gen).to(dtype).requires_grad_(True)
    fk = torch.randn(37, 72, generator=gen).to(dtype).requires_grad_(True)
    dout = torch.randn(37, 72, generator=gen).to(dtype)
    results = []
    for name in (backend, "torch"):
        m.zero_grad()
        out = m(fv, fk, backend=name)
        grads = torch.autograd.grad(out, [fv, fk, *m.parameters()], dout)
        results.append((out, grads))
    (out, grads), (ref, ref_grads) = results
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(out, ref, **tol)
    for g, r in zip(grads, ref_grads, strict=True):
        scale = max(1.0, r.abs().max().item() / 10)  # fp16 weight grads sum 37 rows
        torch.testing.assert_close(g, r, rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("backend", _backend_params(("triton",)))
@pytest.mark.parametrize("variant", ["dsg", "dshg"])
def test_hyperfusion_fused_path_serves_autocast_training(backend, variant, monkeypatch):
    """Under fp16 autocast (what the trainer does on CUDA; here CPU autocast and the Triton
    interpreter) the fused kernel runs, and output and gradients match the unfused path."""
    calls = []
    real = hyper_mod.fused_generator_modulate
    monkeypatch.setattr(hyper_mod, "fused_generator_modulate",
                        lambda *a, **k: calls.append(a[1].dtype) or real(*a, **k))
    torch.manual_seed(7)
    # gelu, not relu: fused gamma is fp32-accumulated, unfused rounded to fp16, so at a relu kink
    # one element's gradient may legitimately flip between 0 and g.
    m = HyperFusion(40, activation="gelu", variant=variant).eval()
    _randomise_ln(m, 2)
    gen = torch.Generator().manual_seed(8)
    fv = torch.randn(2, 9, 40, generator=gen).requires_grad_(True)
    fk = torch.randn(2, 9, 40, generator=gen).requires_grad_(True)
    dout = torch.randn(2, 9, 40, generator=gen)
    results = []
    for fused in (True, False):
        m.fused = fused
        with torch.autocast("cpu", dtype=torch.float16):
            out = m(fv, fk, backend=backend)
        results.append((out, torch.autograd.grad(out, [fv, fk, *m.parameters()], dout)))
    assert calls == [torch.float16], "the fused kernel did not run (once, in fp16) under autocast"
    (out, grads), (ref, ref_grads) = results
    assert out.dtype == ref.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=2e-2)
    for g, r in zip(grads, ref_grads, strict=True):
        scale = max(1.0, r.abs().max().item() / 10)
        torch.testing.assert_close(g, r, rtol=2e-2, atol=3e-2 * scale)


def test_hyperfusion_train_mode_dropout():
    torch.manual_seed(6)
    m = HyperFusion(24, dropout=0.0)
    fv, fk = torch.randn(3, 5, 24), torch.randn(3, 5, 24)
    torch.testing.assert_close(m.train()(fv, fk, backend="torch"), m.eval()(fv, fk, "torch"))
    m = HyperFusion(24, dropout=0.5).train()
    for name in [b for b in BACKENDS if availability(b, "cpu")[0]]:
        fv_ = fv.clone().requires_grad_(True)
        out = m(fv_, fk, backend=name)
        assert out.shape == fv.shape and torch.isfinite(out).all()
        out.sum().backward()
        assert fv_.grad is not None and m.gamma_net[0].weight.grad is not None
        m.zero_grad()


def test_hyperfusion_errors():
    with pytest.raises(ValueError, match="unknown variant 'xyz'"):
        HyperFusion(8, variant="xyz")
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        HyperFusion(8, activation="tanh")
    m = HyperFusion(8)
    with pytest.raises(ValueError, match=r"fv has shape \(2, 8\) but fk has \(3, 8\)"):
        m(torch.zeros(2, 8), torch.zeros(3, 8))
    with pytest.raises(ValueError, match="last dim 9, expected dim=8"):
        m(torch.zeros(2, 9), torch.zeros(2, 9))


# ---------------------------------------------------------------- fused GEMM-epilogue kernel


@pytest.mark.parametrize("backend", _backend_params(("triton",)))
@pytest.mark.parametrize("shared", [False, True], ids=["dsg", "dshg"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize(("rows", "d"), [(37, 48), (19, 72)])
def test_fused_generator_modulate_matches_unfused(backend, shared, dtype, rows, d):
    gen = torch.Generator().manual_seed(rows + d)
    width = d if shared else 2 * d
    h = torch.relu(torch.randn(rows, width, generator=gen))
    fv, fk = torch.randn(rows, d, generator=gen), torch.randn(rows, d, generator=gen)
    wg, wb = torch.randn(d, d, generator=gen) / d**0.5, torch.randn(d, d, generator=gen) / d**0.5
    bg, bb = torch.randn(d, generator=gen), torch.randn(d, generator=gen)
    lnw, lnb = torch.randn(d, generator=gen), torch.randn(d, generator=gen)
    cast = [t.to(dtype) for t in (h, fv, fk, wg, bg, wb, bb)]
    leaves = [t.clone().requires_grad_(True) for t in (*cast, lnw, lnb)]
    dout = torch.randn(rows, d, generator=gen).to(dtype)

    out = fused_generator_modulate(*leaves[:7], leaves[7], leaves[8], 1e-5, "silu", shared,
                                   backend)
    grads = torch.autograd.grad(out, leaves, dout)

    ref_leaves = [t.detach().double().requires_grad_(True) for t in leaves]
    rh, rfv, rfk, rwg, rbg, rwb, rbb, rlnw, rlnb = ref_leaves
    hg, hb = (rh, rh) if shared else (rh[:, :d], rh[:, d:])
    ref = _by_hand(rfv, rfk, F.linear(hg, rwg, rbg), F.linear(hb, rwb, rbb), rlnw, rlnb, 1e-5,
                   "silu")
    ref_grads = torch.autograd.grad(ref, ref_leaves, dout.double())
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 3e-2}
    torch.testing.assert_close(out.double(), ref, **tol)
    for g, r in zip(grads, ref_grads, strict=True):
        scale = max(1.0, r.abs().max().item() / 10)
        torch.testing.assert_close(g.double(), r, rtol=tol["rtol"], atol=tol["atol"] * scale)


def test_fused_generator_modulate_errors():
    if not availability("triton", "cpu")[0]:
        pytest.skip(availability("triton", "cpu")[1])
    d = 16
    fv = torch.zeros(4, d)
    args = [torch.zeros(d, d), torch.zeros(d), torch.zeros(d, d), torch.zeros(d), torch.ones(d),
            torch.zeros(d)]
    with pytest.raises(ValueError, match=r"h has shape \(4, 16\), expected \(4, 32\)"):
        fused_generator_modulate(torch.zeros(4, d), fv, fv, *args)
    with pytest.raises(ValueError, match=r"w_beta has shape \(16, 8\)"):
        fused_generator_modulate(torch.zeros(4, 2 * d), fv, fv, args[0], args[1],
                                 torch.zeros(d, 8), *args[3:])


@pytest.mark.parametrize("backend", _backend_params(("native",)))
@pytest.mark.parametrize("activation", [None, "gelu"])
def test_native_chunked_sums_and_flushed_ln_grads(backend, activation):
    """The fp32 native kernel sums rows in 256-element vector chunks and keeps dln_w / dln_b as
    fp32 partials flushed into fp64 every 64 rows: a row width with a ragged last chunk and more
    rows than one flush must match the float64 formula and float64 autograd."""
    tensors = _inputs((150, 1000), seed=51)
    out, grads, dout = _run(backend, tensors, activation)
    exact = _by_hand(*tensors, 1e-5, activation)
    torch.testing.assert_close(out.double(), exact, rtol=1e-5, atol=1e-5)
    _, exact_grads = _ref([t.double() for t in tensors], activation, dout=dout.double())
    for g, r in zip(grads, exact_grads, strict=True):
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=1e-4 * max(1.0, r.abs().max()))
