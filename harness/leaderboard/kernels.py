"""Benchmark rows from pytest-benchmark JSON: kernel micro-benchmarks and end-to-end methods.

A benchmark whose ``extra_info.kind`` is ``"method"`` is an end-to-end method timing (the
``methods`` table, FPS = frames / median); every other one is a kernel (the ``kernels`` table,
with GB/s, TFLOP/s and the speedup against the ``eager`` backend of the same op, mode, dtype,
shape and device — ``torch`` when there is no ``eager`` row — taken from the same benchmark file
when it has one, else the newest). The ``extra_info`` convention of the ``bench`` fixture:
``docs/results-schema.md``; the benchmarks themselves: ``docs/benchmarks.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.leaderboard.values import date, natural_key, num, short_commit, text

__all__ = ["BASELINE_BACKENDS", "backend_rank", "kernel_rows", "method_rows"]

#: backends a kernel's speedup is measured against, in order of preference
BASELINE_BACKENDS = ("eager", "torch")


@dataclass(frozen=True)
class _Bench:
    """One benchmark entry with what its file says about the session."""

    source: str
    stamp: str
    commit: str | None
    date: str | None
    machine: dict[str, Any]
    entry: dict[str, Any]

    @property
    def extra(self) -> dict[str, Any]:
        return self.entry.get("extra_info") or {}

    @property
    def median_s(self) -> float:
        return float(self.entry["stats"]["median"])


def _bench_entries(files: Sequence[tuple[Path, dict[str, Any]]]) -> list[_Bench]:
    out = []
    for path, data in files:
        commit_info = data.get("commit_info") or {}
        stamp = str(data.get("datetime") or "")
        for entry in data["benchmarks"]:
            out.append(
                _Bench(
                    source=path.name,
                    stamp=stamp,
                    commit=short_commit(commit_info.get("id"), commit_info.get("dirty")),
                    date=date(stamp),
                    machine=data.get("machine_info") or {},
                    entry=entry,
                )
            )
    return out


def _device(b: _Bench) -> str:
    if b.extra.get("device") is not None:
        threads = b.extra.get("threads")  # CPU rows at 1 and 2 threads are separate rows
        return str(b.extra["device"]) + (f" ×{threads}" if threads is not None else "")
    if "gpu_name" in b.machine:
        return str(b.machine["gpu_name"] or "cpu")
    return ""


def backend_rank(backend: str) -> tuple[int, str]:
    """Sort key: the baseline backends first (in :data:`BASELINE_BACKENDS` order), then by name."""
    if backend in BASELINE_BACKENDS:
        return (BASELINE_BACKENDS.index(backend), backend)
    return (len(BASELINE_BACKENDS), backend)


def kernel_rows(files: Sequence[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of the kernel table (every benchmark whose ``extra_info.kind`` is not ``method``)."""
    rows: list[dict[str, Any]] = []
    for b in _bench_entries(files):
        extra = b.extra
        if extra.get("kind") == "method":
            continue
        median = b.median_s
        op = extra.get("op") or b.entry.get("group") or b.entry["name"]
        gbps = num(extra.get("gbps"))
        if gbps is None and num(extra.get("bytes_moved")) is not None:
            gbps = float(extra["bytes_moved"]) / median / 1e9
        tflops = num(extra.get("tflops"))
        if tflops is None and num(extra.get("flops")) is not None:
            tflops = float(extra["flops"]) / median / 1e12
        rows.append(
            {
                "op": str(op),
                "mode": text(extra.get("mode")),
                "dtype": text(extra.get("dtype")),
                "shape": text(extra.get("shape")),
                "device": _device(b),
                "backend": text(extra.get("backend")),
                "median (µs)": median * 1e6,
                "speedup vs eager": None,
                "GB/s": gbps,
                "TFLOP/s": tflops,
                "commit": b.commit,
                "date": b.date,
                "_median_s": median,
                "_stamp": b.stamp,
                "_source": b.source,
                "_name": b.entry["name"],
            }
        )

    # speedup vs the baseline backend with the same op/mode/dtype/shape/device
    def key(r: dict[str, Any]) -> tuple[str, ...]:
        return (r["op"], r["mode"], r["dtype"], r["shape"], r["device"])

    baselines: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        if r["backend"] in BASELINE_BACKENDS:
            baselines.setdefault(key(r), []).append(r)
    for r in rows:
        candidates = baselines.get(key(r))
        if not candidates:
            continue
        best_backend = min(backend_rank(c["backend"]) for c in candidates)[1]
        candidates = [c for c in candidates if c["backend"] == best_backend]
        if any(c is r for c in candidates):
            r["speedup vs eager"] = 1.0
            continue
        same_file = [c for c in candidates if c["_source"] == r["_source"]]
        pool = same_file or candidates
        base = max(pool, key=lambda c: (c["_stamp"], c["_source"], c["_name"]))
        r["speedup vs eager"] = base["_median_s"] / r["_median_s"]
    rows.sort(
        key=lambda r: (
            r["op"], r["mode"], r["dtype"], natural_key(r["shape"]), r["device"],
            backend_rank(r["backend"]), r["_stamp"], r["_source"], r["_name"],
        )
    )  # fmt: skip
    return rows


def method_rows(files: Sequence[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of the end-to-end table (benchmarks with ``extra_info.kind == "method"``)."""
    rows = []
    for b in _bench_entries(files):
        extra = b.extra
        if extra.get("kind") != "method":
            continue
        median = b.median_s
        fps = num(extra.get("fps"))
        if fps is None and num(extra.get("frames")) is not None:
            fps = float(extra["frames"]) / median
        method = extra.get("method") or extra.get("op") or b.entry.get("group") or b.entry["name"]
        if extra.get("variant"):  # an ablation timed side by side, as in leaderboard.md
            method = f"{method} ({extra['variant']})"
        rows.append(
            {
                "method": str(method),
                "profile": text(extra.get("profile")),
                "backend": text(extra.get("backend")),
                "device": _device(b),
                "latency median (ms)": median * 1e3,
                "FPS": fps,
                "commit": b.commit,
                "date": b.date,
                "_stamp": b.stamp,
                "_source": b.source,
                "_name": b.entry["name"],
            }
        )
    rows.sort(
        key=lambda r: (
            r["method"], r["profile"], backend_rank(r["backend"]), r["device"], r["_stamp"],
            r["_source"], r["_name"],
        )
    )  # fmt: skip
    return rows
