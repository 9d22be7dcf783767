"""Latency of a callable: warm-up, then timed calls, summarised from the raw samples.

Why it is done this way:

* Warm-up calls (not recorded) absorb one-off costs: CUDA context and cuBLAS handle creation,
  Triton JIT compilation and autotuning, allocator growth, lazy imports.
* On CUDA, kernels run asynchronously, so a wall clock around ``fn()`` alone would time the
  launches, not the work. The device is synchronised before every call, and by default each call
  is bracketed by CUDA events on the device's current stream, which give GPU time for the call
  (resolution ~0.5 µs) without host jitter. With ``use_cuda_events=False`` the call is timed by
  the host clock between two synchronisations — end-to-end time including launch overhead
  and host work, which is what a user waiting for a translation sees. Events only see the
  current stream; work ``fn`` puts on other streams is still finished before the next call
  (the whole device is synchronised), but only the wall-clock mode times it.
* On CPU the host clock ``time.perf_counter_ns`` (monotonic, ns resolution) is used.
* p50/p90/p99 come from the raw per-call samples with linear interpolation (numpy's default),
  never from averaged batches, so tails are real tails. ``std`` is the population standard
  deviation (numpy ``ddof=0``) so that it is defined for a single sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class LatencyStats:
    """Per-call latency summary in milliseconds; ``samples_ms`` are the raw timed calls."""

    samples_ms: list[float]
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    n: int
    frames_per_call: int | None = None
    method: str = field(default="wall_clock")  # "cuda_events" | "wall_clock_sync" | "wall_clock"

    @classmethod
    def from_samples(
        cls,
        samples_ms: list[float],
        frames_per_call: int | None = None,
        method: str = "wall_clock",
    ) -> LatencyStats:
        """Summarise raw samples (ms)."""
        if len(samples_ms) == 0:
            raise ValueError("need at least one latency sample")
        arr = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = (float(x) for x in np.percentile(arr, [50.0, 90.0, 99.0]))
        return cls(
            samples_ms=[float(x) for x in arr],
            p50=p50,
            p90=p90,
            p99=p99,
            mean=float(arr.mean()),
            std=float(arr.std()),
            n=int(arr.size),
            frames_per_call=frames_per_call,
            method=method,
        )

    @property
    def fps(self) -> float | None:
        """Video frames per second: ``frames_per_call / mean seconds`` (None if frames unknown)."""
        if self.frames_per_call is None or self.mean <= 0.0:
            return None
        return self.frames_per_call / (self.mean / 1000.0)

    def to_dict(self) -> dict[str, float | int]:
        """The run-JSON form: ``{"p50", "p90", "p99", "mean", "std", "n"}`` in ms."""
        return {
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "mean": self.mean,
            "std": self.std,
            "n": self.n,
        }


def _resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {dev} requested but torch.cuda.is_available() is False")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def _synchronizer(device: torch.device) -> Callable[[], None] | None:
    """A function that waits for all queued work on ``device``, or None for the host CPU."""
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    backend = getattr(torch, device.type, None)  # mps, xpu, ...: best effort
    sync = getattr(backend, "synchronize", None)
    return sync if callable(sync) else None


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def measure_latency(
    fn: Callable[[], Any],
    *,
    warmup: int = 3,
    iters: int = 20,
    device: torch.device | str | None = None,
    frames_per_call: int | None = None,
    use_cuda_events: bool = True,
    progress: bool = False,
) -> LatencyStats:
    """Call ``fn`` ``warmup`` times untimed, then ``iters`` times timed; return the summary.

    ``device`` is where ``fn``'s work runs (None: host CPU). ``frames_per_call`` is the number of
    video frames one call processes, for ``LatencyStats.fps``.
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {type(fn).__name__}")
    _check_int("iters", iters, 1)
    _check_int("warmup", warmup, 0)
    if frames_per_call is not None:
        _check_int("frames_per_call", frames_per_call, 1)
    dev = _resolve_device(device)
    sync = _synchronizer(dev)

    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=warmup + iters, desc="latency", leave=False)
        except ImportError:  # pragma: no cover
            bar = None

    def tick() -> None:
        if bar is not None:
            bar.update(1)

    try:
        for _ in range(warmup):
            fn()
            if sync is not None:
                sync()
            tick()

        samples: list[float] = []
        if dev.type == "cuda" and use_cuda_events:
            method = "cuda_events"
            stream = torch.cuda.current_stream(dev)
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
            for start, end in zip(starts, ends, strict=True):
                torch.cuda.synchronize(dev)
                start.record(stream)
                fn()
                end.record(stream)
                torch.cuda.synchronize(dev)
                samples.append(float(start.elapsed_time(end)))
                tick()
        else:
            method = "wall_clock" if sync is None else "wall_clock_sync"
            for _ in range(iters):
                if sync is not None:
                    sync()
                t0 = time.perf_counter_ns()
                fn()
                if sync is not None:
                    sync()
                t1 = time.perf_counter_ns()
                samples.append((t1 - t0) / 1e6)
                tick()
    finally:
        if bar is not None:
            bar.close()

    return LatencyStats.from_samples(samples, frames_per_call=frames_per_call, method=method)
