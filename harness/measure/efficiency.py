"""The efficiency block of a run JSON: latency, FPS, power, energy per video, memory, parameters.

Order of work: latency (warm-up + timed calls, inside a peak-memory window), then — on CUDA with
NVML — an idle power baseline of ``IDLE_BASELINE_S`` followed by repeated calls for at least
``power_window_s`` inside a ``PowerMeter``; a separate window, because one latency run is usually
too short for the ~100 ms NVML energy counter. ``gpu_power_w`` is the board's mean gross power over
that window and ``energy_per_video_j`` its gross energy divided by the videos processed (one call
processes ``videos_per_call`` videos, 1 by default); ``idle_power_w`` is reported alongside so net
figures can be derived. Every figure that cannot be measured is None with a reason under
``unavailable`` — never a made-up number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from .latency import _check_int, _resolve_device, measure_latency
from .memory import peak_memory
from .params import count_parameters
from .power import PowerMeter

IDLE_BASELINE_S = 1.0


def measure_efficiency(
    fn: Callable[[], Any],
    *,
    model: torch.nn.Module | None,
    device: torch.device | str | None,
    frames_per_call: int | None,
    warmup: int = 3,
    iters: int = 20,
    power_window_s: float = 2.0,
    progress: bool = False,
    videos_per_call: int = 1,
) -> dict[str, Any]:
    """Measure ``fn`` (one call = one inference on ``videos_per_call`` videos) on ``device``.

    Returns ``{"latency_ms", "fps", "gpu_power_w", "idle_power_w", "energy_per_video_j",
    "peak_memory_mb", "peak_rss_mb", "params", "unavailable"}``.
    """
    _check_int("videos_per_call", videos_per_call, 1)
    if power_window_s <= 0:
        raise ValueError(f"power_window_s must be > 0, got {power_window_s!r}")
    dev = _resolve_device(device)
    unavailable: dict[str, str] = {}

    with peak_memory(dev) as mem:
        stats = measure_latency(
            fn,
            warmup=warmup,
            iters=iters,
            device=dev,
            frames_per_call=frames_per_call,
            progress=progress,
        )

    fps = stats.fps
    if fps is None:
        unavailable["fps"] = "frames_per_call not given"

    gpu_power_w: float | None = None
    idle_power_w: float | None = None
    energy_per_video_j: float | None = None
    if dev.type != "cuda":
        power_reason: str = f"no CUDA device (device is {dev.type}); GPU power needs NVML"
        unavailable["gpu_power_w"] = power_reason
        unavailable["idle_power_w"] = power_reason
        unavailable["energy_per_video_j"] = power_reason
    else:
        meter = PowerMeter(dev.index if dev.index is not None else torch.cuda.current_device())
        if meter.available:
            torch.cuda.synchronize(dev)
            idle_power_w = meter.idle_baseline(IDLE_BASELINE_S)
            calls = 0
            with meter:
                t0 = time.perf_counter()
                while calls == 0 or time.perf_counter() - t0 < power_window_s:
                    fn()
                    torch.cuda.synchronize(dev)  # as in the latency run: one call at a time
                    calls += 1
            reading = meter.result()
            gpu_power_w = reading.mean_power_w
            if reading.energy_j is not None:
                energy_per_video_j = reading.energy_j / (calls * videos_per_call)
            if reading.energy_j is None:
                unavailable["gpu_power_w"] = reading.reason or "power not measured"
                unavailable["energy_per_video_j"] = reading.reason or "energy not measured"
            if idle_power_w is None:
                unavailable["idle_power_w"] = meter.idle_reason or "idle power not measured"
        else:
            reason = meter.unavailable_reason or "NVML unavailable"
            unavailable["gpu_power_w"] = reason
            unavailable["idle_power_w"] = reason
            unavailable["energy_per_video_j"] = reason

    if mem.peak_mb is None:
        unavailable["peak_memory_mb"] = mem.reason or "GPU memory not measured"
    if mem.peak_rss_mb is None:
        unavailable["peak_rss_mb"] = "resource.getrusage unavailable on this platform"

    params: dict[str, int] | None = None
    if model is None:
        unavailable["params"] = "no model given"
    else:
        counts = count_parameters(model)
        params = {"total": counts["total"], "trainable": counts["trainable"]}

    return {
        "latency_ms": stats.to_dict(),
        "fps": fps,
        "gpu_power_w": gpu_power_w,
        "idle_power_w": idle_power_w,
        "energy_per_video_j": energy_per_video_j,
        "peak_memory_mb": mem.peak_mb,
        "peak_rss_mb": mem.peak_rss_mb,
        "params": params,
        "unavailable": unavailable,
    }
