"""Peak memory over a window.

On CUDA the figure is exact and per-window: the caching allocator's peak counter is reset on entry
(``torch.cuda.reset_peak_memory_stats``) and read on exit (``torch.cuda.max_memory_allocated``).
It counts tensor memory allocated by PyTorch on the device, including what was already allocated
when the window opened (model weights), so it is the footprint the workload needed; it excludes the
CUDA context and allocator slack (``peak_reserved_mb`` gives reserved memory for the latter).

On the host there is no equivalent per-window counter: the kernel keeps only the process
lifetime peak resident set size (``getrusage(RUSAGE_SELF).ru_maxrss``), which cannot be reset. So on
a CPU device ``peak_mb`` is None (with ``reason``) and ``peak_rss_mb`` reports the process peak RSS
at the end of the window — an upper bound for the window, labelled as such, not a window figure.
``peak_rss_mb`` is filled on every device. All sizes are MiB (2**20 bytes).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch

_MIB = float(1 << 20)


@dataclass
class PeakMemory:
    """Filled when the ``peak_memory`` window closes."""

    device: str
    peak_mb: float | None = None  # device (GPU) peak allocated in the window
    peak_reserved_mb: float | None = None  # device peak reserved by the caching allocator
    peak_rss_mb: float | None = None  # host process lifetime peak RSS at window end
    reason: str | None = None  # why peak_mb is None


def process_peak_rss_mb() -> float | None:
    """Process lifetime peak resident set size in MiB, or None where ``resource`` is missing."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return maxrss / _MIB if sys.platform == "darwin" else maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ``/proc/self/clear_refs`` "5");
    False where that is not possible (then :func:`peak_rss_mb` is the lifetime peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak RSS in MiB since the last :func:`reset_peak_rss` (``VmHWM``), else the lifetime
    peak (:func:`process_peak_rss_mb`)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return process_peak_rss_mb()


@contextlib.contextmanager
def peak_memory(device: torch.device | str | None) -> Iterator[PeakMemory]:
    """Measure peak memory of the ``with`` block on ``device``; read the yielded object after."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    on_cuda = dev.type == "cuda" and torch.cuda.is_available()
    if on_cuda and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    out = PeakMemory(device=str(dev))
    if on_cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    try:
        yield out
    finally:
        if on_cuda:
            torch.cuda.synchronize(dev)
            out.peak_mb = torch.cuda.max_memory_allocated(dev) / _MIB
            out.peak_reserved_mb = torch.cuda.max_memory_reserved(dev) / _MIB
        elif dev.type == "cuda":
            out.reason = "no CUDA device (torch.cuda.is_available() is False)"
        else:
            out.reason = (
                f"peak_mb is GPU memory only (device is {dev.type}); peak_rss_mb is the host "
                "process's lifetime peak RSS, not a per-window figure"
            )
        out.peak_rss_mb = process_peak_rss_mb()
