"""Backend dispatch rules of harness.ops, exercised through the trivial axpy op."""

from __future__ import annotations

import pytest
import torch

from harness import ops
from harness.ops import dispatch


@pytest.fixture
def xy():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(3, 257, generator=gen), torch.randn(3, 257, generator=gen)


def test_backends_lists_what_works_here():
    names = ops.backends()
    assert names[0] == "torch"
    assert set(names) <= set(ops.BACKENDS)
    assert ("native" in names) == (dispatch.native_module() is not None)
    assert ("triton" in ops.backends("cpu")) == dispatch.triton_interpreting()


@pytest.mark.parametrize("backend", ["torch", "native", "triton"])
def test_every_backend_matches_reference_forward_and_backward(backend, xy):
    if backend not in ops.backends("cpu"):
        pytest.skip(f"{backend} unavailable: {ops.availability(backend, 'cpu')[1]}")
    x, y = (t.clone().requires_grad_() for t in xy)
    out = ops.axpy(x, y, 0.5, backend=backend)
    out.backward(torch.arange(out.numel(), dtype=out.dtype).view_as(out))
    xr, yr = (t.clone().requires_grad_() for t in xy)
    ref = ops.axpy_reference(xr, yr, 0.5)
    ref.backward(torch.arange(ref.numel(), dtype=ref.dtype).view_as(ref))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(y.grad, yr.grad)


def test_triton_fp16_in_interpreter(xy):
    if "triton" not in ops.backends("cpu"):
        pytest.skip("Triton interpreter unavailable")
    x, y = (t.half() for t in xy)
    torch.testing.assert_close(ops.axpy(x, y, 2.0, backend="triton"), 2.0 * x + y)


def test_non_contiguous_inputs(xy):
    x, y = (t.t() for t in xy)
    assert not x.is_contiguous()
    torch.testing.assert_close(ops.axpy(x, y, 3.0), 3.0 * x + y)


def test_precedence_call_then_context_then_env(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    assert dispatch.resolve(None, "cpu") == "torch"
    if "native" in ops.backends("cpu"):
        with ops.use_backend("native"):
            assert dispatch.resolve(None, "cpu") == "native"
            assert dispatch.resolve("torch", "cpu") == "torch"
            with ops.use_backend("torch"):
                assert dispatch.resolve(None, "cpu") == "torch"
            assert dispatch.resolve(None, "cpu") == "native"
    monkeypatch.delenv(dispatch.ENV_VAR)
    assert dispatch.resolve(None, "cpu") == dispatch.default_backend("cpu")


def test_default_on_cpu_never_picks_the_interpreter():
    assert dispatch.default_backend("cpu") in ("native", "torch")


def test_unknown_backend_names_its_source(monkeypatch):
    with pytest.raises(ValueError, match="backend="):
        dispatch.resolve("cudnn", "cpu")
    with pytest.raises(ValueError, match="use_backend"), ops.use_backend("fast"):
        pass
    monkeypatch.setenv(dispatch.ENV_VAR, "fast")
    with pytest.raises(ValueError, match=dispatch.ENV_VAR):
        dispatch.resolve(None, "cpu")


def test_unavailable_backend_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ops.BackendUnavailableError, match="TRITON_INTERPRET"):
        dispatch.resolve("triton", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ops.BackendUnavailableError, match="no CUDA device"):
            dispatch.resolve("torch", "cuda")


def test_bad_inputs_are_named(xy):
    x, y = xy
    with pytest.raises(ValueError, match="shape"):
        ops.axpy(x, y[:, :3])
    with pytest.raises(TypeError, match="float64"):
        ops.axpy(x, y.double())
    with pytest.raises(TypeError, match="floating-point"):
        ops.axpy(x.long(), y.long())
