"""Tests for ``harness.measure``: latency statistics, power/energy arithmetic (fake NVML), memory,
parameter counts, NVTX ranges, environment capture and the run-JSON efficiency block.

Fast and GPU-free: timing assertions use generous tolerances (sleep overshoot on a loaded CI
machine), NVML is replaced by a small fake with hand-computed expectations. One ``gpu`` test runs
the CUDA path where a device exists.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import harness
from harness.measure import (
    DOMAIN,
    LatencyStats,
    PowerMeter,
    PowerReading,
    capture_environment,
    count_parameters,
    enabled,
    format_count,
    measure_efficiency,
    measure_latency,
    nvml_available,
    nvtx_range,
    peak_memory,
    range_name,
    stage,
)
from harness.measure import nvtx as nvtx_mod
from harness.measure import power as power_mod
from harness.measure.environment import cpu_id, cpu_name
from harness.measure.power import trapezoid_energy_j

HAS_CUDA = torch.cuda.is_available()
EFFICIENCY_KEYS = {
    "latency_ms",
    "fps",
    "gpu_power_w",
    "idle_power_w",
    "energy_per_video_j",
    "peak_memory_mb",
    "peak_rss_mb",
    "params",
    "unavailable",
}
LATENCY_KEYS = {"p50", "p90", "p99", "mean", "std", "n"}


# ----------------------------------------------------------------------------- latency
def test_percentiles_by_hand() -> None:
    stats = LatencyStats.from_samples([float(x) for x in range(1, 11)], frames_per_call=None)
    # linear interpolation over 10 sorted samples: rank = q/100 * 9
    assert stats.p50 == pytest.approx(5.5)
    assert stats.p90 == pytest.approx(9.1)
    assert stats.p99 == pytest.approx(9.91)
    assert stats.mean == pytest.approx(5.5)
    assert stats.std == pytest.approx(np.std(np.arange(1, 11)))
    assert stats.n == 10
    assert stats.fps is None
    assert stats.to_dict() == {
        "p50": stats.p50,
        "p90": stats.p90,
        "p99": stats.p99,
        "mean": stats.mean,
        "std": stats.std,
        "n": 10,
    }


def test_fps_is_frames_over_mean_seconds() -> None:
    stats = LatencyStats.from_samples([10.0, 20.0], frames_per_call=30)
    assert stats.fps == pytest.approx(30 / 0.015)  # 2000 frames/s


def test_sleep_workload_samples_and_percentiles() -> None:
    cycle_ms = [2.0, 4.0, 6.0, 8.0, 10.0]
    calls: list[float] = []

    def fn() -> None:
        d = cycle_ms[len(calls) % len(cycle_ms)]
        calls.append(d)
        time.sleep(d / 1000.0)

    warmup, iters = 3, 10
    stats = measure_latency(fn, warmup=warmup, iters=iters, device="cpu", frames_per_call=25)
    assert len(calls) == warmup + iters
    assert stats.n == iters == len(stats.samples_ms)
    expected = calls[warmup:]  # warm-up calls are not in the samples
    for got, want in zip(stats.samples_ms, expected, strict=True):
        assert want - 0.2 <= got <= want + 15.0, (got, want)  # generous sleep overshoot
    raw = np.asarray(stats.samples_ms)
    assert stats.p50 == pytest.approx(np.percentile(raw, 50))
    assert stats.p90 == pytest.approx(np.percentile(raw, 90))
    assert stats.p99 == pytest.approx(np.percentile(raw, 99))
    assert stats.mean == pytest.approx(raw.mean())
    assert stats.fps == pytest.approx(25 / (raw.mean() / 1000.0))
    assert set(stats.to_dict()) == LATENCY_KEYS


def test_latency_validates_arguments() -> None:
    with pytest.raises(ValueError, match="iters"):
        measure_latency(lambda: None, iters=0)
    with pytest.raises(ValueError, match="warmup"):
        measure_latency(lambda: None, warmup=-1)
    with pytest.raises(ValueError, match="frames_per_call"):
        measure_latency(lambda: None, frames_per_call=0)
    with pytest.raises(ValueError, match="callable"):
        measure_latency(42)  # type: ignore[arg-type]


@pytest.mark.skipif(HAS_CUDA, reason="checks the no-CUDA error")
def test_latency_cuda_without_cuda_raises() -> None:
    with pytest.raises(RuntimeError, match="cuda"):
        measure_latency(lambda: None, device="cuda")


# ----------------------------------------------------------------------------- power (fake NVML)
class FakeNVMLError(Exception):
    pass


class FakeNVML:
    """The few pynvml functions PowerMeter calls. Energy in mJ, power in mW, like NVML."""

    def __init__(self, *, energy_supported: bool = True, power_supported: bool = True) -> None:
        self.energy_supported = energy_supported
        self.power_supported = power_supported
        self.energy_mj = 5_000_000
        self.power_w = lambda: 0.0

    def nvmlDeviceGetHandleByIndex(self, index: int) -> tuple[str, int]:
        return ("fake-gpu", index)

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str) -> tuple[str, str]:
        return ("fake-gpu", bus_id)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:
        if not self.energy_supported:
            raise FakeNVMLError("Not Supported")
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        if not self.power_supported:
            raise FakeNVMLError("Not Supported")
        return round(self.power_w() * 1000.0)


class FakeClock:
    """A clock the test advances; ``sleep`` also advances the fake energy counter at idle power."""

    def __init__(self, nvml: FakeNVML, idle_w: float) -> None:
        self.t = 1000.0
        self.nvml = nvml
        self.idle_w = idle_w

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        self.nvml.energy_mj += round(self.idle_w * seconds * 1000.0)

    def run(self, seconds: float, watts: float) -> None:
        self.t += seconds
        self.nvml.energy_mj += round(watts * seconds * 1000.0)


def test_power_energy_counter_arithmetic() -> None:
    nvml = FakeNVML()
    clock = FakeClock(nvml, idle_w=70.0)
    pm = PowerMeter(0, nvml=nvml, clock=clock, sleep=clock.sleep)
    assert pm.available and pm.method == "energy_counter"
    assert pm.idle_baseline(1.0) == pytest.approx(70.0)  # 70 000 mJ over 1 s
    with pm:
        clock.run(2.5, watts=300.0)  # counter +750 000 mJ
    r = pm.result()
    assert isinstance(r, PowerReading)
    assert r.energy_j == pytest.approx(750.0)
    assert r.mean_power_w == pytest.approx(300.0)
    assert r.duration_s == pytest.approx(2.5)
    assert r.idle_power_w == pytest.approx(70.0)
    assert r.method == "energy_counter"
    assert r.reason is None


def test_power_short_window_warns() -> None:
    nvml = FakeNVML()
    clock = FakeClock(nvml, idle_w=70.0)
    pm = PowerMeter(0, nvml=nvml, clock=clock, sleep=clock.sleep)
    with pytest.warns(RuntimeWarning, match="shorter than"), pm:
        clock.run(0.2, watts=300.0)
    r = pm.result()
    assert r.energy_j == pytest.approx(60.0)
    assert r.mean_power_w == pytest.approx(300.0)


def test_power_counter_not_moving_is_none_and_warns() -> None:
    nvml = FakeNVML()
    clock = FakeClock(nvml, idle_w=70.0)
    pm = PowerMeter(0, nvml=nvml, clock=clock, sleep=clock.sleep)
    with pytest.warns(RuntimeWarning, match="did not advance"), pm:
        clock.t += 1.0  # time passes, counter does not
    r = pm.result()
    assert r.energy_j is None and r.mean_power_w is None and r.method is None
    assert "did not advance" in (r.reason or "")


def test_trapezoid_by_hand() -> None:
    # 0-1 s: 100->200 W (150 J); 1-3 s: 200 W (400 J); 3-4 s: 200->0 W (100 J)
    samples = [(0.0, 100.0), (1.0, 200.0), (3.0, 200.0), (4.0, 0.0)]
    assert trapezoid_energy_j(samples) == pytest.approx(650.0)
    with pytest.raises(ValueError):
        trapezoid_energy_j([(0.0, 1.0)])


def test_power_sampling_fallback_integrates_ramp() -> None:
    nvml = FakeNVML(energy_supported=False)
    t0 = time.perf_counter()
    nvml.power_w = lambda: 100.0 + 50.0 * (time.perf_counter() - t0)  # linear ramp, W
    pm = PowerMeter(0, nvml=nvml, sample_interval_s=0.005, min_window_s=0.1)
    assert pm.method == "power_sampling"
    with pm:
        time.sleep(0.25)
    r = pm.result()
    assert r.method == "power_sampling" and r.reason is None
    assert r.samples >= 3
    assert r.energy_j is not None and r.duration_s is not None and r.mean_power_w is not None
    # trapezoid is exact for a linear ramp: mean power = ramp value at the window's middle
    # (window start is ~µs after t0; allow 2 % for timestamp/quantisation slop)
    mid = (r.duration_s / 2.0) + 0.0
    assert r.mean_power_w == pytest.approx(100.0 + 50.0 * mid, rel=0.02)
    assert r.energy_j == pytest.approx(r.mean_power_w * r.duration_s, rel=1e-9)


def test_power_sampling_constant_power() -> None:
    nvml = FakeNVML(energy_supported=False)
    nvml.power_w = lambda: 250.0
    pm = PowerMeter(0, nvml=nvml, sample_interval_s=0.005, min_window_s=0.05)
    with pm:
        time.sleep(0.1)
    r = pm.result()
    assert r.mean_power_w == pytest.approx(250.0, rel=0.01)  # span of samples ~ window


def test_power_nothing_supported() -> None:
    pm = PowerMeter(0, nvml=FakeNVML(energy_supported=False, power_supported=False))
    assert not pm.available
    assert pm.idle_baseline(5.0) is None  # returns at once, no sleeping
    with pm:
        pass
    r = pm.result()
    assert r.energy_j is None and r.method is None
    assert "unsupported" in (r.reason or "")


def test_power_unavailable_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(power_mod, "_nvml_state", (None, "NVML unavailable: test says so"))
    assert nvml_available() == (False, "NVML unavailable: test says so")
    pm = PowerMeter()
    assert pm.idle_baseline() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing measured, nothing to warn about
        with pm:
            pass
    r = pm.result()
    assert (r.energy_j, r.mean_power_w, r.idle_power_w, r.method) == (None, None, None, None)
    assert r.reason == "NVML unavailable: test says so"


def test_power_real_machine_honest() -> None:
    ok, reason = nvml_available()
    if ok:
        pytest.skip("NVML works here; the no-NVML path is covered with a fake")
    assert reason.startswith("NVML unavailable")
    with PowerMeter() as pm:
        pass
    assert pm.result().energy_j is None and pm.result().reason


def test_power_result_before_window() -> None:
    with pytest.raises(RuntimeError):
        PowerMeter(0, nvml=FakeNVML()).result()


# ----------------------------------------------------------------------------- memory
def test_peak_memory_cpu_is_honest() -> None:
    with peak_memory("cpu") as mem:
        _ = torch.ones(1000)
    assert mem.peak_mb is None
    assert mem.reason and "GPU memory only" in mem.reason
    assert mem.peak_rss_mb is not None and mem.peak_rss_mb > 0


def test_peak_rss_resets_between_windows() -> None:
    """Check's per-method peak RSS: a 256 MiB buffer raises the mark; after a reset, without
    it, the mark is back below it (Linux ``clear_refs``). In a fresh process: a process that
    already freed memory may reuse resident pages, so its mark would not move."""
    import subprocess
    import sys

    code = """
import gc, sys, torch
from harness.measure.memory import peak_rss_mb, reset_peak_rss
if not reset_peak_rss():
    print("skip"); sys.exit(0)
base = peak_rss_mb()
buf = torch.ones(64 * 2**20)  # 256 MiB, touched
high = peak_rss_mb()
del buf
gc.collect()
ok = reset_peak_rss()
print(base, high, peak_rss_mb(), ok)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    if done.stdout.strip() == "skip":
        pytest.skip("/proc/self/clear_refs is not writable here")
    base, high, after, ok = done.stdout.split()
    assert float(high) - float(base) > 200
    assert ok == "True" and float(after) < float(high) - 200


# ----------------------------------------------------------------------------- params
def test_count_parameters_frozen() -> None:
    model = nn.Sequential(nn.Linear(10, 5), nn.Linear(5, 3))
    for p in model[1].parameters():
        p.requires_grad_(False)
    # 10*5 + 5 = 55 trainable; 5*3 + 3 = 18 frozen
    assert count_parameters(model) == {"total": 73, "trainable": 55, "frozen": 18}


def test_count_parameters_tied_once() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(100, 8)
            self.head = nn.Linear(8, 100, bias=False)
            self.head.weight = self.embed.weight

    assert count_parameters(Tied()) == {"total": 800, "trainable": 800, "frozen": 0}
    shared = nn.Linear(4, 4)
    twice = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_parameters(twice)["total"] == 20


def test_count_parameters_meta() -> None:
    with torch.device("meta"):
        model = nn.Linear(4096, 4096)
    assert model.weight.is_meta
    assert count_parameters(model)["total"] == 4096 * 4096 + 4096


def test_format_count() -> None:
    assert format_count(65_900_000) == "65.9M"
    assert format_count(1_200_000_000) == "1.2B"
    assert format_count(512_000) == "512K"
    assert format_count(999_950) == "1M"
    assert format_count(1_000) == "1K"
    assert format_count(999_949) == "999.9K"
    assert format_count(999) == "999"
    assert format_count(-2_500) == "-2.5K"


# ----------------------------------------------------------------------------- nvtx
def test_nvtx_names_and_no_op_without_nvtx(monkeypatch) -> None:
    assert DOMAIN == "signbench"
    assert range_name("gfslt", "encoder") == "slt/gfslt/encoder"
    with pytest.raises(ValueError):
        range_name("", "encoder")
    monkeypatch.setattr(nvtx_mod, "_nvtx", None)
    nvtx_mod._annotation.cache_clear()
    try:
        assert enabled() is False
        assert nvtx_range("slt/test/off") is nvtx_mod._NOOP

        def f() -> int:
            return 1

        assert nvtx_range("slt/test/off")(f) is f  # the decorator returns the function itself
    finally:
        nvtx_mod._annotation.cache_clear()



class _RecordingNvtx:
    """A stand-in for the ``nvtx`` package that records every range push and pop."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def enabled(self) -> bool:
        return True

    def annotate(self, message: str, color: str | None = None, domain: str | None = None):
        events = self.events

        class _Range:
            def __enter__(self):
                events.append(("push", message, domain))
                return self

            def __exit__(self, *exc):
                events.append(("pop", message, domain))
                return False

            def __call__(self, func):
                def wrapped(*a, **k):
                    with self:
                        return func(*a, **k)
                return wrapped

        return _Range()


def test_nvtx_ranges_push_and_pop_in_the_signbench_domain(monkeypatch) -> None:
    fake = _RecordingNvtx()
    monkeypatch.setattr(nvtx_mod, "_nvtx", fake)
    nvtx_mod._annotation.cache_clear()
    try:
        with nvtx_range("slt/test/outer", color="blue"), stage("test", "inner"):
            fake.events.append(("body", "", ""))
        with pytest.raises(KeyError), nvtx_range("slt/test/raises"):
            raise KeyError("x")  # the range still pops, the error still propagates

        @nvtx_range("slt/test/decorated")
        def add(a: int, b: int) -> int:
            return a + b

        assert add(2, 3) == 5
    finally:
        nvtx_mod._annotation.cache_clear()
    assert fake.events == [
        ("push", "slt/test/outer", "signbench"), ("push", "slt/test/inner", "signbench"),
        ("body", "", ""),
        ("pop", "slt/test/inner", "signbench"), ("pop", "slt/test/outer", "signbench"),
        ("push", "slt/test/raises", "signbench"), ("pop", "slt/test/raises", "signbench"),
        ("push", "slt/test/decorated", "signbench"), ("pop", "slt/test/decorated", "signbench"),
    ]

    @stage("test", "raises")
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        boom()


def test_nvtx_falls_back_to_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    nvtx_mod._annotation.cache_clear()
    monkeypatch.setattr(nvtx_mod, "_nvtx", None)
    try:
        assert not enabled()
        rng = nvtx_range("slt/test/noop")
        with rng:
            pass

        def f() -> int:
            return 7

        assert rng(f) is f
    finally:
        nvtx_mod._annotation.cache_clear()


# ----------------------------------------------------------------------------- environment
def test_capture_environment() -> None:
    env = capture_environment()
    keys = {
        "timestamp", "git_commit", "git_dirty", "python", "platform", "cpu", "cpu_count",
        "torch", "triton", "cuda", "signbench", "native_cuda", "gpu", "gpu_reason",
        "cpu_affinity", "torch_threads", "cpu_id", "cpu_capability",
    }  # fmt: skip
    assert keys <= set(env)
    assert env["torch_threads"] == torch.get_num_threads()
    assert env["timestamp"].endswith("+00:00")
    assert env["signbench"] == harness.__version__
    assert env["torch"] == torch.__version__
    repo = Path(harness.__file__).resolve().parent.parent
    if (repo / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", env["git_commit"] or "")
        assert isinstance(env["git_dirty"], bool)
    if HAS_CUDA:
        assert env["gpu"]["name"] and env["gpu_reason"] is None
    else:
        assert env["gpu"] is None and env["gpu_reason"]


# ----------------------------------------------------------------------------- efficiency
_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC
stepping\t: 0
flags\t\t: fpu avx avx2

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel Xeon
"""


def test_cpu_id_tells_apart_cpus_of_one_name(tmp_path: Path) -> None:
    zen2 = tmp_path / "zen2"
    zen2.write_text(_CPUINFO)
    zen4 = tmp_path / "zen4"
    zen4.write_text(_CPUINFO.replace("family\t: 23", "family\t: 25").replace(": 49", ": 17"))
    assert cpu_name(str(zen2)) == cpu_name(str(zen4)) == "AMD EPYC"
    assert cpu_id(str(zen2)) == "AuthenticAMD family 23 model 49 stepping 0"  # first processor only
    assert cpu_id(str(zen4)) == "AuthenticAMD family 25 model 17 stepping 0"
    assert cpu_id(str(tmp_path / "absent")) is None


def test_cpu_capability_is_torchs() -> None:
    assert capture_environment()["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_efficiency_cpu_block() -> None:
    model = nn.Linear(10, 5)
    x = torch.randn(4, 10)
    eff = measure_efficiency(
        lambda: model(x), model=model, device="cpu", frames_per_call=16, warmup=1, iters=5
    )
    assert set(eff) == EFFICIENCY_KEYS
    assert set(eff["latency_ms"]) == LATENCY_KEYS and eff["latency_ms"]["n"] == 5
    assert eff["fps"] == pytest.approx(16 / (eff["latency_ms"]["mean"] / 1000.0))
    assert eff["params"] == {"total": 55, "trainable": 55}
    assert eff["peak_rss_mb"] > 0
    none_keys = {k for k, v in eff.items() if v is None}
    assert none_keys == {"gpu_power_w", "idle_power_w", "energy_per_video_j", "peak_memory_mb"}
    assert set(eff["unavailable"]) == none_keys
    assert all(isinstance(v, str) and v for v in eff["unavailable"].values())


def test_efficiency_unknowns_are_explained() -> None:
    eff = measure_efficiency(lambda: None, model=None, device=None, frames_per_call=None, iters=2)
    assert eff["fps"] is None and eff["params"] is None
    assert {"fps", "params"} <= set(eff["unavailable"])
    assert set(eff["unavailable"]) == {k for k, v in eff.items() if v is None}


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_efficiency_cuda() -> None:
    a = torch.randn(2048, 2048, device="cuda")
    model = nn.Linear(2048, 2048).cuda()
    eff = measure_efficiency(
        lambda: model(a @ a),
        model=model,
        device="cuda",
        frames_per_call=8,
        iters=10,
        power_window_s=1.0,
    )
    assert set(eff) == EFFICIENCY_KEYS
    assert eff["latency_ms"]["p50"] > 0
    assert eff["peak_memory_mb"] is not None and eff["peak_memory_mb"] >= 16.0
    assert set(eff["unavailable"]) == {k for k, v in eff.items() if v is None}
    if nvml_available()[0]:
        assert eff["gpu_power_w"] is not None and eff["gpu_power_w"] > 0
        assert eff["energy_per_video_j"] is not None and eff["energy_per_video_j"] > 0
        assert eff["idle_power_w"] is not None and eff["idle_power_w"] > 0
    env = capture_environment()
    assert env["gpu"]["name"] and env["gpu"]["memory_total_mb"] > 0
