"""``signbench experiment NAME``: run a registered study that is more than one run.

The studies (e.g. SignX's Table 6 pipeline comparison) are registered in
:mod:`harness.experiments`; the command writes the study's JSON under ``<out>/experiments/`` and
its table under ``<results>/experiments/``; ``--list`` (or no name) lists them.
"""

from __future__ import annotations

import argparse

from harness.cli.common import parse_overrides


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


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``experiment`` to ``signbench``'s subparsers."""
    from harness.runner import PROFILE_DATA

    p = subparsers.add_parser("experiment", help="run a registered multi-run study (e.g. "
                                                 "SignX's pipeline comparison); --list lists "
                                                 "them")
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
