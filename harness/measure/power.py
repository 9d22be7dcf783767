"""GPU power and energy over a window, from NVML.

Preferred source: ``nvmlDeviceGetTotalEnergyConsumption`` — a cumulative board energy counter in
millijoules (Volta and newer). The difference between two reads is the energy actually used in
between, whatever the power did in the meantime, so no spikes are missed and no sampling thread
competes with the workload. The counter is updated only about every 100 ms, so a window must be
well above that (we warn below 0.5 s) and a window in which it did not move is reported as
unmeasured, not as 0 J.

Fallback (counter unsupported): a background thread reads ``nvmlDeviceGetPowerUsage`` (mW) every
~20 ms and the samples are integrated with the trapezoid rule. It is less faithful: on recent GPUs
the reading is itself an average over up to 1 s, and sampling can miss short spikes.

``idle_baseline()`` measures the idle draw of the board before the workload, reported separately so
that the net energy of the workload, ``energy - idle_power * duration``, can be derived.

When NVML or the device is unavailable every figure is None and ``reason`` says why — never a
made-up number. ``device_index`` is the CUDA (torch) device index; it is mapped to the NVML device
by PCI bus id when torch sees CUDA (CUDA_VISIBLE_DEVICES may reorder devices), else used as the
NVML index.
"""

from __future__ import annotations

import itertools
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Literal

MIN_WINDOW_S = 0.5
SAMPLE_INTERVAL_S = 0.02

PowerMethod = Literal["energy_counter", "power_sampling"]

_nvml_state: tuple[Any | None, str] | None = None
_nvml_lock = threading.Lock()


def _load_nvml() -> tuple[Any | None, str]:
    """``(pynvml module, "")`` after a successful ``nvmlInit``, else ``(None, reason)``; cached."""
    global _nvml_state
    with _nvml_lock:
        if _nvml_state is None:
            try:
                import pynvml
            except ImportError as exc:
                _nvml_state = (None, f"NVML unavailable: pynvml not installed ({exc})")
            else:
                try:
                    pynvml.nvmlInit()
                    count = int(pynvml.nvmlDeviceGetCount())
                except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
                    _nvml_state = (None, f"NVML unavailable: {exc}")
                else:
                    if count == 0:
                        _nvml_state = (None, "NVML unavailable: no NVIDIA device found")
                    else:
                        _nvml_state = (pynvml, "")
        return _nvml_state


def nvml_available() -> tuple[bool, str]:
    """Whether NVML can be initialised and sees a device, with the reason when not."""
    mod, reason = _load_nvml()
    return mod is not None, reason


def nvml_handle(nvml: Any, device_index: int) -> Any:
    """The NVML handle of CUDA device ``device_index`` (by PCI bus id when torch sees CUDA)."""
    try:
        import torch

        if torch.cuda.is_available() and device_index < torch.cuda.device_count():
            props = torch.cuda.get_device_properties(device_index)
            domain = getattr(props, "pci_domain_id", None)
            bus = getattr(props, "pci_bus_id", None)
            dev = getattr(props, "pci_device_id", None)
            if None not in (domain, bus, dev):
                return nvml.nvmlDeviceGetHandleByPciBusId(f"{domain:08x}:{bus:02x}:{dev:02x}.0")
    except Exception:  # fall back to the plain index below
        pass
    return nvml.nvmlDeviceGetHandleByIndex(device_index)


def trapezoid_energy_j(samples: Sequence[tuple[float, float]]) -> float:
    """Energy (J) from ``(time_s, power_w)`` samples, trapezoid rule; needs >= 2 samples."""
    if len(samples) < 2:
        raise ValueError("need at least two power samples to integrate")
    total = 0.0
    for (t0, p0), (t1, p1) in itertools.pairwise(samples):
        total += 0.5 * (p0 + p1) * (t1 - t0)
    return total


@dataclass
class PowerReading:
    """One measured window. Figures are None when unmeasured, with ``reason`` saying why.

    ``energy_j`` is the board's gross energy over the window, ``mean_power_w = energy_j /
    duration_s``; ``idle_power_w`` is the idle baseline (None if not measured). ``duration_s`` is
    the window's wall-clock length (measured even when power is not).
    """

    energy_j: float | None
    mean_power_w: float | None
    idle_power_w: float | None
    duration_s: float | None
    method: PowerMethod | None
    reason: str | None
    samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PowerMeter:
    """Context manager measuring GPU energy over the ``with`` window.

    ``with PowerMeter(0) as pm: work(); torch.cuda.synchronize()`` then ``pm.result()``.
    Synchronise the device before leaving the block, so queued work falls inside the window.
    ``nvml``, ``clock`` and ``sleep`` can be replaced (tests use a fake NVML and clock).
    """

    def __init__(
        self,
        device_index: int = 0,
        *,
        nvml: Any | None = None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        sample_interval_s: float = SAMPLE_INTERVAL_S,
        min_window_s: float = MIN_WINDOW_S,
    ) -> None:
        self.device_index = device_index
        self._clock = clock
        self._sleep = sleep
        self.sample_interval_s = sample_interval_s
        self.min_window_s = min_window_s
        self.idle_power_w: float | None = None
        self.idle_reason: str | None = None
        self._nvml: Any | None = None
        self._handle: Any = None
        self._method: PowerMethod | None = None
        self.unavailable_reason: str | None = None

        if nvml is None:
            nvml, reason = _load_nvml()
            if nvml is None:
                self.unavailable_reason = reason
        if nvml is not None:
            try:
                self._handle = nvml_handle(nvml, device_index)
                self._nvml = nvml
            except Exception as exc:
                self.unavailable_reason = f"NVML: no handle for device {device_index}: {exc}"
        if self._nvml is not None:
            self._method = self._probe_method()

        self._result: PowerReading | None = None
        self._active = False
        self._t0 = 0.0
        self._e0_mj: int | None = None
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sample_error: str | None = None
        self._start_error: str | None = None

    # ------------------------------------------------------------------ probing
    def _probe_method(self) -> PowerMethod | None:
        nvml = self._nvml
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            return "energy_counter"
        except Exception as exc_energy:
            try:
                nvml.nvmlDeviceGetPowerUsage(self._handle)
                return "power_sampling"
            except Exception as exc_power:
                self.unavailable_reason = (
                    f"NVML: energy counter unsupported ({exc_energy}) and power reading "
                    f"unsupported ({exc_power})"
                )
                return None

    @property
    def available(self) -> bool:
        """Whether this meter can measure anything."""
        return self._method is not None

    @property
    def method(self) -> PowerMethod | None:
        return self._method

    # ------------------------------------------------------------------ reads
    def _energy_mj(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def _power_w(self) -> float:
        return float(self._nvml.nvmlDeviceGetPowerUsage(self._handle)) / 1000.0

    def _sample(self) -> None:
        p = self._power_w()
        self._samples.append((self._clock(), p))

    def _sampler(self) -> None:
        while not self._stop.wait(self.sample_interval_s):
            try:
                self._sample()
            except Exception as exc:  # keep what we have; report the failure
                self._sample_error = f"NVML power reading failed while sampling: {exc}"
                return

    # ------------------------------------------------------------------ idle baseline
    def idle_baseline(self, seconds: float = 1.0) -> float | None:
        """Measure idle board power (W) over ``seconds`` of sleeping; store it in the results.

        Call with the device idle (synchronised), before the workload. Returns None (at once,
        without sleeping) when power cannot be measured.
        """
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds!r}")
        if not self.available:
            self.idle_power_w = None
            self.idle_reason = self.unavailable_reason
            return None
        if self._active:
            raise RuntimeError("idle_baseline() cannot run inside an active measurement window")
        reading = self._measure(lambda: self._sleep(seconds))
        self.idle_power_w = reading.mean_power_w
        self.idle_reason = reading.reason
        return self.idle_power_w

    def _measure(self, body: Callable[[], None]) -> PowerReading:
        """Measure one window around ``body`` without replacing the user's last result."""
        previous = self._result
        with self:
            body()
        reading = self.result()
        self._result = previous
        return reading

    # ------------------------------------------------------------------ window
    def __enter__(self) -> PowerMeter:
        if self._active:
            raise RuntimeError("PowerMeter window is already active")
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._finish()
        return False

    def _start(self) -> None:
        self._active = True
        self._result = None
        self._samples = []
        self._sample_error = None
        self._e0_mj = None
        start_error: str | None = None
        if self._method == "energy_counter":
            try:
                self._e0_mj = self._energy_mj()
            except Exception as exc:
                start_error = f"NVML energy read failed: {exc}"
        elif self._method == "power_sampling":
            try:
                self._sample()
            except Exception as exc:
                start_error = f"NVML power read failed: {exc}"
            else:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._sampler, name="signbench-power", daemon=True
                )
                self._thread.start()
        self._start_error = start_error
        self._t0 = self._clock()

    def _finish(self) -> None:
        t1 = self._clock()
        duration = t1 - self._t0
        energy: float | None = None
        reason: str | None = self.unavailable_reason
        method = self._method
        n = 0
        if method == "energy_counter" and self._e0_mj is not None:
            try:
                e1 = self._energy_mj()
            except Exception as exc:
                reason = f"NVML energy read failed: {exc}"
            else:
                delta = e1 - self._e0_mj
                n = 2
                if delta > 0:
                    energy = delta / 1000.0
                    reason = None
                elif delta == 0:
                    reason = (
                        f"NVML energy counter did not advance over {duration:.3f} s "
                        "(it updates about every 100 ms); window too short"
                    )
                    warnings.warn(reason, RuntimeWarning, stacklevel=3)
                else:
                    reason = f"NVML energy counter went backwards ({delta} mJ; driver reloaded?)"
        elif method == "power_sampling" and self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            try:
                self._sample()
            except Exception as exc:
                self._sample_error = self._sample_error or f"NVML power read failed: {exc}"
            n = len(self._samples)
            if n >= 2:
                energy = trapezoid_energy_j(self._samples)
                # The integral covers the samples' span (the first is taken just before t0, the
                # last after the sampler thread stopped), so that span is the window's duration.
                duration = self._samples[-1][0] - self._samples[0][0]
                reason = None
            else:
                reason = self._sample_error or "fewer than two power samples"
        elif method is not None:
            reason = self._start_error
        if energy is not None and duration < self.min_window_s:
            warnings.warn(
                f"power window {duration:.3f} s is shorter than {self.min_window_s} s; "
                "NVML energy/power readings update only about every 100 ms, figure is coarse",
                RuntimeWarning,
                stacklevel=3,
            )
        mean_power = energy / duration if energy is not None and duration > 0 else None
        if energy is not None and mean_power is None:
            energy, reason = None, "zero-length window"
        self._result = PowerReading(
            energy_j=energy,
            mean_power_w=mean_power,
            idle_power_w=self.idle_power_w,
            duration_s=duration,
            method=method if energy is not None else None,
            reason=reason,
            samples=n,
        )
        self._active = False

    def result(self) -> PowerReading:
        """The reading of the last completed window (raises if no window has completed)."""
        if self._result is None:
            if self._active:
                raise RuntimeError("PowerMeter.result() called inside the measurement window")
            raise RuntimeError("PowerMeter.result() called before any measurement window")
        return self._result
