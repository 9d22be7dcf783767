"""``signbench leaderboard``: rebuild ``results/`` (tables, significance, plots, ``index.html``)
from run JSONs and pytest-benchmark JSONs.

Folders given to ``--runs`` are searched recursively for JSONs declaring a signbench run schema
(``harness.leaderboard.discover_runs``); the tables and plots come from
``harness.leaderboard.build_leaderboard``, which validates every input before it writes anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import CLIError, check_file


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness.leaderboard import build_leaderboard, discover_runs

    runs: list[Path] = []
    for item in args.runs:
        path = Path(item)
        if path.is_dir():
            runs += discover_runs(path)  # JSONs declaring a signbench run schema, recursively
        elif path.is_file():
            runs.append(path)
        elif item != "runs":  # the default folder may simply not exist yet
            raise CLIError(f"run JSON file or folder not found: {path}")
    benches = []
    for item in args.bench:
        benches.append(check_file(Path(item), "benchmark JSON"))  # a directory named as one
    report = build_leaderboard(runs, benches, Path(args.out))
    if not args.quiet:
        for name in ("leaderboard.md", "kernels.md", "methods.md"):
            table = Path(args.out) / name
            if table.is_file():
                print(table.read_text(encoding="utf-8"))
    print(report.summary())
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``leaderboard`` to ``signbench``'s subparsers."""
    p = subparsers.add_parser("leaderboard", help="rebuild results/ and its web page from JSON")
    p.add_argument("--runs", nargs="*", default=["runs"],
                   help="run JSON files or folders of them (default: runs/)")
    p.add_argument("--bench", nargs="*", default=[],
                   help="pytest-benchmark JSON files (pytest benchmarks/ --benchmark-json F)")
    p.add_argument("--out", default="results", help="output folder (default: results/)")
    p.add_argument("--quiet", action="store_true", help="do not print the leaderboard")
    p.set_defaults(func=cmd_leaderboard)
