"""Kernel micro-benchmarks: each op × backend × mode × dtype × shape.

Run ``pytest benchmarks/test_kernels.py --benchmark-json out.json`` and feed the JSON to
``signbench leaderboard --bench out.json``; the ``eager`` rows are the speedup baseline. Backends:
``eager`` (the torch reference under autograd), ``compile`` (``torch.compile`` of it), ``native``
(C++ / CUDA) and ``triton`` (GPU only). Every case is checked against the fp32 torch reference
before it is timed; a wrong kernel fails and is never reported.

The shapes, the FLOP and byte counts behind TFLOP/s and GB/s, and the timing rules are in
``docs/benchmarks.md``. CI: ``SIGNBENCH_BENCH_QUICK=1 pytest benchmarks/ --benchmark-disable`` runs
every case once on small shapes, correctness gate included.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from harness import ops
from harness.ops.dispatch import triton_interpreting
from harness.ops.gated_fusion import _merge_heads, _split_heads

CPU_BACKENDS = ("eager", "native")
GPU_BACKENDS = ("eager", "native", "triton")

QUICK = os.environ.get("SIGNBENCH_BENCH_QUICK", "").strip().lower() in ("1", "true", "yes", "on")
"""Small shapes and no ``torch.compile`` rows (for CI's ``--benchmark-disable`` run)."""


def _cases():
    for device in ("cpu", "cuda"):
        for backend in CPU_BACKENDS if device == "cpu" else GPU_BACKENDS:
            yield pytest.param(device, backend, id=f"{device}-{backend}")


# ------------------------------------------------------------------------- the op benchmarks

MODES = ("fwd", "fwd+bwd")
DTYPES: dict[str, tuple[torch.dtype, ...]] = {
    "cpu": (torch.float32,),
    "cuda": (torch.float32, torch.float16, torch.bfloat16),
}
#: eager first: its median is the speedup baseline recorded in the later rows' extra_info
OP_BACKENDS: dict[str, tuple[str, ...]] = {
    "cpu": ("eager", "compile", "native"),
    "cuda": ("eager", "compile", "native", "triton"),
}
#: (rtol, atol relative to max(1, max |reference|)) per dtype, for outputs and gradients
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1e-3, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}
#: calls at least this long (s) run a fixed number of pedantic rounds instead of calibration
PEDANTIC_FROM_S = 0.02

SPARSEMAX_ROWS = 512 if QUICK else 4096
SPARSEMAX_C = (128, 1000)
SST_SHAPES = ((4, 16), (16, 64)) if QUICK else ((16, 64), (16, 256), (64, 64), (64, 256))
SST_C = SST_D = 128
HYPER_D = 256 if QUICK else 1024
HYPER_ROWS = (256, 1024) if QUICK else (16 * 64, 64 * 128)
#: GPU-only bandwidth case: every tensor is 64 MiB (rows × d × element size)
HYPER_BANDWIDTH_BYTES = 64 << 20
FUSION_D = 256 if QUICK else 1024
FUSION_ROWS = (256,) if QUICK else (16 * 64, 64 * 128)
ATTN_B, ATTN_D, ATTN_HEADS = (2, 128, 8) if QUICK else (16, 512, 8)
ATTN_T = (32, 64) if QUICK else (128, 512)

#: eager medians seen in this session, for extra_info["speedup_vs_eager"]
_EAGER_MEDIANS: dict[tuple[str, ...], float] = {}

Outputs = torch.Tensor | tuple[torch.Tensor, ...]


def _dname(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _variants(
    shapes: Sequence[Sequence[int]], names: Sequence[str], devices: Sequence[str] = ("cpu", "cuda")
) -> Iterator[Any]:
    """pytest params (device, dtype, shape, mode, backend), eager first within each group."""
    for device in devices:
        marks = [pytest.mark.gpu] if device == "cuda" else []
        for dtype in DTYPES[device]:
            for shape in shapes:
                for mode in MODES:
                    for backend in OP_BACKENDS[device]:
                        tag = ",".join(f"{k}={v}" for k, v in zip(names, shape, strict=True))
                        yield pytest.param(
                            device, dtype, shape, mode, backend, marks=marks,
                            id=f"{device}-{_dname(dtype)}-{tag}-{mode}-{backend}",
                        )


PARAM_NAMES = ("device", "dtype", "shape", "mode", "backend")


@dataclass
class Case:
    """One benchmark case: ``impl(backend)(*data) -> outputs``; ``truth(*data32)`` in fp32.

    ``params`` / ``truth_params`` are module parameters that get gradients in fwd+bwd (in the same
    order); ``flops`` / ``bytes_moved`` map a mode to the counts in the module docstring.
    """

    op: str
    shape: dict[str, int]
    data: list[torch.Tensor]
    impl: Callable[[str], Callable[..., Outputs]]
    truth: Callable[..., Outputs]
    grad_outputs: list[torch.Tensor]
    flops: dict[str, float]
    bytes_moved: dict[str, float]
    params: list[torch.Tensor] = field(default_factory=list)
    truth_params: list[torch.Tensor] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _as_tuple(out: Outputs) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _skip_unless_backend(device: str, backend: str) -> None:
    """Skip cases that cannot run, or cannot be timed meaningfully, here."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if backend == "compile":
        if QUICK:
            pytest.skip("SIGNBENCH_BENCH_QUICK: torch.compile rows skipped (inductor compiles "
                        "each graph for seconds)")
        return
    if backend == "triton" and triton_interpreting():
        pytest.skip("TRITON_INTERPRET is set: the Triton interpreter is not a benchmark")
    if backend in ("native", "triton"):
        ok, reason = ops.availability(backend, device)
        if not ok:
            pytest.skip(reason)


def _callable(case: Case, backend: str) -> Callable[..., Outputs]:
    if backend == "compile":
        torch._dynamo.reset()  # no recompile limit / automatic-dynamic carry-over between cases
        return torch.compile(case.impl("eager"), dynamic=False)
    return case.impl(backend)


def _timed_fn(case: Case, fn: Callable[..., Outputs], mode: str) -> Callable[[], Any]:
    if mode == "fwd":
        def forward() -> Outputs:
            with torch.no_grad():
                return fn(*case.data)

        return forward
    leaves = [*case.data, *case.params]

    def forward_backward() -> tuple[Outputs, tuple[torch.Tensor | None, ...]]:
        outs = _as_tuple(fn(*case.data))
        grads = torch.autograd.grad(outs, leaves, case.grad_outputs, allow_unused=True)
        return outs, grads

    return forward_backward


def _compare(
    got: Sequence[torch.Tensor | None], want: Sequence[torch.Tensor | None], dtype: torch.dtype,
    what: str,
) -> float:
    """Assert ``got`` ≈ ``want`` (fp32 truth) within ``TOLERANCES[dtype]``; the worst error."""
    rtol, atol = TOLERANCES[dtype]
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is None and g is None:
            continue
        w = torch.zeros_like(g, dtype=torch.float32) if w is None else w.detach().float()
        g = torch.zeros_like(w) if g is None else g.detach().float()
        assert g.shape == w.shape, f"{what} {i}: shape {tuple(g.shape)} != {tuple(w.shape)}"
        scale = max(1.0, float(w.abs().max())) if w.numel() else 1.0
        torch.testing.assert_close(
            g, w, rtol=rtol, atol=atol * scale,
            msg=lambda m, i=i: f"{what} {i} differs from the fp32 torch reference: {m}",
        )
        if w.numel():
            worst = max(worst, float((g - w).abs().max()) / scale)
    return worst


def _check(case: Case, result: Any, mode: str, dtype: torch.dtype) -> float:
    """Compare a candidate's result with the fp32 reference (outside any timing)."""
    data32 = [t.detach().float().requires_grad_(mode != "fwd") for t in case.data]
    if mode == "fwd":
        with torch.no_grad():
            want = _as_tuple(case.truth(*data32))
        return _compare(_as_tuple(result), want, dtype, f"{case.op} output")
    outs, grads = result
    want = _as_tuple(case.truth(*data32))
    want_grads = torch.autograd.grad(
        want, [*data32, *case.truth_params], [g.float() for g in case.grad_outputs],
        allow_unused=True,
    )
    err = _compare(outs, want, dtype, f"{case.op} output")
    return max(err, _compare(grads, want_grads, dtype, f"{case.op} gradient"))


def _run_case(
    bench: Callable[..., Any], benchmark: Any, case: Case, *, device: str, dtype: torch.dtype,
    mode: str, backend: str,
) -> None:
    fn = _callable(case, backend)
    timed = _timed_fn(case, fn, mode)
    try:
        result = timed()  # compiles / JITs here, outside the timing
    except Exception as exc:
        if backend != "compile":
            raise
        pytest.skip(f"torch.compile failed: {type(exc).__name__}: {str(exc)[:300]}")
    max_err = _check(case, result, mode, dtype)
    del result
    timing: dict[str, int] = {}
    if getattr(benchmark, "enabled", True):
        start = time.perf_counter()
        timed()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if seconds >= PEDANTIC_FROM_S:
            rounds = int(min(10, max(5, 1.0 / seconds)))  # 3 left CPU medians ±8 % apart
            timing = {"rounds": rounds, "warmup_rounds": 0 if seconds > 0.5 else 1}
    threads = {"threads": torch.get_num_threads()} if device == "cpu" else {}
    bench(
        timed, op=case.op, mode=mode, backend=backend, dtype=dtype, shape=case.shape,
        device=device, flops=case.flops[mode], bytes_moved=case.bytes_moved[mode],
        max_err=max_err, **case.extra, **threads, **timing,
    )
    median = benchmark.extra_info.get("median_s")
    key = (case.op, mode, _dname(dtype), str(case.shape), device, torch.get_num_threads())
    if median:
        if backend == "eager":
            _EAGER_MEDIANS[key] = median
        elif key in _EAGER_MEDIANS:
            benchmark.extra_info["speedup_vs_eager"] = _EAGER_MEDIANS[key] / median


def _randn(shape: Sequence[int], device: str, dtype: torch.dtype, gen: torch.Generator,
           scale: float = 1.0) -> torch.Tensor:
    """Seeded normal data drawn on the CPU (same values on every device), then cast."""
    return (torch.randn(*shape, generator=gen) * scale).to(device=device, dtype=dtype)


def _lengths_mask(batch: int, length: int, device: str, gen: torch.Generator) -> torch.Tensor:
    """(batch, length) bool key-padding mask, valid lengths uniform in [length/2, length]."""
    lengths = torch.randint(max(1, length // 2), length + 1, (batch,), generator=gen)
    lengths[0] = length  # one full row
    return (torch.arange(length)[None, :] < lengths[:, None]).to(device)


def _leaves(tensors: list[torch.Tensor], mode: str) -> list[torch.Tensor]:
    return [t.requires_grad_(mode != "fwd") for t in tensors]


# ---------------------------------------------------------------------------------- sparsemax


def _sparsemax_case(rows: int, c: int, device: str, dtype: torch.dtype, mode: str) -> Case:
    gen = torch.Generator().manual_seed(0)
    x = _leaves([_randn((rows, c), device, dtype, gen, scale=2.0)], mode)
    s = x[0].element_size()

    def impl(backend: str) -> Callable[..., Outputs]:
        if backend == "eager":
            return ops.sparsemax_reference
        return lambda t: ops.sparsemax(t, backend=backend)

    n = rows * c
    return Case(
        op="sparsemax", shape={"R": rows, "C": c}, data=x, impl=impl,
        truth=ops.sparsemax_reference, grad_outputs=[_randn((rows, c), device, dtype, gen)],
        flops={"fwd": 5 * n, "fwd+bwd": 9 * n},
        bytes_moved={"fwd": 2 * n * s, "fwd+bwd": 5 * n * s},
    )


@pytest.mark.parametrize(
    PARAM_NAMES, list(_variants([(SPARSEMAX_ROWS, c) for c in SPARSEMAX_C], ("R", "C"))),
)
def test_sparsemax(bench, benchmark, device, dtype, shape, mode, backend):
    _skip_unless_backend(device, backend)
    case = _sparsemax_case(*shape, device, dtype, mode)
    _run_case(bench, benchmark, case, device=device, dtype=dtype, mode=mode, backend=backend)


# -------------------------------------------------------------------------------- sst_convert


def _sst_case(b: int, n: int, device: str, dtype: torch.dtype, mode: str) -> Case:
    c, d = SST_C, SST_D
    gen = torch.Generator().manual_seed(0)
    data = _leaves([_randn((b, n, d), device, dtype, gen), _randn((c, d), device, dtype, gen)],
                   mode)
    mask = _lengths_mask(b, n, device, gen)
    scale = d ** -0.5
    s = data[0].element_size()

    def impl(backend: str) -> Callable[..., Outputs]:
        if backend == "eager":
            return lambda f, t: ops.sst_convert_reference(f, t, mask, scale, "max")
        return lambda f, t: ops.sst_convert(f, t, mask, scale, "max", backend=backend)

    gemm = 2 * b * n * c * d
    fwd_flops = gemm + 2 * b * n * c + 5 * b * c + 2 * b * c * d
    bwd_flops = 8 * b * c * d + 4 * b * c
    fwd_bytes = (b * n * d + c * d + b * c + b * d) * s + b * n
    bwd_bytes = (2 * b * n * d + 2 * c * d + 2 * b * c + b * d) * s + b * n
    return Case(
        op="sst_convert", shape={"B": b, "N": n, "C": c, "d": d}, data=data, impl=impl,
        truth=impl("eager"),
        grad_outputs=[_randn((b, c), device, dtype, gen), _randn((b, d), device, dtype, gen)],
        flops={"fwd": fwd_flops, "fwd+bwd": fwd_flops + bwd_flops},
        bytes_moved={"fwd": fwd_bytes, "fwd+bwd": fwd_bytes + bwd_bytes},
        extra={"pool": "max"},
    )


@pytest.mark.parametrize(PARAM_NAMES, list(_variants(SST_SHAPES, ("B", "N"))))
def test_sst_convert(bench, benchmark, device, dtype, shape, mode, backend):
    _skip_unless_backend(device, backend)
    case = _sst_case(*shape, device, dtype, mode)
    _run_case(bench, benchmark, case, device=device, dtype=dtype, mode=mode, backend=backend)


# ----------------------------------------------------------------------------- hyper_modulate


def _hyper_shapes() -> list[tuple[int, int]]:
    return [(rows, HYPER_D) for rows in HYPER_ROWS]


def _hyper_bandwidth_variants() -> Iterator[Any]:
    """GPU-only cases whose tensors are 64 MiB each (rows depend on the element size)."""
    for dtype in DTYPES["cuda"]:
        rows = HYPER_BANDWIDTH_BYTES // (HYPER_D * torch.empty(0, dtype=dtype).element_size())
        for mode in MODES:
            for backend in OP_BACKENDS["cuda"]:
                yield pytest.param(
                    "cuda", dtype, (rows, HYPER_D), mode, backend,
                    marks=[pytest.mark.gpu],
                    id=f"cuda-{_dname(dtype)}-R={rows},d={HYPER_D}-{mode}-{backend}",
                )


def _hyper_case(rows: int, d: int, device: str, dtype: torch.dtype, mode: str) -> Case:
    gen = torch.Generator().manual_seed(0)
    tensors = [_randn((rows, d), device, dtype, gen) for _ in range(4)]
    ln = [1.0 + 0.1 * _randn((d,), device, dtype, gen), 0.1 * _randn((d,), device, dtype, gen)]
    data = _leaves(tensors + ln, mode)
    s = tensors[0].element_size()

    def impl(backend: str) -> Callable[..., Outputs]:
        if backend == "eager":
            return ops.hyper_modulate_reference
        return lambda *t: ops.hyper_modulate(*t, backend=backend)

    n = rows * d
    return Case(
        op="hyper_modulate", shape={"R": rows, "d": d}, data=data, impl=impl,
        truth=ops.hyper_modulate_reference, grad_outputs=[_randn((rows, d), device, dtype, gen)],
        flops={"fwd": 11 * n, "fwd+bwd": 31 * n},
        bytes_moved={"fwd": 5 * n * s + 2 * d * s, "fwd+bwd": 14 * n * s + 6 * d * s},
    )


@pytest.mark.parametrize(
    PARAM_NAMES, [*_variants(_hyper_shapes(), ("R", "d")), *_hyper_bandwidth_variants()]
)
def test_hyper_modulate(bench, benchmark, device, dtype, shape, mode, backend):
    _skip_unless_backend(device, backend)
    case = _hyper_case(*shape, device, dtype, mode)
    _run_case(bench, benchmark, case, device=device, dtype=dtype, mode=mode, backend=backend)


# -------------------------------------------------------------------------------- HyperFusion


def _fusion_case(rows: int, d: int, device: str, dtype: torch.dtype, mode: str,
                 backend: str) -> Case:
    torch.manual_seed(0)
    module = ops.HyperFusion(d, dropout=0.0, variant="dsg").to(device=device, dtype=dtype).eval()
    truth_module = copy.deepcopy(module).float()
    gen = torch.Generator().manual_seed(0)
    data = _leaves([_randn((rows, d), device, dtype, gen) for _ in range(2)], mode)
    if backend in ("native", "triton") and not module._use_fused(backend, *data):
        pytest.skip(f"HyperFusion's fused path does not run for backend={backend!r} here")
    s = data[0].element_size()

    def impl(backend: str) -> Callable[..., Outputs]:
        name = "torch" if backend == "eager" else backend
        return lambda fv, fk: module(fv, fk, backend=name)

    params = list(module.parameters())
    n_params = sum(p.numel() for p in params)  # 6d² weights + biases + LN affine
    gemm = 12 * rows * d * d
    fwd_bytes = (3 * rows * d + n_params) * s
    bwd_bytes = (5 * rows * d + 2 * n_params) * s
    return Case(
        op="HyperFusion", shape={"R": rows, "d": d}, data=data, impl=impl,
        truth=lambda fv, fk: truth_module(fv, fk, backend="torch"),
        grad_outputs=[_randn((rows, d), device, dtype, gen)],
        flops={"fwd": gemm + 12 * rows * d, "fwd+bwd": 3 * gemm + 32 * rows * d},
        bytes_moved={"fwd": fwd_bytes, "fwd+bwd": fwd_bytes + bwd_bytes},
        params=params if mode != "fwd" else [], truth_params=list(truth_module.parameters()),
        extra={"variant": "dsg", "fused": backend in ("native", "triton")},
    )


@pytest.mark.parametrize(
    PARAM_NAMES,
    list(_variants([(rows, FUSION_D) for rows in FUSION_ROWS], ("R", "d"), devices=("cuda",))),
)
def test_hyper_fusion(bench, benchmark, device, dtype, shape, mode, backend):
    _skip_unless_backend(device, backend)
    case = _fusion_case(*shape, device, dtype, mode, backend)
    _run_case(bench, benchmark, case, device=device, dtype=dtype, mode=mode, backend=backend)


# ------------------------------------------------------------------------ GatedCrossAttention


def _gca_eager(module: ops.GatedCrossAttention, fv: torch.Tensor, fs: torch.Tensor,
               mask_v: torch.Tensor, mask_s: torch.Tensor) -> torch.Tensor:
    """What a torch user writes: the module's projections, SDPA with the key mask, eager blend."""
    heads = module.n_heads

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor):
        out = F.scaled_dot_product_attention(
            _split_heads(q, heads), _split_heads(k, heads), _split_heads(v, heads),
            attn_mask=key_mask[:, None, None, :],
        )
        return _merge_heads(out)

    o_vs = attend(module.q_v(fv), module.k_s(fs), module.v_s(fs), mask_s)
    o_sv = attend(module.q_s(fs), module.k_v(fv), module.v_v(fv), mask_v)
    norm = module.norm
    return ops.gated_blend_reference(o_vs, o_sv, fv, fs, module.gate.weight, module.gate.bias,
                                     norm.weight, norm.bias, norm.eps)


def _gca_case(t: int, device: str, dtype: torch.dtype, mode: str) -> Case:
    b, d, heads = ATTN_B, ATTN_D, ATTN_HEADS
    torch.manual_seed(0)
    module = ops.GatedCrossAttention(d, heads).to(device=device, dtype=dtype)
    truth_module = copy.deepcopy(module).float()
    gen = torch.Generator().manual_seed(0)
    data = _leaves([_randn((b, t, d), device, dtype, gen) for _ in range(2)], mode)
    mask_v = _lengths_mask(b, t, device, gen)
    mask_s = _lengths_mask(b, t, device, gen)
    s = data[0].element_size()

    def impl(backend: str) -> Callable[..., Outputs]:
        if backend == "eager":
            return lambda fv, fs: _gca_eager(module, fv, fs, mask_v, mask_s)
        return lambda fv, fs: module(fv, fs, mask_v, mask_s, backend=backend)

    params = list(module.parameters())
    n_params = sum(p.numel() for p in params)  # 8d² weights + biases + LN affine
    rows = b * t
    gemm = 16 * rows * d * d
    attn = 8 * b * t * t * d
    fwd_bytes = (3 * rows * d + n_params) * s + 2 * rows
    bwd_bytes = (5 * rows * d + 2 * n_params) * s
    return Case(
        op="GatedCrossAttention", shape={"B": b, "T": t, "d": d, "H": heads}, data=data,
        impl=impl, truth=lambda fv, fs: truth_module(fv, fs, mask_v, mask_s, backend="torch"),
        grad_outputs=[_randn((b, t, d), device, dtype, gen)],
        flops={"fwd": gemm + attn, "fwd+bwd": 3 * gemm + math.ceil(3.5 * attn)},
        bytes_moved={"fwd": fwd_bytes, "fwd+bwd": fwd_bytes + bwd_bytes},
        params=params if mode != "fwd" else [], truth_params=list(truth_module.parameters()),
    )


@pytest.mark.parametrize(PARAM_NAMES, list(_variants([(t,) for t in ATTN_T], ("T",))))
def test_gated_cross_attention(bench, benchmark, device, dtype, shape, mode, backend):
    _skip_unless_backend(device, backend)
    case = _gca_case(*shape, device, dtype, mode)
    _run_case(bench, benchmark, case, device=device, dtype=dtype, mode=mode, backend=backend)
