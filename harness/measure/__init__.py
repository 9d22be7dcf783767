"""Measurement: latency, FPS, GPU power and energy, peak memory, parameters, environment, NVTX.

Figures that cannot be measured on the current machine (no GPU: no GPU power) are None with the
reason, never made up. See ``measure_efficiency`` for the run-JSON efficiency block.
"""

from .efficiency import measure_efficiency
from .environment import capture_environment
from .latency import LatencyStats, measure_latency
from .memory import PeakMemory, peak_memory
from .nvtx import DOMAIN, enabled, nvtx_range, range_name, stage
from .params import count_parameters, format_count
from .power import PowerMeter, PowerReading, nvml_available

__all__ = [
    "DOMAIN",
    "LatencyStats",
    "PeakMemory",
    "PowerMeter",
    "PowerReading",
    "capture_environment",
    "count_parameters",
    "enabled",
    "format_count",
    "measure_efficiency",
    "measure_latency",
    "nvml_available",
    "nvtx_range",
    "peak_memory",
    "range_name",
    "stage",
]
