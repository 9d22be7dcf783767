"""The environment a figure was measured in, recorded with every run.

A latency or accuracy number is only reproducible together with the code version (git commit and
whether the tree had uncommitted changes), the software stack (Python, torch, Triton, CUDA, whether
the native extension has CUDA) and the hardware (CPU name, family / model and vector ISA; GPU
name, driver, clocks, power limit).
GPU fields come from torch (name, memory) and NVML (driver, clocks, power limit); fields NVML
cannot give are None, and ``gpu`` is None with ``gpu_reason`` when there is no usable GPU.
Clocks are read at capture time (an idle GPU reports low clocks; ``max_sm_clock_mhz`` is the cap).
Git is asked about the checkout that contains the ``harness`` package, with a short timeout.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import harness

from .power import _load_nvml, nvml_handle

_GIT_TIMEOUT_S = 5.0


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # status must not take the index lock
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_info() -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the checkout holding ``harness``, else ``(None, None)``."""
    pkg_dir = Path(harness.__file__).resolve().parent
    top = _git(pkg_dir, "rev-parse", "--show-toplevel")
    if top is None:
        return None, None
    # Installed copies (site-packages inside some other checkout) are not this code's checkout.
    if Path(top.strip()).resolve() != pkg_dir.parent:
        return None, None
    head = _git(pkg_dir, "rev-parse", "HEAD")
    commit = head.strip() if head else None
    if commit is None:
        return None, None
    status = _git(pkg_dir, "status", "--porcelain")
    dirty = None if status is None else bool(status.strip())
    return commit, dirty


def _cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's ``key: value`` lines of /proc/cpuinfo, lower-case keys ({} if none)."""
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # end of the first processor's block
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def cpu_name(path: str = "/proc/cpuinfo") -> str | None:
    """CPU model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    return _cpuinfo(path).get("model name") or platform.processor() or None


def cpu_id(path: str = "/proc/cpuinfo") -> str | None:
    """``"<vendor> family F model M stepping S"``, or None off Linux.

    Virtual machines often report a bare model name ("AMD EPYC") for CPU generations whose
    speed differs by 2× (docs/benchmarks.md, "CPU threads"); family and model tell them apart.
    """
    info = _cpuinfo(path)
    if "cpu family" not in info or "model" not in info:
        return None
    parts = [info.get("vendor_id", "cpu"), "family", info["cpu family"], "model", info["model"]]
    if "stepping" in info:
        parts += ["stepping", info["stepping"]]
    return " ".join(parts)


def cpu_capability() -> str | None:
    """The widest vector ISA torch's CPU kernels use here ("AVX2", "AVX512", ...)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # an old torch without the query
        return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _native_cuda() -> bool | None:
    try:
        from harness.ops.dispatch import native_module

        mod = native_module()
        return None if mod is None else bool(mod.has_cuda())
    except Exception:
        return None


def gpu_info() -> tuple[dict[str, Any] | None, str | None]:
    """``(gpu dict, None)`` for the current CUDA device, or ``(None, reason)``."""
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return None, "torch is a CPU-only build (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return None, "no CUDA device (torch.cuda.is_available() is False)"
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    gpu: dict[str, Any] = {
        "index": index,
        "name": props.name,
        "driver": None,
        "memory_total_mb": props.total_memory / float(1 << 20),
        "sm_clock_mhz": None,
        "mem_clock_mhz": None,
        "max_sm_clock_mhz": None,
        "power_limit_w": None,
        "nvml_reason": None,
    }
    nvml, reason = _load_nvml()
    if nvml is None:
        gpu["nvml_reason"] = reason
        return gpu, None
    errors: list[str] = []

    def read(key: str, fn: Any) -> None:
        try:
            gpu[key] = fn()
        except Exception as exc:
            errors.append(f"{key}: {exc}")

    read("driver", lambda: str(nvml.nvmlSystemGetDriverVersion()))
    try:
        handle = nvml_handle(nvml, index)
    except Exception as exc:
        gpu["nvml_reason"] = f"NVML: no handle for device {index}: {exc}"
        return gpu, None
    read("sm_clock_mhz", lambda: int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)))
    read("mem_clock_mhz", lambda: int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM)))
    read(
        "max_sm_clock_mhz",
        lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM)),
    )
    read("power_limit_w", lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0)
    gpu["nvml_reason"] = "; ".join(errors) or None
    return gpu, None


def capture_environment() -> dict[str, Any]:
    """A JSON-ready description of code, software and hardware (see module docstring)."""
    commit, dirty = git_info()
    gpu, gpu_reason = gpu_info()
    return {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_id": cpu_id(),
        "cpu_capability": cpu_capability(),
        "cpu_count": os.cpu_count(),
        # CPU timings depend on these: the cores this process may run on and torch's threads.
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "cuda": torch.version.cuda,
        "signbench": harness.__version__,
        "native_cuda": _native_cuda(),
        "gpu": gpu,
        "gpu_reason": gpu_reason,
    }
