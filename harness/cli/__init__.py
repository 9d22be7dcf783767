"""The ``signbench`` command line: :func:`main` and the parser of its subcommands.

One module per command group, each with ``add_parser(subparsers)`` setting ``func`` on its
parser and the ``cmd_<name>`` function it calls:

* ``info`` (:mod:`harness.cli.info`) — versions, ops backends per device, native CUDA build,
  GPU and NVML status.
* ``score`` (:mod:`harness.cli.score`) — score hypothesis/reference files (translation:
  BLEU-1..4 + ROUGE-L; recognition: WER) under a named protocol; a table for people, ``--json``
  for machines.
* ``leaderboard`` (:mod:`harness.cli.leaderboard`) — rebuild ``results/`` (tables and plots)
  from run JSONs and pytest-benchmark JSONs.
* ``compare`` (:mod:`harness.cli.compare`) — sacrebleu's paired significance tests between runs
  on the same split (a p-value matrix).
* ``data export`` / ``data show`` (:mod:`harness.cli.data`) — the synthetic corpus in a dataset
  layout, one sample as a PNG.
* ``run``, ``params``, ``profile``, ``experiment`` (:mod:`harness.cli.run`, ``.params``,
  ``.profile``, ``.experiment``) — train / evaluate / measure methods, parameter counts, NVTX
  profiling, multi-run studies.
* ``check`` (:mod:`harness.cli.check`) — one training step per stage and one generate per
  method at the profile's sizes (CPU), OK / FAILED.
* ``kernels compile`` (:mod:`harness.cli.kernels`) — compile every GPU kernel for sm_80 / sm_90
  without a GPU: registers, spills, shared memory.
* ``pretrain`` (:mod:`harness.cli.pretrain`) — train or reuse the stand-ins of the pretrained
  parts (LLaMA, mBART, ...) the methods start from, in the stand-in cache.

What they share (:class:`CLIError`, tables, ``--set`` parsing) is in :mod:`harness.cli.common`.
The command modules import only ``common`` and lower layers, never this package, so there is no
import cycle (``docs/architecture.md``).

Errors the user can fix (bad files, bad options) print one ``signbench: error: ...`` line and
exit with status 2; nothing deep inside torch surfaces as a stack trace (``SIGNBENCH_DEBUG=1``
shows it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from harness import __version__
from harness.cli import (
    check,
    compare,
    data,
    experiment,
    info,
    kernels,
    leaderboard,
    params,
    pretrain,
    profile,
    run,
    score,
)
from harness.cli.common import CLIError, format_table, read_lines

__all__ = ["CLIError", "add_commands", "build_parser", "format_table", "main", "read_lines"]

#: the command modules, in the order ``signbench --help`` lists their subcommands
COMMANDS = (info, score, leaderboard, compare, data, run, pretrain, params, check, profile,
            experiment, kernels)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add every ``signbench`` subcommand to ``subparsers``."""
    for command in COMMANDS:
        command.add_parser(subparsers)


def build_parser() -> argparse.ArgumentParser:
    """The ``signbench`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="signbench",
        description="SignBench: sign language translation methods, kernels and measurements.",
    )
    parser.add_argument("--version", action="version", version=f"signbench {__version__}")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``signbench`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from harness.ops.dispatch import BackendUnavailableError

    try:
        return args.func(args)
    except CLIError as err:
        print(f"signbench: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, BackendUnavailableError) as err:
        # Library code raises these with messages written for the user (file, field, shape);
        # SIGNBENCH_DEBUG=1 shows the traceback for bug reports.
        if os.environ.get("SIGNBENCH_DEBUG") == "1":
            raise
        print(f"signbench: error: {err}", file=sys.stderr)
        return 2
