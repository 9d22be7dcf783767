"""No host synchronisation in the ops' hot path (issue 18, item 5).

Input checks may read tensor values (``.tolist()``, ``.item()``, ``bool(t)``) only on CPU tensors
or with ``SIGNBENCH_CHECK_VALUES=1``. On CPU this is checked with ``meta`` tensors standing in for
a GPU's: any value read of a meta tensor raises, so a check that passes read none. With CUDA,
``torch.cuda.set_sync_debug_mode("error")`` fails on any sync of a whole op call.
"""

from __future__ import annotations

import pytest
import torch

from harness import ops
from harness.ops import attention, gated_fusion, hyper, sst
from harness.ops.dispatch import VALUE_CHECKS_ENV


def _meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(*shape, device="meta", dtype=dtype)


def _all_checks() -> None:
    """Every op's input checks on meta (non-CPU) tensors of valid shapes."""
    b, n, c, d = 2, 5, 4, 8
    sst._check_inputs(_meta(b, n, d), _meta(c, d), _meta(b, n, dtype=torch.bool), 0.5, "max")
    q = _meta(b, 2, n, d)
    attention._validate(q, q, q, _meta(b, n, dtype=torch.bool), None)
    x = _meta(b * n, d)
    hyper._validate(x, x, x, x, _meta(d), _meta(d), "relu", "hyper_modulate")
    gated_fusion._validate_blend(x, x, x, x, _meta(d, 2 * d), _meta(d), _meta(d), _meta(d))
    gated_fusion._check_mask("mask", _meta(b, n, dtype=torch.bool), _meta(b, n, d))


def test_default_checks_read_no_values_off_cpu(monkeypatch):
    monkeypatch.delenv(VALUE_CHECKS_ENV, raising=False)
    _all_checks()  # a .tolist() / .item() / bool() on a meta tensor would raise here


def test_value_checks_run_on_request(monkeypatch):
    """The switch really turns the value check on (so the test above can fail)."""
    monkeypatch.setenv(VALUE_CHECKS_ENV, "1")
    with pytest.raises((NotImplementedError, RuntimeError)):
        sst._check_inputs(_meta(2, 5, 8), _meta(4, 8), _meta(2, 5, dtype=torch.bool), 0.5, "max")


def test_value_checks_stay_on_for_cpu_tensors(monkeypatch):
    monkeypatch.delenv(VALUE_CHECKS_ENV, raising=False)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(ValueError, match="mask row 1 has no valid frame"):
        ops.sst_convert(torch.randn(2, 5, 8), torch.randn(4, 8), mask, backend="torch")


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["native", "triton"])
def test_no_sync_per_call_on_cuda(backend, monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    ok, reason = ops.availability(backend, "cuda")
    if not ok:
        pytest.skip(reason)
    monkeypatch.delenv(VALUE_CHECKS_ENV, raising=False)
    dev = torch.device("cuda")
    feats, tokens = torch.randn(4, 16, 32, device=dev), torch.randn(8, 32, device=dev)
    mask = torch.ones(4, 16, dtype=torch.bool, device=dev)
    x = [torch.randn(64, 32, device=dev) for _ in range(4)]
    ln = (torch.ones(32, device=dev), torch.zeros(32, device=dev))
    q = torch.randn(2, 2, 16, 32, device=dev)
    calls = {
        "sst_convert": lambda: ops.sst_convert(feats, tokens, mask, 0.5, "max", backend=backend),
        "hyper_modulate": lambda: ops.hyper_modulate(*x, *ln, backend=backend),
        "sparsemax": lambda: ops.sparsemax(x[0], backend=backend),
        "masked_attention": lambda: ops.masked_attention(q, q, q, mask[:2], backend=backend),
    }
    for fn in calls.values():
        fn()  # compile / load outside the guarded region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for name, fn in calls.items():
            try:
                fn()
            except RuntimeError as err:
                pytest.fail(f"{name} ({backend}) synchronised with the host: {err}")
    finally:
        torch.cuda.set_sync_debug_mode("default")
