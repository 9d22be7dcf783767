"""pytest-benchmark integration for SignBench: the ``bench`` fixture and machine-info capture.

Why a wrapper around pytest-benchmark's ``benchmark`` fixture:

* GPU work is asynchronous, so a timed call must end with ``torch.cuda.synchronize()`` or it
  measures only the launch; ``bench`` adds the sync inside the timed function on CUDA devices.
* The first calls of a Triton / ``torch.compile`` kernel compile and autotune; ``bench`` runs the
  function a few times before pytest-benchmark calibrates, and warm-up is on by default
  (``--benchmark-warmup=on --benchmark-warmup-iterations=10`` unless given on the command line).
* ``signbench leaderboard`` builds ``kernels.md`` / ``methods.md`` from ``--benchmark-json`` output;
  it needs every row to say what was measured. ``bench`` writes that into ``extra_info``:

  ============  ==============================================================================
  ``kind``      ``"kernel"`` (default) or ``"method"`` (end-to-end; goes to ``methods.md``)
  ``op``        op name, e.g. ``"sst_convert"`` (kernels); method key for ``kind="method"``
  ``mode``      ``"fwd"`` or ``"fwd+bwd"``
  ``backend``   ``"eager"`` (torch reference, the speedup baseline), ``"compile"``, ``"triton"``,
                ``"native"``, ...
  ``dtype``     ``"float32"``, ``"bfloat16"``, ... (``torch.`` prefix dropped)
  ``shape``     ``"B=64,N=256,C=128,d=128"`` (a dict or tuple given is formatted this way)
  ``device``    the GPU name (``torch.cuda.get_device_name``) or ``"cpu"``
  ``frames``    video frames processed per call (optional) → ``fps`` = frames / median
  ``flops``     floating-point operations per call (optional) → ``tflops``
  ``bytes_moved`` bytes read + written per call (optional) → ``gbps``
  ``median_s``  the measured median (seconds per call) the derived figures come from
  ============  ==============================================================================

  Any other keyword (``method=``, ``profile=``, ``joules=``, ...) is stored as given.

GPU-only cases: mark them ``@pytest.mark.requires_cuda`` (or ``@pytest.mark.gpu``), or request the
``cuda_device`` fixture; they skip cleanly on machines without CUDA.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

WARMUP_ITERATIONS = 10
#: untimed calls ``bench`` makes before pytest-benchmark calibrates (compilation, autotuning)
PRE_WARMUP_CALLS = 2

requires_cuda = pytest.mark.requires_cuda
"""Marker for GPU-only benchmarks: ``@requires_cuda`` skips the test when CUDA is unavailable."""


# ------------------------------------------------------------------------------------ helpers


@cache
def cuda_available() -> bool:
    """True when torch is importable and sees a CUDA device (cached; imports torch lazily)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def is_cuda_device(device: Any) -> bool:
    """Whether ``device`` (``"cuda"``, ``"cuda:1"``, a ``torch.device``, a GPU name) is a GPU."""
    if device is None:
        return False
    kind = getattr(device, "type", None)
    if kind is not None:
        return kind == "cuda"
    text = str(device).strip().lower()
    if text.startswith("cuda"):
        return True
    return text not in ("", "cpu", "meta", "mps") and cuda_available()


def device_name(device: Any) -> str:
    """The name recorded in ``extra_info.device``: the GPU model for CUDA devices, else ``"cpu"``
    (or the string given when it is already a name)."""
    kind = getattr(device, "type", None)
    text = str(device).strip()
    if kind == "cuda" or text.lower().startswith("cuda"):
        import torch

        index = getattr(device, "index", None)
        if index is None and ":" in text:
            index = int(text.split(":", 1)[1])
        return str(torch.cuda.get_device_name(index))
    if kind is not None:
        return str(kind)
    return text or "cpu"


def format_dtype(dtype: Any) -> str:
    """``torch.bfloat16`` → ``"bfloat16"``; strings are kept."""
    text = str(dtype)
    return text.removeprefix("torch.")


def format_shape(shape: Any) -> str:
    """``{"B": 64, "N": 256}`` → ``"B=64,N=256"``; ``(64, 256)`` → ``"64x256"``; strings kept."""
    if isinstance(shape, str):
        return shape
    if isinstance(shape, Mapping):
        return ",".join(f"{k}={v}" for k, v in shape.items())
    try:
        return "x".join(str(int(s)) for s in shape)
    except TypeError:
        return str(shape)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def derived_figures(
    median_s: float | None,
    *,
    frames: float | None = None,
    flops: float | None = None,
    bytes_moved: float | None = None,
) -> dict[str, float]:
    """``fps``, ``tflops`` and ``gbps`` from the median seconds per call (those that apply)."""
    out: dict[str, float] = {}
    if not median_s or median_s <= 0:
        return out
    if frames is not None:
        out["fps"] = frames / median_s
    if flops is not None:
        out["tflops"] = flops / median_s / 1e12
    if bytes_moved is not None:
        out["gbps"] = bytes_moved / median_s / 1e9
    return out


def make_extra_info(
    *,
    op: str | None,
    kind: str,
    mode: str,
    backend: str,
    dtype: Any,
    shape: Any,
    device: Any,
    frames: float | None = None,
    flops: float | None = None,
    bytes_moved: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The ``extra_info`` dict of the convention above (without the measured figures)."""
    if kind not in ("kernel", "method"):
        raise ValueError(f"kind must be 'kernel' or 'method', got {kind!r}")
    info: dict[str, Any] = {
        "kind": kind,
        "mode": str(mode),
        "backend": str(backend),
        "dtype": format_dtype(dtype),
        "shape": format_shape(shape),
        "device": device_name(device),
    }
    if op is not None:
        info["op"] = str(op)
    for key, value in (("frames", frames), ("flops", flops), ("bytes_moved", bytes_moved)):
        if value is not None:
            info[key] = _jsonable(value)
    for key, value in extra.items():
        info[key] = _jsonable(value)
    return info


def synchronized(fn: Callable[[], T], device: Any) -> Callable[[], T]:
    """``fn`` followed by ``torch.cuda.synchronize()`` when ``device`` is a CUDA device."""
    if not is_cuda_device(device):
        return fn
    import torch

    def timed() -> T:
        result = fn()
        torch.cuda.synchronize()
        return result

    return timed


# ------------------------------------------------------------------------------------ hooks


def _option_given(config: pytest.Config, name: str) -> bool:
    words = list(config.invocation_params.args)
    words += os.environ.get("PYTEST_ADDOPTS", "").split()
    with contextlib.suppress(ValueError):
        words += list(config.getini("addopts"))
    return any(w == name or w.startswith(name + "=") for w in map(str, words))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires_cuda: needs a CUDA device (skipped without one)")
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")
    # pytest-benchmark reads these options in its own (trylast) pytest_configure, after this one.
    option = config.option
    if hasattr(option, "benchmark_warmup") and not _option_given(config, "--benchmark-warmup"):
        option.benchmark_warmup = True
    if hasattr(option, "benchmark_warmup_iterations") and not _option_given(
        config, "--benchmark-warmup-iterations"
    ):
        option.benchmark_warmup_iterations = WARMUP_ITERATIONS


def pytest_runtest_setup(item: pytest.Item) -> None:
    needs_gpu = item.get_closest_marker("requires_cuda") or item.get_closest_marker("gpu")
    if needs_gpu and not cuda_available():
        pytest.skip("needs a CUDA device")


def _versions_fallback() -> dict[str, Any]:
    out: dict[str, Any] = {"torch": None, "triton": None, "cuda": None, "gpu": None}
    try:
        import torch

        out["torch"] = torch.__version__
        out["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            out["gpu"] = {"name": torch.cuda.get_device_name()}
    except ImportError:
        pass
    try:
        from importlib.metadata import PackageNotFoundError, version

        out["triton"] = version("triton")
    except (ImportError, PackageNotFoundError):
        pass
    return out


def _find_capture_environment() -> Callable[[], Mapping[str, Any]] | None:
    """``harness.measure.capture_environment`` if it can be imported (lazily; None otherwise)."""
    import importlib

    for module in ("harness.measure", "harness.measure.environment"):
        try:
            fn = getattr(importlib.import_module(module), "capture_environment", None)
        except ImportError:
            continue
        if callable(fn):
            return fn
    return None


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Add ``signbench_env`` (``harness.measure.capture_environment()``) and flat version keys."""
    env: dict[str, Any] | None = None
    capture_environment = _find_capture_environment()
    if capture_environment is not None:
        try:
            env = dict(capture_environment())
        except Exception as exc:  # record, never lose the benchmark run over it
            machine_info["signbench_env_error"] = f"{type(exc).__name__}: {exc}"
    machine_info["signbench_env"] = _jsonable(env)
    source = env if env is not None else _versions_fallback()
    gpu = source.get("gpu")
    machine_info["gpu_name"] = gpu.get("name") if isinstance(gpu, Mapping) else None
    machine_info["torch_version"] = source.get("torch")
    machine_info["triton_version"] = source.get("triton")
    machine_info["cuda_version"] = source.get("cuda")


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def cuda_device() -> str:
    """``"cuda"``; skips the test when no CUDA device is available."""
    if not cuda_available():
        pytest.skip("needs a CUDA device")
    return "cuda"


@pytest.fixture
def bench(benchmark: Any) -> Callable[..., Any]:
    """Time ``fn`` with pytest-benchmark and record what was measured in ``extra_info``.

    ``bench(fn, *, op=None, kind="kernel", mode, backend, dtype, shape, device, frames=None,
    flops=None, bytes_moved=None, rounds=None, warmup_rounds=1, **extra)`` — ``fn`` takes no
    arguments; on CUDA each timed call ends with a device sync. ``rounds`` switches to
    ``benchmark.pedantic`` (one call per round; for slow end-to-end cases). Returns ``fn()``'s
    result. After timing, ``median_s`` and the derived ``fps`` / ``tflops`` / ``gbps`` are added.
    """

    def run(
        fn: Callable[[], T],
        *,
        op: str | None = None,
        kind: str = "kernel",
        mode: str,
        backend: str,
        dtype: Any,
        shape: Any,
        device: Any,
        frames: float | None = None,
        flops: float | None = None,
        bytes_moved: float | None = None,
        rounds: int | None = None,
        warmup_rounds: int = 1,
        **extra: Any,
    ) -> T:
        info = make_extra_info(
            op=op,
            kind=kind,
            mode=mode,
            backend=backend,
            dtype=dtype,
            shape=shape,
            device=device,
            frames=frames,
            flops=flops,
            bytes_moved=bytes_moved,
            **extra,
        )
        benchmark.extra_info.update(info)
        timed = synchronized(fn, device)
        if rounds is None:
            if getattr(benchmark, "enabled", True):
                for _ in range(PRE_WARMUP_CALLS):
                    timed()
            result = benchmark(timed)
        else:
            result = benchmark.pedantic(timed, rounds=rounds, warmup_rounds=warmup_rounds)
        stats = getattr(benchmark, "stats", None)
        median = getattr(getattr(stats, "stats", None), "median", None)
        if median:
            benchmark.extra_info["median_s"] = float(median)
            benchmark.extra_info.update(
                derived_figures(median, frames=frames, flops=flops, bytes_moved=bytes_moved)
            )
        return result

    return run
