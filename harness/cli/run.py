"""``signbench run``, ``signbench params`` and ``signbench profile``.

``add_run_commands(subparsers)`` adds the three subcommands (``harness/cli.py`` wires it in).
User errors raise ``ValueError`` with a message naming the problem; ``harness.cli.main`` prints it
as one line.

* ``run`` — for each method (default: every registered one): train, evaluate on dev and test,
  measure efficiency, write the run JSONs (``harness.runner.run_method``); then rebuild
  ``--results`` with ``harness.leaderboard.build_leaderboard`` from the new runs and print the
  leaderboard. A method that fails is recorded as a value (``<out>/failures/<method>.json`` and a
  printed line); the others still run and the exit status is 1. ``--set key=value`` passes an
  override to every method's builder (ablations, e.g. ``--set fusion=mixup``); values are parsed
  as JSON when they parse (``3``, ``0.5``, ``true``, ``null``, ``[1,2]``) and kept as strings
  otherwise.
* ``params`` — builds each method on the ``meta`` device (no memory, no weights) and prints total
  parameters and, per training stage, how many train. A method may also define an optional
  ``param_report() -> dict[str, int | dict[str, int]]`` (component name → parameter count, or
  a nested breakdown); its rows are printed under the method.
* ``profile`` — runs a short inference (``--batches`` batches of the synthetic test split) on an
  untrained method inside NVTX ranges (``slt/<method>/...`` in the ``signbench`` domain) and prints
  per-batch latency and the ``nsys profile`` command line that records those ranges.
* ``experiment NAME`` — runs a registered study that is more than one run (e.g. SignX's Table 6
  pipeline comparison; see :mod:`harness.experiments`), writes its JSON under ``<out>/experiments/``
  and its table under ``<results>/experiments/``; ``--list`` lists them.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b=mixup"]`` → ``{"a": 1, "b": "mixup"}`` (JSON values where they parse)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise ValueError(f"--set {item!r}: expected key=value with a Python identifier as "
                             f"key (e.g. --set fusion=mixup)")
        if key in out:
            raise ValueError(f"--set {key}=...: given twice")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = value
    return out


def _methods(requested: list[str] | None) -> list[str]:
    import baselines

    known = baselines.list_methods()
    if not requested:
        if not known:
            raise ValueError("no method is registered")
        return known
    unknown = [m for m in requested if m not in known]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; registered methods: "
                         f"{', '.join(known) or 'none'}")
    return list(dict.fromkeys(requested))


def _positive(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {value}")
        return value

    return parse


# ------------------------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    from harness.leaderboard import build_leaderboard
    from harness.runner import run_methods, run_path, summarize

    methods = _methods(args.methods)
    overrides = parse_overrides(args.set)
    t0 = time.perf_counter()
    runs, failures = run_methods(
        methods, out=args.out, dataset=args.dataset, lang=args.lang, profile=args.profile,
        backend=args.backend, device=args.device, epochs=args.epochs, seed=args.seed,
        train_size=args.train_size, eval_size=args.eval_size, resolution=args.resolution,
        resume=args.resume, overrides=overrides, root=args.root, progress=not args.quiet)
    if runs:
        paths = [run_path(args.out, r) for r in runs]
        report = build_leaderboard(paths, [], Path(args.results))
        table = Path(args.results) / "leaderboard.md"
        if table.is_file():
            print(table.read_text(encoding="utf-8"))
        print(report.summary())
        print(summarize(runs))
    print(f"signbench run: {len(methods) - len(failures)}/{len(methods)} methods succeeded in "
          f"{time.perf_counter() - t0:.0f} s")
    for f in failures:
        print(f"  FAILED {f.method}: {f.kind}: {f.error} ({f.path})", file=sys.stderr)
    return 1 if failures else 0


def _add_run(sub) -> None:
    from harness.ops import BACKENDS
    from harness.runner import PROFILE_DATA

    p = sub.add_parser("run", help="train, evaluate and measure methods; write run JSONs and "
                                   "rebuild results/")
    p.add_argument("--methods", nargs="*", default=None,
                   help="method keys (default: every registered method)")
    p.add_argument("--dataset", default="synthetic", help="dataset key (default: synthetic)")
    p.add_argument("--root", default=None, help="dataset folder (real datasets)")
    p.add_argument("--lang", default=None,
                   help="text language (synthetic: de, en, zh; default: the method's, else de)")
    p.add_argument("--profile", default="tiny", choices=sorted(PROFILE_DATA))
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="ops backend (default: fastest available)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--epochs", type=_positive("--epochs"), default=None,
                   help="total epochs, split over a method's stages in their ratio")
    p.add_argument("--out", default="runs", help="run folder (default: runs/)")
    p.add_argument("--results", default="results", help="leaderboard folder (default: results/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoints")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="method override (repeatable), e.g. --set fusion=mixup")
    p.add_argument("--train-size", type=_positive("--train-size"), default=None)
    p.add_argument("--eval-size", type=_positive("--eval-size"), default=None)
    p.add_argument("--resolution", type=_positive("--resolution"), default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)


# ---------------------------------------------------------------------------------------- params


def param_counts(key: str, profile: str = "paper", lang: str = "de") -> dict[str, Any]:
    """Total / per-stage trainable counts (and ``param_report()`` rows) of ``key`` built on
    the ``meta`` device; text resources come from the synthetic train texts."""
    import torch

    from harness.data import load_dataset
    from harness.measure import count_parameters
    from harness.runner import build_method, build_text_resources, method_class

    cls = method_class(key)
    train = load_dataset("synthetic", "train", lang=lang, size=200)
    resources = build_text_resources(cls, train, lang)
    with torch.device("meta"):
        method = build_method(key, profile, resources)
    counts = count_parameters(method)
    stages = []
    for stage in method.stages():
        method.apply_stage(stage)
        stages.append({"stage": stage.name, "trainable": count_parameters(method)["trainable"]})
    report = method.param_report()
    return {"method": key, "profile": profile, "total": counts["total"], "stages": stages,
            "report": report}


def _report_rows(report: Any, prefix: str = "") -> list[tuple[str, str]]:
    from harness.measure import format_count

    rows = []
    for name, value in (report or {}).items():
        if isinstance(value, dict):
            rows += _report_rows(value, f"{prefix}{name}.")
        else:
            rows.append((f"  {prefix}{name}", format_count(int(value))))
    return rows


def cmd_params(args: argparse.Namespace) -> int:
    from harness.cli import format_table
    from harness.measure import format_count

    results = [param_counts(m, args.profile, args.lang) for m in _methods(args.methods)]
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
    print(format_table(rows, (f"method ({args.profile})", "parameters")))
    return 0


def _add_params(sub) -> None:
    p = sub.add_parser("params", help="parameter counts (built on the meta device)")
    p.add_argument("--profile", default="paper", choices=["tiny", "paper"])
    p.add_argument("--methods", nargs="*", default=None)
    p.add_argument("--lang", default="de")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_params)


# --------------------------------------------------------------------------------------- profile


def nsys_command(key: str, backend: str | None, device: str, profile: str,
                 batches: int) -> str:
    """The ``nsys profile`` command line recording CUDA + the ``signbench`` NVTX domain."""
    inner = ["signbench", "profile", "--method", key, "--device", device, "--profile", profile,
             "--batches", str(batches)]
    if backend:
        inner += ["--backend", backend]
    out = f"signbench-{key}-{backend or 'default'}"
    return ("nsys profile --trace=cuda,nvtx --nvtx-domain-include=signbench --sample=none "
            f"--force-overwrite=true --output={out} " + shlex.join(inner)
            + f"  # then: nsys stats --report nvtx_sum {out}.nsys-rep")


def profile_method(key: str, profile: str = "tiny", backend: str | None = None,
                   device: str = "auto", batches: int = 3, batch_size: int = 4,
                   lang: str = "de") -> list[float]:
    """Short inference (untrained weights) under NVTX; returns per-batch latencies in ms."""
    import contextlib

    import torch

    from harness import ops
    from harness.data import load_dataset
    from harness.evaluate import collate_for
    from harness.ops.dispatch import resolve as resolve_backend
    from harness.runner import (
        PROFILE_DATA,
        build_method,
        build_text_resources,
        method_class,
        resolve_device,
    )

    cls = method_class(key)
    dev = resolve_device(device)
    if backend is not None:
        resolve_backend(backend, dev)
    res = PROFILE_DATA[profile]["resolution"]
    train = load_dataset("synthetic", "train", lang=lang, size=100, resolution=res)
    test = load_dataset("synthetic", "test", lang=lang, size=batches * batch_size,
                        resolution=res)
    method = build_method(key, profile, build_text_resources(cls, train, lang)).to(dev).eval()
    beam = int(method.beam_size)
    times = []
    ctx = ops.use_backend(backend) if backend else contextlib.nullcontext()
    with ctx, torch.inference_mode(), method.nvtx("profile"):
        for b in range(batches):
            samples = [test[i] for i in range(b * batch_size, (b + 1) * batch_size)]
            batch = collate_for(method, samples).to(dev)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t = time.perf_counter()
            with method.nvtx("generate"):
                method.generate(batch, beam_size=beam,
                                length_penalty=float(method.length_penalty),
                                max_len=int(method.max_len))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append((time.perf_counter() - t) * 1000)
    return times


def cmd_profile(args: argparse.Namespace) -> int:
    (key,) = _methods([args.method])
    times = profile_method(key, args.profile, args.backend, args.device, args.batches,
                           args.batch_size, args.lang)
    for i, ms in enumerate(times):
        print(f"batch {i}: {ms:.1f} ms")
    print("NVTX ranges: domain 'signbench', names slt/" + key + "/<stage>")
    print("Record them with Nsight Systems:")
    print("  " + nsys_command(key, args.backend, args.device, args.profile, args.batches))
    return 0


def _add_profile(sub) -> None:
    from harness.ops import BACKENDS

    p = sub.add_parser("profile", help="short inference under NVTX ranges; prints the nsys "
                                       "command line")
    p.add_argument("--method", required=True)
    p.add_argument("--backend", default=None, choices=BACKENDS)
    p.add_argument("--device", default="auto")
    p.add_argument("--profile", default="tiny", choices=["tiny", "paper"])
    p.add_argument("--batches", type=_positive("--batches"), default=3)
    p.add_argument("--batch-size", type=_positive("--batch-size"), default=4)
    p.add_argument("--lang", default="de")
    p.set_defaults(func=cmd_profile)


# ------------------------------------------------------------------------------------ experiment


def cmd_experiment(args: argparse.Namespace) -> int:
    from harness.experiments import describe, render_experiment, run_experiment

    if args.list or not args.name:
        print(describe())
        return 0
    record, json_path, md_path = run_experiment(
        args.name, out=args.out, results=args.results, device=args.device, profile=args.profile,
        lang=args.lang, overrides=parse_overrides(args.set), progress=not args.quiet)
    print(render_experiment(record, str(json_path)))
    print(f"signbench experiment: wrote {json_path}" + (f" and {md_path}" if md_path else ""))
    return 0


def _add_experiment(sub) -> None:
    from harness.runner import PROFILE_DATA

    p = sub.add_parser("experiment", help="run a registered multi-run study (e.g. SignX's "
                                          "pipeline comparison); --list lists them")
    p.add_argument("name", nargs="?", default=None, help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the registered experiments")
    p.add_argument("--profile", default="tiny", choices=sorted(PROFILE_DATA))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--lang", default=None, help="text language (default: the experiment's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override passed to the experiment (repeatable)")
    p.add_argument("--out", default="runs", help="run folder (default: runs/)")
    p.add_argument("--results", default="results", help="results folder (default: results/)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_experiment)


def add_run_commands(subparsers) -> None:
    """Add ``run``, ``params``, ``profile`` and ``experiment`` to ``signbench``'s subparsers."""
    for add in (_add_run, _add_params, _add_profile, _add_experiment):
        add(subparsers)
