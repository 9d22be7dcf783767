"""``signbench params``: parameter counts of methods built on the ``meta`` device.

Each method is built on ``meta`` (no memory, no weights) with text resources from the synthetic
train texts; the command prints its total parameters and, per training stage, how many train.
The rows of the method's :meth:`harness.method.SLTMethod.param_report` hook (component name →
parameter count, or a nested breakdown; ``None`` by default) are printed under it, then each
figure its paper states (:meth:`~harness.method.SLTMethod.paper_figures`) beside ours, with the
ratio ours / paper.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness.cli.common import format_table, resolve_methods


def param_counts(key: str, profile: str = "paper", lang: str = "de",
                 overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Total / per-stage trainable counts (and ``param_report()`` rows) of ``key`` built on
    the ``meta`` device with ``overrides``; text resources come from the synthetic train
    texts."""
    import torch

    from harness.data import load_dataset
    from harness.measure import count_parameters
    from harness.runner import build_method, build_text_resources, method_class

    cls = method_class(key)
    train = load_dataset("synthetic", "train", lang=lang, size=200)
    resources = build_text_resources(cls, train, lang)
    with torch.device("meta"):
        method = build_method(key, profile, resources, overrides)
    counts = count_parameters(method)
    stages = []
    for stage in method.stages():
        method.apply_stage(stage)
        stages.append({"stage": stage.name, "trainable": count_parameters(method)["trainable"]})
    report = method.param_report()
    paper = {name: {**fig, "ratio": fig["ours"] / fig["paper"]}
             for name, fig in method.paper_figures().items()}
    return {"method": key, "profile": profile, "total": counts["total"], "stages": stages,
            "report": report, "paper": paper}


def _report_rows(report: dict[str, Any] | None, prefix: str = "") -> list[tuple[str, str]]:
    from harness.measure import format_count

    rows = []
    for name, value in (report or {}).items():
        if isinstance(value, dict):
            rows += _report_rows(value, f"{prefix}{name}.")
        else:
            rows.append((f"  {prefix}{name}", format_count(int(value))))
    return rows


def cmd_params(args: argparse.Namespace) -> int:
    from harness.measure import format_count

    results = [param_counts(m, args.profile, args.lang) for m in resolve_methods(args.methods)]
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return 0
    rows = []
    for r in results:
        rows.append((r["method"], f"{format_count(r['total'])} ({r['total']:,})"))
        for s in r["stages"]:
            rows.append((f"  trainable in stage {s['stage']}",
                         f"{format_count(s['trainable'])} ({s['trainable']:,})"))
        rows += _report_rows(r["report"])
        if not r["paper"]:
            rows.append(("  paper", "states no parameter count"))
        for name, fig in r["paper"].items():
            rows.append((f"  paper: {name}",
                         f"{format_count(fig['ours'])} vs {format_count(fig['paper'])} "
                         f"({fig['source']}), ratio {fig['ratio']:.3f}"))
    print(format_table(rows, (f"method ({args.profile})", "parameters")))
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``params`` to ``signbench``'s subparsers."""
    p = subparsers.add_parser("params", help="parameter counts (built on the meta device)")
    p.add_argument("--profile", default="paper", choices=["tiny", "paper"])
    p.add_argument("--methods", nargs="*", default=None)
    p.add_argument("--lang", default="de")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_params)
