"""Backend dispatch rules of harness.ops, exercised through sparsemax (the smallest op)."""

from __future__ import annotations

import importlib

import pytest
import torch

from harness import ops
from harness.ops import dispatch

# the module (``harness.ops.sparsemax`` the attribute is the function of the same name)
sparsemax_op = importlib.import_module("harness.ops.sparsemax")


@pytest.fixture
def x():
    return torch.randn(3, 257, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def calls(monkeypatch):
    """Records which backend's forward and backward sparsemax ran (the real kernels still run)."""
    seen: list[tuple[str, str]] = []
    for table, kind in ((sparsemax_op._FORWARD, "fwd"), (sparsemax_op._BACKWARD, "bwd")):
        for name, fn in list(table.items()):
            def spy(*args, _fn=fn, _name=name, _kind=kind):
                seen.append((_kind, _name))
                return _fn(*args)
            monkeypatch.setitem(table, name, spy)
    return seen


def test_backends_lists_what_works_here():
    names = ops.backends()
    assert names[0] == "torch"
    assert set(names) <= set(ops.BACKENDS)
    assert ("native" in names) == (dispatch.native_module() is not None)
    assert ("triton" in ops.backends("cpu")) == dispatch.triton_interpreting()


@pytest.mark.parametrize("backend", ["torch", "native", "triton"])
def test_the_named_backend_runs_forward_and_backward(backend, x, calls):
    if backend not in ops.backends("cpu"):
        pytest.skip(f"{backend} unavailable: {ops.availability(backend, 'cpu')[1]}")
    xg = x.clone().requires_grad_()
    out = ops.sparsemax(xg, backend=backend)
    out.backward(torch.arange(out.numel(), dtype=out.dtype).view_as(out))
    assert calls == [("fwd", backend), ("bwd", backend)]
    torch.testing.assert_close(out, ops.sparsemax_reference(x))


def test_context_and_env_choose_the_backend_that_runs(x, calls, monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    ops.sparsemax(x)
    with ops.use_backend("torch"):
        ops.sparsemax(x, backend="native" if "native" in ops.backends("cpu") else "torch")
    expected = "native" if "native" in ops.backends("cpu") else "torch"
    assert calls == [("fwd", "torch"), ("fwd", expected)]


def test_non_contiguous_inputs(x):
    xt = x.t()
    assert not xt.is_contiguous()
    torch.testing.assert_close(ops.sparsemax(xt, dim=0), ops.sparsemax_reference(xt, dim=0))


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


def test_bad_inputs_are_named(x):
    with pytest.raises(TypeError, match="floating point"):
        ops.sparsemax(x.long())
    with pytest.raises(ValueError, match="out of range"):
        ops.sparsemax(x, dim=2)
