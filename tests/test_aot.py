"""``signbench kernels compile`` / ``harness.ops.aot``: the ahead-of-time compile check (no GPU).

Every Triton kernel × dtype × tile config compiles for sm_80 and sm_90 without spills and within
the shared-memory limit (CI runs the ``--quick`` set: one flag combination per tile config; the
csrc CUDA kernels are checked in tests/test_native.py). The shapes the check covers are those of
the kernel benchmark and of the methods' paper profiles; the check itself can fail.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")


from harness.cli import main  # noqa: E402
from harness.ops import aot  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OPS_MODULES = ("sparsemax", "sst", "hyper", "gated_fusion", "attention")


def _paper(module: str) -> dict:
    cfg = importlib.import_module(f"baselines.{module}.config").PAPER_CONFIG
    return cfg if isinstance(cfg, dict) else dataclasses.asdict(cfg)


def test_every_triton_kernel_and_dtype_is_covered():
    kernels = set()
    for name in OPS_MODULES:
        module = importlib.import_module(f"harness.ops.{name}")
        kernels |= {k for k, v in vars(module).items()
                    if type(v).__name__ in ("JITFunction", "InterpretedFunction")
                    and k.endswith("_kernel")}
    variants = aot.triton_variants(quick=True)
    covered = {(v.name, v.dtype) for v in variants}
    assert {(k, dt) for k in kernels for dt in aot.DTYPES} <= covered
    assert {v.name for v in variants} == kernels


def test_shapes_cover_the_benchmark_and_the_paper_profiles():
    bench = importlib.import_module("benchmarks.test_kernels")
    s = aot.SHAPES
    assert set(bench.SPARSEMAX_C) <= set(s["sparsemax"]["K"])
    assert bench.SST_C in s["sst_convert"]["C"] and bench.SST_D in s["sst_convert"]["d"]
    assert {256, 1024} <= set(s["hyper_modulate"]["d"])  # HYPER_D / FUSION_D, quick and full
    assert {128, 512} <= set(s["gated_blend"]["d"])  # ATTN_D, quick and full
    assert {128 // 8, 512 // 8} <= set(s["attention"]["dh"])
    hs = _paper("hypersign")
    assert hs["d_model"] in s["hyper_modulate"]["d"]
    assert hs["sst_tokens"] in s["sst_convert"]["C"] and hs["sst_dim"] in s["sst_convert"]["d"]
    assert hs["sst_tokens"] in s["sparsemax"]["K"]
    assert hs["d_model"] // hs["mbart_heads"] in s["attention"]["dh"]
    sf, hfa, sx, sb = (_paper(m) for m in ("signfuse", "hfa", "signx", "signbind"))
    assert sf["d_model"] in s["gated_blend"]["d"] and sb["fusion_dim"] in s["gated_blend"]["d"]
    head_dims = {sf["d_model"] // sf["heads"], hfa["temporal_dim"] // hfa["temporal_heads"],
                 hfa["vit_dim"] // hfa["vit_heads"], sx["latent_dim"] // sx["vit_heads"],
                 sx["d_model"] // sx["heads"], sb["fusion_dim"] // sb["fusion_heads"]}
    assert head_dims <= set(s["attention"]["dh"])


_BLOCK_SIZE_CHECK = """
import json, sys
import triton.language as tl
from triton.runtime.jit import JITFunction
from harness.ops import aot

def _store_ones(x_ptr, BLOCK: tl.constexpr):
    tl.store(x_ptr + tl.arange(0, BLOCK), 1.0)

kernel = JITFunction(_store_ones)
sig = {"x_ptr": "*fp32", "BLOCK": "constexpr"}
rows = [aot.compile_triton(aot.Variant("demo", kernel, "fp32", sig, {"BLOCK": b}), 90)
        for b in (32, 24)]
json.dump({"rows": rows, "problems": [aot.problems([r]) for r in rows]}, sys.stdout)
"""


def test_a_bad_block_size_fails_the_check(tmp_path):
    """BLOCK = 32 compiles (registers reported); 24, not a power of two, is a reported failure.
    In a fresh process: the interpreter's patches of triton.language, left by earlier tests of
    interpreted kernels, break real compiles in this one."""
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(ROOT),
           "TRITON_DEFAULT_FP_FUSION": "1"}
    script = tmp_path / "block_size_check.py"  # a file: triton.jit reads the kernel's source
    script.write_text(_BLOCK_SIZE_CHECK)
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    (good, bad), (good_problems, bad_problems) = result["rows"], result["problems"]
    assert good["error"] is None and good["registers"] > 0 and good["spills"] == 0
    assert good_problems == []
    assert bad["error"] and "power of 2" in bad["error"]
    assert bad_problems


def test_spills_and_shared_memory_over_the_limit_are_problems():
    base = {"kind": "triton", "op": "x", "name": "k", "arch": "sm_80", "dtype": "fp16",
            "config": "c", "registers": 255, "spills": 0, "shared_bytes": 0, "error": None}
    assert aot.problems([base]) == []
    assert "spills" in aot.problems([{**base, "spills": 8}])[0]
    over = aot.SHARED_LIMIT[80] + 1
    assert "shared memory" in aot.problems([{**base, "shared_bytes": over}])[0]
    assert aot.problems([{**base, "arch": "sm_90", "shared_bytes": over}]) == []


def test_refuses_interpreted_kernels(capsys):
    assert main(["kernels", "compile", "--quick"]) == 2  # tests run with TRITON_INTERPRET=1
    assert "TRITON_INTERPRET is set" in capsys.readouterr().err


@pytest.mark.slow
def test_compile_check_for_sm80_and_sm90_finds_no_problem(tmp_path):
    """Every kernel × dtype × tile config compiles for sm_80 and sm_90 with no spill and within
    the shared-memory limit; the command exits 0."""
    out = tmp_path / "compile.json"
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(ROOT),
           "TRITON_DEFAULT_FP_FUSION": "1"}
    done = subprocess.run([sys.executable, "-m", "harness.cli", "kernels", "compile", "--quick",
                           "--no-nvcc", "--quiet", "--out", str(out)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=1500)
    report = json.loads(out.read_text())
    assert report["archs"] == ["sm_80", "sm_90"]
    assert len(report["kernels"]) == 2 * len(aot.triton_variants(quick=True))
    assert all(r["error"] is None for r in report["kernels"]), done.stderr[-2000:]
    assert report["problems"] == [], "compile-check problems:\n" + "\n".join(report["problems"])
    assert done.returncode == 0, done.stderr[-2000:]
