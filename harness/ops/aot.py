"""Ahead-of-time compile checks of the GPU kernels for sm_80 / sm_90, without a GPU.

Every ``@triton.jit`` kernel in ``harness.ops`` is compiled with ``triton.compile`` for a
``GPUTarget`` (PTX and cubin; ``ptxas -v`` gives registers and spills, the metadata shared
memory), once per dtype the op accepts and per launch configuration its launcher picks for the
benchmark shapes and the methods' paper-profile shapes (:data:`SHAPES`). The launchers' own config
functions choose the tiles, so what is checked is what runs. The csrc CUDA kernels' figures come
from ``nvcc --resource-usage``. :func:`check` collects both; a compile failure, a spill or shared
memory over the arch's limit is a problem. Command: ``signbench kernels compile``; notes in
docs/kernels.md ("Compile checks").
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.ops import attention, gated_fusion, hyper, sst

sparsemax = importlib.import_module("harness.ops.sparsemax")  # the package's name is the op

ARCHS: tuple[int, ...] = (80, 90)
#: opt-in shared memory per block (bytes): A100 163 KiB, H100 / H200 227 KiB
SHARED_LIMIT: dict[int, int] = {80: 163 * 1024, 90: 227 * 1024}
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
}
#: the shapes whose launch configs are compiled: benchmarks/test_kernels.py's (full and quick)
#: and the five methods' paper profiles (tests/test_aot.py checks both lists)
SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    # sparsemax row length K: benchmark 128, 1000; SST's C = 128 (HyperSign)
    "sparsemax": {"K": (128, 1000)},
    # sst_convert (C tokens, width d): benchmark and HyperSign 128 × 128
    "sst_convert": {"C": (128,), "d": (128,)},
    # hyper_modulate / HyperFusion width d: benchmark 256 (quick), 1024; HyperSign d_model 1024
    "hyper_modulate": {"d": (256, 1024)},
    # gated blend width d: benchmark GatedCrossAttention 128 (quick), 512; SignFuse / SignBind 512
    "gated_blend": {"d": (128, 512)},
    # attention head dim: 512 / 8 (benchmark, SignFuse, SignBind), 1024 / 16 (mBART), 384 / 6
    # (ViT-S), 2048 / 16 (SignX latent ViT) = 128, 128 / 8 = 16 (quick benchmark)
    "attention": {"dh": (16, 64, 128)},
}
_ROOT = Path(__file__).resolve().parents[2]
_PTXAS = re.compile(r"(\d+) bytes spill stores.*?Used (\d+) registers", re.S)
_NVCC_FUNC = re.compile(r"Function properties for (\S+)\n\s+(\d+) bytes stack frame, (\d+) bytes "
                        r"spill stores, (\d+) bytes spill loads\n[^\n]*?Used (\d+) registers"
                        r"(?:[^\n]*?(\d+) bytes smem)?")


@dataclass(frozen=True)
class Variant:
    """One Triton kernel specialisation: signature (arg → type), constexprs, launch options."""

    op: str
    fn: Any
    dtype: str
    signature: dict[str, str]
    constexprs: dict[str, Any]
    num_warps: int = 4
    num_stages: int = 3
    name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.fn.__name__)

    @property
    def config(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.constexprs.items())]
        return ",".join([*parts, f"warps={self.num_warps}", f"stages={self.num_stages}"])

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.dtype, self.config + str(sorted(self.signature.items())))


def _signature(fn: Any, constexprs: dict[str, Any], types: dict[str, str]) -> dict[str, str]:
    """Every argument of ``fn``: "constexpr", or its type from ``types`` (all must be given)."""
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in types:
            sig[name] = types[name]
        else:
            raise KeyError(f"{fn.__name__}: no type for argument {name!r}")
    return sig


def _variant(op: str, fn: Any, dtype: str, types: dict[str, str], constexprs: dict[str, Any],
             num_warps: int = 4, num_stages: int = 3) -> Variant:
    return Variant(op, fn, dtype, _signature(fn, constexprs, types), constexprs, num_warps,
                   num_stages)


def _ptrs(names: str, t: str) -> dict[str, str]:
    return {n: f"*{t}" for n in names.split()}


def _scalars(names: str, t: str) -> dict[str, str]:
    return {n: t for n in names.split()}


def _sparsemax(dt: str) -> Iterator[Variant]:
    for k in SHAPES["sparsemax"]["K"]:
        block, warps = sparsemax.block_warps(k)
        refine = {"N_BISECT": sparsemax.N_BISECT, "N_REFINE": sparsemax.N_REFINE}
        yield _variant("sparsemax", sparsemax._sparsemax_fwd_kernel, dt,
                       {**_ptrs("x_ptr out_ptr", dt), "K": "i32"},
                       {"BLOCK": block, **refine}, warps)
        yield _variant("sparsemax", sparsemax._sparsemax_bwd_kernel, dt,
                       {**_ptrs("p_ptr g_ptr gin_ptr", dt), "K": "i32"}, {"BLOCK": block}, warps)


def _sst(dt: str) -> Iterator[Variant]:
    pools = sst._POOL_CODE
    for c in SHAPES["sst_convert"]["C"]:
        for d in SHAPES["sst_convert"]["d"]:
            cf, warps = sst.fwd_row_config(c)
            blocks = sst.triton_blocks(c, d, cuda=True)
            for pool, code in pools.items():
                for has_mask in (False, True):
                    mask = "*u8" if has_mask else f"*{dt}"  # no mask: feats is passed, never read
                    is_max = pool == "max"
                    common = {"POOL": code, "HAS_MASK": has_mask}
                    yield _variant("sst_convert", sst._sst_fwd_kernel, dt, {
                        **_ptrs("feats_ptr tokens_ptr weights_ptr out_ptr", dt), "mask_ptr": mask,
                        "raw_ptr": "*fp32", "idx_ptr": "*i32" if is_max else "*fp32",
                        "fsum_ptr": "*fp32", "scale": "fp32", **_scalars("N C D", "i32"),
                    }, {**common, **blocks, "BLOCK_CF": cf, "N_BISECT": sst.N_BISECT,
                        "N_REFINE": sst.N_REFINE,
                        "DOT_PRECISION": "ieee" if dt == "fp32" else "tf32"}, warps)
                    yield _variant("sst_convert", sst._sst_bwd_row_kernel, dt, {
                        **_ptrs("tokens_ptr weights_ptr dw_ptr dout_ptr dfeats_ptr", dt),
                        "mask_ptr": mask, "dp_ptr": "*fp32",
                        "idx_ptr": "*i32" if is_max else "*fp32", "scale": "fp32",
                        **_scalars("N C D", "i32"),
                    }, {**common, **blocks}, sst.ROW_WARPS)
                yield _variant("sst_convert", sst._sst_bwd_tokens_kernel, dt, {
                    **_ptrs("feats_ptr weights_ptr dout_ptr dtokens_ptr", dt), "dp_ptr": "*fp32",
                    "idx_ptr": "*i32" if pool == "max" else "*fp32", "fsum_ptr": "*fp32",
                    "scale": "fp32", **_scalars("B N C D", "i32"),
                }, {"POOL": code, "BLOCK_C": blocks["BLOCK_C"], "BLOCK_D": blocks["BLOCK_D"]})


def _hyper(dt: str) -> Iterator[Variant]:
    stats = {"mean_ptr": "*fp32", "rstd_ptr": "*fp32"}
    for d in SHAPES["hyper_modulate"]["d"]:
        for act in hyper._ACT_CODES.values():
            block_d, block_m, warps = hyper._row_launch(d, 4096)
            yield _variant("hyper_modulate", hyper._hyper_fwd_kernel, dt, {
                **_ptrs("fv_ptr fk_ptr gamma_ptr beta_ptr out_ptr", dt),
                **_ptrs("w_ptr b_ptr", "fp32"), **stats, **_scalars("rows d", "i32"),
                "eps": "fp32"}, {"ACT": act, "BLOCK_M": block_m, "BLOCK_D": block_d}, warps)
            block_d, block_m, warps = hyper._row_launch(d, 2048, hyper.BWD_PER_THREAD)
            yield _variant("hyper_modulate", hyper._hyper_bwd_kernel, dt, {
                **_ptrs("dout_ptr fv_ptr fk_ptr gamma_ptr beta_ptr dfv_ptr dfk_ptr dgamma_ptr "
                        "dbeta_ptr", dt),
                **_ptrs("w_ptr b_ptr dw_part_ptr db_part_ptr", "fp32"), **stats,
                **_scalars("rows d rows_per_program", "i32")},
                {"ACT": act, "BLOCK_M": block_m, "BLOCK_D": block_d}, warps)
        block_d, block_m, warps = hyper._row_launch(d, hyper.ROW_STATS_BUDGET)
        yield _variant("HyperFusion", hyper._row_stats_kernel, dt, {
            **_ptrs("fv_ptr fk_ptr", dt), **stats, **_scalars("rows d", "i32"), "eps": "fp32"},
            {"BLOCK_M": block_m, "BLOCK_D": block_d}, warps)
    bm, bn, bk, warps, stages = hyper.fused_config(cuda=True, dtype=DTYPES[dt])
    ln = "fp32" if dt == "fp32" else dt  # the module's LayerNorm affine, in the module's dtype
    for act in hyper._ACT_CODES.values():
        for shared in (False, True):
            for ieee in (True, False) if dt == "fp32" else (False,):  # fp32: tf32 when allowed
                yield _variant("HyperFusion", hyper._fused_gen_modulate_kernel, dt, {
                    **_ptrs("h_ptr wg_ptr wb_ptr bg_ptr bb_ptr fv_ptr fk_ptr out_ptr", dt),
                    **_ptrs("lnw_ptr lnb_ptr", ln), **stats,
                    **_scalars("stride_hm hb_offset stride_wn M N K", "i32")},
                    {"ACT": act, "SHARED_H": shared, "IEEE_FP32": ieee, "BLOCK_M": bm,
                     "BLOCK_N": bn, "BLOCK_K": bk}, warps, stages)


def _gated(dt: str) -> Iterator[Variant]:
    dtype = DTYPES[dt]
    for d in SHAPES["gated_blend"]["d"]:
        cfg = gated_fusion.fwd_config(d, dtype, cuda=True)
        warps, stages = cfg.pop("num_warps"), cfg.pop("num_stages")
        yield _variant("gated_blend", gated_fusion._gate_fwd_kernel, dt, {
            **_ptrs("OVS OSV FV FS W Bg LW LB Y", dt), **_ptrs("Alpha Mean Rstd", "fp32"),
            **_scalars("N d", "i32"), "eps": "fp32"}, cfg, warps, stages)
        cfg = gated_fusion.bwd_config(d)
        warps = cfg.pop("num_warps")
        yield _variant("gated_blend", gated_fusion._gate_bwd_kernel, dt, {
            **_ptrs("DY OVS OSV LW DZ GVS GSV", dt), **_ptrs("Alpha Mean Rstd DLW DLB", "fp32"),
            **_scalars("N d", "i32")}, cfg, warps)


def _attention(dt: str) -> Iterator[Variant]:
    dtype = DTYPES[dt]
    scal = {**_scalars("H Tq Tk dh half_window", "i32"), "scale": "fp32"}
    stats = _ptrs("LSE Delta", "fp32")
    for dh in SHAPES["attention"]["dh"]:
        bm, bn, bd, precision = attention.triton_config(dh, dtype, cuda=True)
        warps = attention.triton_warps(dh, dtype, cuda=True)
        for has_mask in (False, True):
            for windowed in (False, True):
                cx = {"HAS_MASK": has_mask, "WINDOWED": windowed, "PRECISION": precision,
                      "BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_D": bd}
                mask = {"Mask": "*u8"}
                yield _variant("attention", attention._attn_fwd_kernel, dt, {
                    **_ptrs("Q K V Out", dt), **mask, "LSE": "*fp32", **scal}, cx, warps)
                yield _variant("attention", attention._attn_bwd_dkdv_kernel, dt, {
                    **_ptrs("Q K V DO DK DV", dt), **mask, **stats, **scal}, cx, warps)
                yield _variant("attention", attention._attn_bwd_dq_kernel, dt, {
                    **_ptrs("Q K V DO DQ", dt), **mask, **stats, **scal}, cx, warps)


_OPS: tuple[Callable[[str], Iterator[Variant]], ...] = (_sparsemax, _sst, _hyper, _gated,
                                                       _attention)


#: constexprs that pick a code path (activation, pooling, masks), not a tile size
FLAGS = frozenset({"ACT", "POOL", "HAS_MASK", "WINDOWED", "SHARED_H", "IEEE_FP32"})


def triton_variants(dtypes: Sequence[str] = tuple(DTYPES), quick: bool = False) -> list[Variant]:
    """Every Triton kernel specialisation the launchers pick for :data:`SHAPES`, deduplicated.

    ``quick``: per kernel, dtype and tile configuration only the first flag combination
    (:data:`FLAGS`), so every kernel × dtype × tile config still compiles (CI's check).
    """
    seen: dict[tuple[str, ...], Variant] = {}
    for dt in dtypes:
        for op in _OPS:
            for v in op(dt):
                key = v.key
                if quick:
                    tiles = {k: x for k, x in v.constexprs.items() if k not in FLAGS}
                    key = (v.name, v.dtype, str(sorted(tiles.items())), str(v.num_warps),
                           str(v.num_stages))
                seen.setdefault(key, v)
    return list(seen.values())


def _row(kind: str, op: str, name: str, arch: int, dtype: str, config: str) -> dict[str, Any]:
    return {"kind": kind, "op": op, "name": name, "arch": f"sm_{arch}", "dtype": dtype,
            "config": config, "registers": None, "spills": None, "shared_bytes": None,
            "error": None}


def compile_triton(variant: Variant, arch: int) -> dict[str, Any]:
    """Compile one variant for ``sm_<arch>``: registers, spill bytes, static shared memory."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    row = _row("triton", variant.op, variant.name, arch, variant.dtype, variant.config)
    args = variant.fn.arg_names
    constexprs = {(args.index(k),): v for k, v in variant.constexprs.items()}
    # Pointers 16-byte aligned, as torch allocates them (the runtime specialises the same way).
    attrs = {(args.index(k),): [["tt.divisibility", 16]] for k, t in variant.signature.items()
             if t.startswith("*")}
    log = io.StringIO()
    try:  # a fresh cache, so ptxas runs (and reports) every time
        with tempfile.TemporaryDirectory() as cache, knobs.cache.scope(), knobs.nvidia.scope(), \
                contextlib.redirect_stdout(log):
            knobs.cache.dir = cache
            knobs.nvidia.dump_ptxas_log = True
            kernel = triton.compile(
                ASTSource(variant.fn, variant.signature, constexprs, attrs),
                target=GPUTarget("cuda", arch, 32),
                options={"num_warps": variant.num_warps, "num_stages": variant.num_stages},
            )
    except Exception as exc:  # a compile failure is a result of the check, not a crash
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        row["error"] = f"{type(exc).__name__}: {(lines or [''])[-1][:300]}"  # the cause is last
        return row
    match = _PTXAS.search(log.getvalue())
    if match is None:
        row["error"] = "ptxas printed no resource usage"
        return row
    row["spills"], row["registers"] = int(match.group(1)), int(match.group(2))
    row["shared_bytes"] = int(kernel.metadata.shared)
    return row


def find_nvcc() -> str | None:
    """nvcc on PATH, else under CUDA_HOME / CUDA_PATH / /usr/local/cuda."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidate = Path(home) / "bin" / "nvcc"
    return shutil.which("nvcc") or (str(candidate) if candidate.exists() else None)


def nvcc_resource_usage(source: Path, arch: int, nvcc: str) -> list[dict[str, Any]]:
    """``nvcc --resource-usage`` of one csrc .cu file for ``sm_<arch>``: one row per kernel."""
    op = source.parent.name
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [nvcc, "-std=c++17", "-O2", f"-I{_ROOT / 'csrc'}", "-c", str(source),
               "-o", str(Path(tmp) / "k.o"), "-gencode", f"arch=compute_{arch},code=sm_{arch}",
               "--resource-usage"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        row = _row("cuda", op, source.name, arch, "-", "-")
        row["error"] = f"nvcc failed: {done.stderr.strip()[-300:]}"
        return [row]
    return parse_resource_usage(done.stdout + done.stderr, op, arch)


def parse_resource_usage(text: str, op: str, arch: int) -> list[dict[str, Any]]:
    """Rows (registers, spill bytes, static shared memory) from ``--resource-usage`` output."""
    rows = []
    for m in _NVCC_FUNC.finditer(text):
        row = _row("cuda", op, _demangle(m.group(1)), arch, "-", "-")
        row["spills"], row["registers"] = int(m.group(3)), int(m.group(5))
        row["shared_bytes"] = int(m.group(6) or 0)  # static; dynamic smem is sized at launch
        rows.append(row)
    return rows


def _demangle(symbol: str) -> str:
    cxxfilt = shutil.which("c++filt")
    if cxxfilt is None:
        return symbol
    name = subprocess.run([cxxfilt, symbol], capture_output=True, text=True).stdout.strip()
    return re.sub(r"\(anonymous namespace\)::|\(.*\)$", "", name) or symbol


def problems(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per failed compile, spill, or shared memory over the arch's limit."""
    out = []
    for r in rows:
        where = f"{r['name']} {r['arch']} {r['dtype']} {r['config']}"
        limit = SHARED_LIMIT[int(r["arch"].removeprefix("sm_"))]
        if r["error"]:
            out.append(f"{where}: {r['error']}")
        elif r["spills"]:
            out.append(f"{where}: {r['spills']} bytes of register spills")
        elif r["shared_bytes"] > limit:
            out.append(f"{where}: {r['shared_bytes']} bytes of shared memory > {limit}")
    return out


def check(archs: Sequence[int] = ARCHS, dtypes: Sequence[str] = tuple(DTYPES), *,
          quick: bool = False, cuda: bool = True,
          progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Compile every Triton variant (and with ``cuda``, every csrc .cu) for ``archs``.

    Returns {"archs", "quick", "triton_version", "nvcc", "kernels": rows, "problems": lines}.
    """
    import triton

    jobs = [(v, a) for a in archs for v in triton_variants(dtypes, quick)]
    rows: list[dict[str, Any]] = []
    for i, (variant, arch) in enumerate(jobs):
        rows.append(compile_triton(variant, arch))
        if progress:
            progress(i + 1, len(jobs))
    nvcc = find_nvcc() if cuda else None
    if nvcc:
        sources = sorted((_ROOT / "csrc").rglob("*.cu"))
        pairs = [(s, a) for s in sources for a in archs]
        with ThreadPoolExecutor(2) as pool:
            for part in pool.map(lambda p: nvcc_resource_usage(p[0], p[1], nvcc), pairs):
                rows.extend(part)
    return {"archs": [f"sm_{a}" for a in archs], "quick": quick,
            "triton_version": triton.__version__, "nvcc": nvcc, "kernels": rows,
            "problems": problems(rows)}


__all__ = ["ARCHS", "DTYPES", "FLAGS", "SHAPES", "SHARED_LIMIT", "Variant", "check",
           "compile_triton", "find_nvcc", "nvcc_resource_usage", "parse_resource_usage",
           "problems", "triton_variants"]
