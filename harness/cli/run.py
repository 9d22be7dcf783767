"""``signbench run``: train, evaluate and measure methods, write their run JSONs, rebuild results.

For each method (default: every registered one, installed plug-ins included): train, evaluate
on dev and test, measure efficiency and write the run JSONs (``harness.runner.run_methods``);
then rebuild ``--results`` with ``harness.leaderboard.build_leaderboard`` from the new runs and
print the leaderboard. A method that fails is recorded as a value
(``<out>/failures/<method>.json`` and a printed line); the others still run and the exit status
is 1 (an installed plug-in that cannot be used fails the same way, with its ``PluginError``).
``--set key=value`` passes an override to every method's builder (ablations, e.g. ``--set
fusion=mixup``); values are read as JSON when they parse (``3``, ``[1,2]``), else kept as
strings (:func:`harness.cli.common.parse_overrides`), then parsed against the method's config
field types (``SLTMethod.coerce_overrides``). ``--keypoints-dir``, ``--labels`` and
``--trust-pickle`` go to a real dataset's reader (docs/data.md).

User errors raise ``ValueError`` with a message naming the problem; ``harness.cli.main`` prints
it as one line. ``--lang`` outside the supported languages is refused before anything runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.cli.common import parse_overrides, positive, resolve_methods


def cmd_run(args: argparse.Namespace) -> int:
    from harness.leaderboard import build_leaderboard
    from harness.runner import run_methods, run_path, summarize

    methods = resolve_methods(args.methods, broken_plugins=True)
    if args.quiet:  # nor Hugging Face's "Loading weights" bars of the pretrained parts
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if args.lang is not None:
        check_run_lang(args.lang, args.dataset)
    overrides = parse_overrides(args.set)
    data_options = {k: v for k, v in (("keypoints_dir", args.keypoints_dir),
                                      ("labels", args.labels),
                                      ("trust_pickle", args.trust_pickle or None)) if v is not None}
    if data_options and args.dataset == "synthetic":
        flags = ", ".join("--" + k.replace("_", "-") for k in data_options)
        raise ValueError(f"run: {flags} apply to real datasets (--dataset phoenix14t, "
                         f"csl-daily, how2sign, pose, signjoey), not to the synthetic corpus")
    t0 = time.perf_counter()
    runs, failures = run_methods(
        methods, out=args.out, dataset=args.dataset, lang=args.lang, profile=args.profile,
        backend=args.backend, device=args.device, epochs=args.epochs, seed=args.seed,
        train_size=args.train_size, eval_size=args.eval_size, resolution=args.resolution,
        resume=args.resume, overrides=overrides, root=args.root, data_options=data_options,
        measure_iters=args.measure_iters, standins=False if args.no_standins else None,
        standin_cache=args.standin_cache, progress=not args.quiet)
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


def check_run_lang(lang: str, dataset: str) -> None:
    """``--lang`` refused up front (``ValueError``) when SignBench has no scoring protocol for it,
    or the synthetic corpus does not speak it — not after every method has failed on it."""
    from harness.data.synthetic.language import LANGS
    from harness.metrics.tokenize import check_lang

    check_lang(lang)
    if dataset == "synthetic" and lang not in LANGS:
        raise ValueError(f"--lang {lang!r}: the synthetic corpus speaks {', '.join(LANGS)}")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` to ``signbench``'s subparsers."""
    from harness.ops import BACKENDS
    from harness.runner import PROFILE_DATA

    p = subparsers.add_parser("run", help="train, evaluate and measure methods; write run JSONs "
                                          "and rebuild results/")
    p.add_argument("--methods", nargs="*", default=None,
                   help="method keys (default: every registered method)")
    p.add_argument("--dataset", default="synthetic", help="dataset key (default: synthetic)")
    p.add_argument("--root", default=None, help="dataset folder (real datasets)")
    p.add_argument("--keypoints-dir", default=None, metavar="DIR",
                   help="keypoints beside the videos: <name>.pose files or <name>/ folders of "
                        "OpenPose JSON (relative to --root; {split} is substituted)")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="frame labels file (name<TAB>rest/sign/fingerspelling per frame); "
                        "default: every frame 'sign'")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow pickle-based sources (signjoey, csl-daily) to unpickle their files "
                        "(pickles can run code: only for files you trust)")
    p.add_argument("--lang", default=None,
                   help="text language (synthetic: de, en, zh; default: the method's, else de)")
    p.add_argument("--profile", default="tiny", choices=sorted(PROFILE_DATA))
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="ops backend (default: fastest available)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--epochs", type=positive("--epochs"), default=None,
                   help="total epochs, split over a method's stages in their ratio")
    p.add_argument("--out", default="runs", help="run folder (default: runs/)")
    p.add_argument("--results", default="results", help="leaderboard folder (default: results/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoints")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="method override (repeatable), e.g. --set fusion=mixup")
    p.add_argument("--train-size", type=positive("--train-size"), default=None)
    p.add_argument("--eval-size", type=positive("--eval-size"), default=None)
    p.add_argument("--resolution", type=positive("--resolution"), default=None)
    p.add_argument("--measure-iters", type=positive("--measure-iters"), default=None,
                   help="timed inferences of the efficiency pass (default: the profile's)")
    p.add_argument("--standin-cache", default=None, metavar="DIR",
                   help="pretrained stand-ins folder (default: $SIGNBENCH_CACHE, else "
                        "~/.cache/signbench/standins); missing ones are trained first")
    p.add_argument("--no-standins", action="store_true",
                   help="start every part the paper pretrains from random weights instead")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)
