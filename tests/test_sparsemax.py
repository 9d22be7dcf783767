"""sparsemax: every backend against the torch reference, and the reference against an independent
float64 bisection for the Euclidean projection onto the simplex."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.ops.dispatch import BACKENDS, availability
from harness.ops.sparsemax import sparsemax, sparsemax_reference

TOL = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float16: {"atol": 2e-3, "rtol": 1e-2},
    torch.float64: {"atol": 1e-10, "rtol": 1e-10},
    torch.bfloat16: {"atol": 1e-2, "rtol": 2e-2},
}


def backend_params(names=BACKENDS):
    params = []
    for name in names:
        ok, reason = availability(name, "cpu")
        params.append(pytest.param(name, marks=pytest.mark.skipif(not ok, reason=reason)))
    return params


def project_simplex(z: np.ndarray) -> np.ndarray:
    """Independent ground truth: bisection in float64 on sum(max(z - tau, 0)) = 1."""
    z = np.asarray(z, dtype=np.float64)
    lo, hi = z.max() - 1.0, z.max()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.maximum(z - mid, 0).sum() >= 1.0:
            lo = mid
        else:
            hi = mid
    return np.maximum(z - 0.5 * (lo + hi), 0)


def project_rows(x: torch.Tensor) -> torch.Tensor:
    rows = x.detach().double().reshape(-1, x.shape[-1]).numpy()
    return torch.from_numpy(np.stack([project_simplex(r) for r in rows])).reshape(x.shape)


# ---------------------------------------------------------------- reference vs brute force

finite = st.floats(-10, 10, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=12), st.sampled_from(["torch", "native"]))
def test_property_projection_onto_simplex(values, backend):
    ok, reason = availability(backend, "cpu")
    if not ok:
        pytest.skip(reason)
    z = torch.tensor(values, dtype=torch.float32)
    p = sparsemax(z, backend=backend)
    assert (p >= 0).all()
    assert math.isclose(p.sum().item(), 1.0, abs_tol=1e-5)
    torch.testing.assert_close(p.double(), project_rows(z), atol=2e-5, rtol=0)


@settings(max_examples=40, deadline=None)
@given(st.lists(finite, min_size=1, max_size=12), st.floats(-50, 50))
def test_property_invariant_to_adding_a_constant(values, shift):
    z = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(sparsemax_reference(z + shift), sparsemax_reference(z))


def test_reference_matches_tiny_support_enumeration():
    """For K=3 enumerate every support S: p_S = z_S - (sum z_S - 1)/|S| is the answer iff p_S > 0
    and every other z_j <= tau."""
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        z = (torch.randn(3, generator=gen, dtype=torch.float64) * 2).tolist()
        found = None
        for mask in range(1, 8):
            support = [i for i in range(3) if mask >> i & 1]
            tau = (sum(z[i] for i in support) - 1) / len(support)
            if all(z[i] > tau for i in support) and all(
                z[j] <= tau for j in range(3) if j not in support
            ):
                found = [max(v - tau, 0.0) for v in z]
        got = sparsemax_reference(torch.tensor(z)).tolist()
        assert found is not None
        assert np.allclose(got, found, atol=1e-12)


def test_reference_gradcheck_float64():
    x = torch.randn(4, 7, dtype=torch.float64, requires_grad=True) * 3
    x = x.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(sparsemax_reference, (x,))


# ---------------------------------------------------------------- backends vs reference


def _check_fwd_bwd(x: torch.Tensor, backend: str, dim: int = -1) -> None:
    x = x.detach().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    p = sparsemax(x, dim=dim, backend=backend)
    p_ref = sparsemax_reference(x_ref, dim=dim)
    assert p.dtype == x.dtype and p.shape == x.shape
    torch.testing.assert_close(p, p_ref, **TOL[x.dtype])
    g = torch.randn(p.shape, generator=torch.Generator().manual_seed(7)).to(x.device, x.dtype)
    (gx,) = torch.autograd.grad(p, x, g)
    (gx_ref,) = torch.autograd.grad(p_ref, x_ref, g)
    torch.testing.assert_close(gx, gx_ref, **TOL[x.dtype])


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("shape", "dim"), [((1, 1), -1), ((3, 17), -1), ((2, 33, 5), 1)])
def test_backend_matches_reference(backend, dtype, shape, dim):
    gen = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(shape, generator=gen) * 2).to(dtype)
    _check_fwd_bwd(x, backend, dim)


@pytest.mark.parametrize("backend", backend_params())
def test_non_contiguous_and_dim0(backend):
    x = torch.randn(19, 6, generator=torch.Generator().manual_seed(3)).t()  # (6, 19) view
    assert not x.is_contiguous()
    _check_fwd_bwd(x, backend, -1)
    _check_fwd_bwd(x, backend, 0)


@pytest.mark.parametrize("backend", backend_params())
def test_ties_and_equal_rows(backend):
    x = torch.tensor(
        [[0.5] * 7, [2.0, 2.0, -1.0, 0.0, 2.0, -3.0, 1.0], [1.0, 1.0, 1.0, 1.0, -5, -5, -5]]
    )
    p = sparsemax(x, backend=backend)
    torch.testing.assert_close(p[0], torch.full((7,), 1 / 7))
    torch.testing.assert_close(p[1], torch.tensor([1 / 3, 1 / 3, 0, 0, 1 / 3, 0, 0]))
    torch.testing.assert_close(p[2], torch.tensor([0.25, 0.25, 0.25, 0.25, 0, 0, 0]))
    _check_fwd_bwd(x, backend)


@pytest.mark.parametrize("backend", backend_params())
def test_large_magnitudes_and_wide_rows(backend):
    gen = torch.Generator().manual_seed(5)
    big = 1e4 + torch.randn(3, 40, generator=gen) * 0.3
    big[1] = -big[1]
    p = sparsemax(big, backend=backend)
    torch.testing.assert_close(p.double(), project_rows(big), atol=2e-3, rtol=0)
    _check_fwd_bwd(big, backend)
    wide = torch.randn(2, 1000, generator=gen) * 3
    p = sparsemax(wide, backend=backend)
    torch.testing.assert_close(p.double(), project_rows(wide), atol=2e-5, rtol=0)
    _check_fwd_bwd(wide, backend)


@pytest.mark.parametrize("backend", backend_params())
def test_non_finite_rows_become_nan(backend):
    x = torch.randn(4, 9)
    x[1, 3] = float("nan")
    x[2, 0] = float("inf")
    x[3, 5] = float("-inf")
    p = sparsemax(x, backend=backend)
    assert torch.isnan(p[1:]).all()
    torch.testing.assert_close(p[0], sparsemax_reference(x[0]))
    torch.testing.assert_close(p, sparsemax_reference(x), equal_nan=True)


def test_float64_native_and_torch_exact():
    x = torch.randn(5, 11, dtype=torch.float64)
    for backend in ("torch", "native"):
        if availability(backend, "cpu")[0]:
            _check_fwd_bwd(x, backend)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["native", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("shape", "dim"), [((7, 1), -1), ((300, 128), -1), ((3, 4097, 2), 1)])
def test_cuda_backends_match_reference(backend, dtype, shape, dim):
    ok, reason = availability(backend, "cuda")
    if not ok:
        pytest.skip(reason)
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(2)) * 3).to(dtype)
    _check_fwd_bwd(x.cuda(), backend, dim)
    big = (1e4 + torch.randn(4, 200, generator=torch.Generator().manual_seed(3))).cuda()
    _check_fwd_bwd(big, backend)


def test_errors():
    with pytest.raises(TypeError, match="floating point"):
        sparsemax(torch.arange(5))
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        sparsemax(torch.randn(3, 4), dim=2)
    with pytest.raises(ValueError, match="0-d"):
        sparsemax(torch.tensor(1.0))
    with pytest.raises(ValueError, match="unknown backend"):
        sparsemax(torch.randn(3), backend="cuda-magic")
    assert sparsemax(torch.randn(0, 4)).shape == (0, 4)
