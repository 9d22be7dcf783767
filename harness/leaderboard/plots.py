"""The leaderboard's plots: accuracy vs latency, energy per video, kernel speedup (matplotlib PNG).

``accuracy_vs_latency.png``: latency p50 per video (log x) against BLEU-4 (WER when no run has
BLEU-4) with 95 % CI error bars, marker area proportional to the parameter count, one marker
shape and colour per method. ``energy_per_video.png``: GPU energy per video of the runs that
measured it. ``kernel_speedup.png``: grouped bars of the speedup vs eager per (op, mode, dtype,
shape), one bar per backend (the newest row of each). The same rows give the same bytes: fixed
figure size and DPI, matplotlib's default style (not the user's matplotlibrc), no PNG metadata.
Layout of ``results/``: ``docs/results-schema.md``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from harness.leaderboard.kernels import BASELINE_BACKENDS, backend_rank
from harness.leaderboard.values import natural_key

__all__ = ["ACCURACY_PLOT", "CAPTIONS", "ENERGY_PLOT", "PLOTS", "SPEEDUP_PLOT",
           "plot_accuracy_vs_latency", "plot_energy", "plot_kernel_speedup"]

ACCURACY_PLOT = "accuracy_vs_latency.png"
ENERGY_PLOT = "energy_per_video.png"
SPEEDUP_PLOT = "kernel_speedup.png"
PLOTS = (ACCURACY_PLOT, ENERGY_PLOT, SPEEDUP_PLOT)

#: the caption of each plot in the web page
CAPTIONS = {
    ACCURACY_PLOT: "Accuracy against end-to-end latency per video (p50, log scale): one marker "
                   "shape and colour per method, error bars the 95 % bootstrap CI, marker area "
                   "proportional to the parameter count. Up and left is better for BLEU-4.",
    ENERGY_PLOT: "GPU energy per video (NVML energy counter), one bar per run; lower is better.",
    SPEEDUP_PLOT: "Kernel speed-up over eager PyTorch per op, mode, dtype and shape, one bar per "
                  "backend; above the dashed line the kernel is faster than eager.",
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")

_DPI = 100
_PNG_METADATA = {"Software": None}


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata=_PNG_METADATA)
    return buf.getvalue()


def _plot_style() -> Any:
    import matplotlib.style

    # defaults, not the user's matplotlibrc: the same sources must give the same pixels
    return matplotlib.style.context("default")


def plot_accuracy_vs_latency(rows: Sequence[dict[str, Any]]) -> bytes | None:
    """PNG: latency p50 (log x) vs BLEU-4 (WER when no run has BLEU-4) with the 95 % CI as error
    bars; one marker shape and colour per method (its ablations share them); area ∝ parameters."""
    metric = "BLEU-4" if any(r["BLEU-4"] is not None for r in rows) else "WER"
    points = [
        r
        for r in rows
        if r[metric] is not None and r["latency p50 (ms)"] is not None and r["latency p50 (ms)"] > 0
    ]
    if not points:
        return None
    sizes_known = [r["params total (M)"] for r in points if r["params total (M)"]]
    pmax = max(sizes_known) if sizes_known else None
    methods = sorted({r.get("_base", r["method"]) for r in points})
    ci_key = f"{metric} CI (±)"
    configs = sorted({(r["profile"], r["backend"], r["device"]) for r in points})
    stacked: dict[tuple[float, float], int] = {}  # labels of coincident points go one above another
    xs = [r["latency p50 (ms)"] for r in points]
    ys = [r[metric] for r in points]
    with _plot_style():
        fig = _new_figure(10, 6)
        ax = fig.add_subplot(1, 1, 1)
        cmap = _colors(len(methods))
        seen: set[str] = set()
        for r, x, y in zip(points, xs, ys, strict=True):
            p = r["params total (M)"]
            size = 30.0 if not p or not pmax else max(15.0, 600.0 * p / pmax)
            base = r.get("_base", r["method"])
            k = methods.index(base)
            color = cmap[k]
            if r.get(ci_key) is not None:
                ax.errorbar([x], [y], yerr=[r[ci_key]], fmt="none", ecolor=color, alpha=0.8,
                            elinewidth=1.0, capsize=3)
            ax.scatter(
                [x], [y], s=size, color=color, alpha=0.7, edgecolors="black", linewidths=0.5,
                marker=_MARKERS[k % len(_MARKERS)], label=None if base in seen else base,
            )  # fmt: skip
            seen.add(base)
            slot = stacked.get((x, y), 0)
            stacked[(x, y)] = slot + 1
            label = " ".join(filter(None, (r.get("_variant"), r["split"])))
            if len(configs) > 1:
                label += f" ({r['profile']}, {r['backend']}, {r['device']})"
            ax.annotate(
                label, (x, y), textcoords="offset points", xytext=(7, 3 + 10 * slot), fontsize=7,
            )  # fmt: skip
        ax.set_xscale("log")
        # room for the labels right of the points; plain numbers on the log axis
        ax.set_xlim(min(xs) / 1.6, max(xs) * 4.0)
        cis = [r.get(ci_key) or 0.0 for r in points]
        lo = min(y - c for y, c in zip(ys, cis, strict=True))
        hi = max(y + c for y, c in zip(ys, cis, strict=True))
        pad = max((hi - lo) * 0.08, 1.0)
        ax.set_ylim(lo - pad, hi + pad + 0.04 * (hi - lo + 1) * max(stacked.values()))
        plain = _plain_log_formatter()
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("latency p50 per video (ms, log scale)")
        ax.set_ylabel(f"{metric} ({'higher' if metric == 'BLEU-4' else 'lower'} is better)")
        where = "" if len(configs) > 1 else " — {}, {}, {}".format(*configs[0])
        ax.set_title(f"Accuracy vs latency{where} (95 % CI error bars; marker area ∝ parameters)")
        ax.grid(True, which="both", alpha=0.3)
        legend = ax.legend(title="method", fontsize=8, loc="best")
        for handle in legend.legend_handles:
            if hasattr(handle, "set_sizes"):
                handle.set_sizes([30.0])  # marker size means parameters only on the axes
        fig.tight_layout()
        return _png_bytes(fig)


def plot_energy(rows: Sequence[dict[str, Any]]) -> bytes | None:
    """PNG: GPU energy per video (J), one horizontal bar per run that measured it; None when no
    run did (CPU runs have no GPU energy counter)."""
    points = [r for r in rows if r.get("energy/video (J)") is not None]
    if not points:
        return None
    labels = [f"{r['method']} {r['dataset']}-{r['lang']}/{r['split']} ({r['device']})"
              for r in points]
    with _plot_style():
        fig = _new_figure(9, max(2.5, 0.35 * len(points) + 1.5))
        ax = fig.add_subplot(1, 1, 1)
        methods = sorted({r.get("_base", r["method"]) for r in points})
        cmap = _colors(len(methods))
        bars = ax.barh(range(len(points)), [r["energy/video (J)"] for r in points],
                       color=[cmap[methods.index(r.get("_base", r["method"]))] for r in points])
        ax.bar_label(bars, fmt="%.3g J", fontsize=7, padding=2)
        ax.set_yticks(range(len(points)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.margins(x=0.15)
        ax.set_xlabel("GPU energy per video (J, lower is better)")
        ax.set_title("Energy per video")
        ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        return _png_bytes(fig)


def _plain_log_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    def fmt(value: float, _pos: int) -> str:
        if value <= 0:
            return ""
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        if round(mantissa) not in (1, 2, 5) or abs(mantissa - round(mantissa)) > 1e-6:
            return ""
        return f"{value:g}"

    return FuncFormatter(fmt)


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if n <= 10 else colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def plot_kernel_speedup(rows: Sequence[dict[str, Any]]) -> bytes | None:
    """PNG: grouped bars, speedup vs eager per (op, mode, dtype, shape), one bar per backend."""
    latest: dict[tuple[tuple[str, ...], str], dict[str, Any]] = {}
    for r in rows:
        if r["speedup vs eager"] is None or r["backend"] in BASELINE_BACKENDS:
            continue
        cat = (r["op"], r["mode"], r["dtype"], r["shape"], r["device"])
        k = (cat, r["backend"])
        if k not in latest or (r["_stamp"], r["_source"]) >= (
            latest[k]["_stamp"],
            latest[k]["_source"],
        ):
            latest[k] = r
    if not latest:
        return None
    cats = sorted(
        {cat for cat, _ in latest},
        key=lambda c: (c[0], c[1], c[2], natural_key(c[3]), c[4]),
    )
    backends = sorted({b for _, b in latest}, key=backend_rank)
    several_devices = len({c[4] for c in cats}) > 1
    width = 0.8 / len(backends)
    with _plot_style():
        fig = _new_figure(max(6.0, 0.9 * len(cats) * max(1, len(backends)) / 2 + 3), 5.5)
        ax = fig.add_subplot(1, 1, 1)
        colors = _colors(len(backends))
        for j, backend in enumerate(backends):
            xs, ys = [], []
            for i, cat in enumerate(cats):
                r = latest.get((cat, backend))
                if r is not None:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(r["speedup vs eager"])
            bars = ax.bar(xs, ys, width=width, label=backend, color=colors[j])
            ax.bar_label(bars, fmt="%.2f×", fontsize=7, padding=2)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        spare = max(0.0, (3 - len(cats)) / 2)  # keep bars slim when there are few groups
        ax.set_xlim(-0.6 - spare, len(cats) - 0.4 + spare)
        ax.margins(y=0.12)
        labels = []
        for op, mode, dtype, shape, device in cats:
            label = f"{op} {mode}\n{dtype} {shape}"
            labels.append(f"{label}\n{device}" if several_devices else label)
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("speedup vs eager (×, higher is better)")
        ax.set_title("Kernel speedup by backend and shape")
        ax.legend(title="backend", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        return _png_bytes(fig)
