"""Smoke tests of ``benchmarks/test_kernels.py``'s machinery (not of the kernels themselves).

The benchmark file's correctness gate must reject a wrong kernel, its cases must be parametrised
eager-first (the session speedup needs the baseline first), and its byte counts must match the
formulas in its docstring. The module is loaded from its path so ``benchmarks/`` need not be on
``sys.path``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH_FILE = Path(__file__).resolve().parents[1] / "benchmarks" / "test_kernels.py"


@pytest.fixture(scope="module")
def tk():
    spec = importlib.util.spec_from_file_location("signbench_bench_test_kernels", BENCH_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_gate_accepts_the_reference_and_rejects_a_wrong_kernel(tk):
    case = tk._sparsemax_case(8, 16, "cpu", torch.float32, "fwd+bwd")
    good = tk._timed_fn(case, case.impl("eager"), "fwd+bwd")()
    assert tk._check(case, good, "fwd+bwd", torch.float32) == 0.0

    def softmax(x):  # right shape, wrong op
        return torch.softmax(x, dim=-1)

    wrong = tk._timed_fn(case, softmax, "fwd+bwd")()
    with pytest.raises(AssertionError, match="sparsemax output"):
        tk._check(case, wrong, "fwd+bwd", torch.float32)


def test_gate_catches_one_bad_row_and_a_bad_gradient(tk):
    want = torch.rand(64, 32)
    bad = want.clone()
    bad[17] += 0.05
    with pytest.raises(AssertionError):
        tk._compare([bad], [want], torch.float32, "out")
    with pytest.raises(AssertionError, match="gradient"):
        tk._compare([want, bad], [want, want], torch.float32, "gradient")
    assert tk._compare([want, None], [want, None], torch.float32, "out") == 0.0


def test_variants_put_eager_first_and_name_the_shape(tk):
    params = list(tk._variants([(4, 8)], ("B", "N"), devices=("cpu",)))
    ids = [p.id for p in params]
    assert ids[0] == "cpu-float32-B=4,N=8-fwd-eager"
    for mode in tk.MODES:
        group = [p.values[4] for p in params if p.values[3] == mode]
        assert group[0] == "eager" and set(group) == set(tk.OP_BACKENDS["cpu"])


def test_byte_counts_follow_the_documented_formulas(tk):
    s = tk._sparsemax_case(8, 16, "cpu", torch.float32, "fwd")
    assert s.bytes_moved == {"fwd": 2 * 8 * 16 * 4, "fwd+bwd": 5 * 8 * 16 * 4}
    h = tk._hyper_case(4, 32, "cpu", torch.float32, "fwd")
    assert h.bytes_moved["fwd"] == (5 * 4 * 32 + 2 * 32) * 4
    b, n, c, d = 2, 8, tk.SST_C, tk.SST_D
    sst = tk._sst_case(b, n, "cpu", torch.float32, "fwd")
    assert sst.bytes_moved["fwd"] == (b * n * d + c * d + b * c + b * d) * 4 + b * n
    assert sst.flops["fwd"] > 2 * b * n * c * d
