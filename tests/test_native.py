"""The native extension: it imports, its C++ kernels match torch, and every .cu file compiles.

CI has nvcc but no GPU, so CUDA sources are compiled to object code here (not run) for sm_80 and
sm_90, and no kernel may spill registers (``nvcc --resource-usage``, parsed by
``harness.ops.aot``); the CUDA kernels themselves are checked against torch on a GPU machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from harness.ops import _native, aot

ROOT = Path(__file__).resolve().parents[1]
CUDA_SOURCES = sorted((ROOT / "csrc").rglob("*.cu"))
CUDA_ARCHS = ("80", "90")


def test_extension_exports_what_csrc_binds():
    """The loaded harness._C has exactly the CPU functions csrc/*/bind.cpp define (a stale build
    fails here), and a cuda submodule exactly when it says it was built with CUDA."""
    import harness._C as C

    bound = set()
    for bind in (ROOT / "csrc").glob("*/bind.cpp"):
        bound |= set(re.findall(r'\bcpu\.def\("(\w+)"', bind.read_text()))
    assert bound, "no cpu.def(...) found in csrc/*/bind.cpp"
    exported = {name for name in dir(C.cpu) if not name.startswith("_")}
    assert exported == bound, f"rebuild harness._C: exported - bound = {exported - bound}, " \
                              f"bound - exported = {bound - exported}"
    assert hasattr(C, "cuda") == C.has_cuda()


def test_ci_build_has_no_cuda():
    """`.ci/run` builds with SIGNBENCH_CUDA=OFF: the CPU-only build must say so."""
    import harness._C as C

    if os.environ.get("SIGNBENCH_CUDA") != "OFF":
        pytest.skip("only meaningful for a build configured with SIGNBENCH_CUDA=OFF")
    assert C.has_cuda() is False


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows,k", [(1, 1), (3, 17), (5, 1030)])
def test_cpu_kernel_called_through_raw_pointers(dtype, rows, k):
    """The binding contract itself (pointers, sizes, dtype code), below the Python wrapper."""
    import harness._C as C

    from harness.ops import sparsemax_reference

    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(k), dtype=dtype)
    out = torch.empty_like(x)
    C.cpu.sparsemax_forward(x.data_ptr(), out.data_ptr(), rows, k, _native.DTYPE_CODES[dtype])
    torch.testing.assert_close(out, sparsemax_reference(x), rtol=0, atol=1e-6)


def test_cpu_kernel_rejects_unknown_dtype_code():
    import harness._C as C

    x = torch.zeros(1, 4)
    with pytest.raises(ValueError, match="dtype"):
        C.cpu.sparsemax_forward(x.data_ptr(), x.data_ptr(), 1, 4, 99)


def _nvcc() -> str | None:
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidate = Path(cuda_home) / "bin" / "nvcc"
    return shutil.which("nvcc") or (str(candidate) if candidate.exists() else None)


def test_there_are_cuda_sources():
    assert CUDA_SOURCES, "csrc/ holds no .cu files"


@pytest.mark.parametrize("source", CUDA_SOURCES, ids=lambda p: str(p.relative_to(ROOT / "csrc")))
def test_cuda_source_compiles(source, tmp_path):
    nvcc = _nvcc()
    if nvcc is None:
        if os.environ.get("SIGNBENCH_REQUIRE_NVCC") == "1":
            pytest.fail("SIGNBENCH_REQUIRE_NVCC=1 but nvcc was not found (PATH, CUDA_HOME)")
        pytest.skip("nvcc not found")

    def compile_for(arch: str) -> subprocess.CompletedProcess:
        cmd = [
            nvcc, "-std=c++17", "-O2", f"-I{ROOT / 'csrc'}", "-c", str(source),
            "-o", str(tmp_path / f"{source.parent.name}.sm{arch}.o"),
            "-gencode", f"arch=compute_{arch},code=sm_{arch}", "-Werror", "all-warnings",
            "--resource-usage",
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(len(CUDA_ARCHS)) as pool:
        results = list(pool.map(compile_for, CUDA_ARCHS))
    for arch, result in zip(CUDA_ARCHS, results, strict=True):
        assert result.returncode == 0, f"{source.name} (sm_{arch}) failed:\n{result.stderr}"
        assert (tmp_path / f"{source.parent.name}.sm{arch}.o").stat().st_size > 0
        # The same figures `signbench kernels compile` reports: no kernel may spill registers.
        rows = aot.parse_resource_usage(result.stdout + result.stderr, source.parent.name,
                                        int(arch))
        assert rows, f"{source.name} (sm_{arch}): no --resource-usage lines parsed"
        assert not aot.problems(rows), "\n".join(aot.problems(rows))
