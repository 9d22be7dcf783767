"""``signbench kernels compile``: ahead-of-time compile checks of the GPU kernels, no GPU needed.

Every Triton kernel × dtype × launch configuration, and every csrc CUDA kernel, compiled for
sm_80 / sm_90 (:func:`harness.ops.aot.check`): registers, spills, shared memory. Exit status 1
on a compile failure, a spill, or shared memory over the arch's limit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.cli.common import CLIError


def cmd_kernels_compile(args: argparse.Namespace) -> int:
    try:
        import triton  # noqa: F401
    except ImportError as err:
        raise CLIError("kernels compile needs triton, which is not installed") from err
    from tqdm.auto import tqdm

    from harness.files import atomic_write_text
    from harness.ops import aot
    from harness.ops.dispatch import triton_interpreting

    if triton_interpreting():
        raise CLIError("TRITON_INTERPRET is set, so the kernels were built for the interpreter; "
                       "run kernels compile with TRITON_INTERPRET unset (or 0)")

    bad = [a for a in args.arch if a not in aot.SHARED_LIMIT]
    if bad:
        raise CLIError(f"--arch {bad[0]}: supported archs are {sorted(aot.SHARED_LIMIT)}")
    bar = tqdm(total=None, desc="compile", unit="kernel", disable=args.json or args.quiet)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    report = aot.check(args.arch, args.dtype, quick=args.quick, cuda=not args.no_nvcc,
                       progress=progress)
    bar.close()
    text = json.dumps(report, indent=2)
    if args.out:
        atomic_write_text(Path(args.out), text + "\n")
    if args.json:
        print(text)
    elif not args.quiet:
        print(_summary(report))
    for line in report["problems"]:
        print(f"signbench kernels compile: {line}", file=sys.stderr)
    return 1 if report["problems"] else 0


def _summary(report: dict[str, Any]) -> str:
    """Per kernel and arch: variants, max registers, max spills, max shared memory."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in report["kernels"]:
        groups.setdefault((row["kind"], row["name"], row["arch"]), []).append(row)
    table = []
    for (kind, name, arch), rows in sorted(groups.items()):
        ok = [r for r in rows if not r["error"]]
        table.append([kind, name, arch, len(rows), len(rows) - len(ok),
                      max((r["registers"] for r in ok), default="-"),
                      max((r["spills"] for r in ok), default="-"),
                      max((r["shared_bytes"] for r in ok), default="-")])
    head = ["kind", "kernel", "arch", "variants", "failed", "max regs", "max spills",
            "max shared B"]
    cells = [head, *[[str(c) for c in row] for row in table]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    nvcc = report["nvcc"] or "not found (csrc kernels not checked)"
    return "\n".join([*lines, f"nvcc: {nvcc}; {len(report['problems'])} problem(s)"])


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``kernels compile`` to ``signbench``'s subparsers."""
    p = subparsers.add_parser("kernels", help="GPU kernel checks that need no GPU")
    sub = p.add_subparsers(dest="kernels_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser("compile", help="compile every Triton and CUDA kernel for sm_80 / sm_90")
    c.add_argument("--arch", type=int, nargs="+", default=[80, 90],
                   help="compute capabilities ×10 (default: 80 90)")
    c.add_argument("--dtype", nargs="+", default=["fp32", "fp16", "bf16"],
                   choices=["fp32", "fp16", "bf16"], help="Triton kernel dtypes (default: all)")
    c.add_argument("--quick", action="store_true",
                   help="one flag combination per kernel, dtype and tile config (CI)")
    c.add_argument("--no-nvcc", action="store_true", help="skip the csrc CUDA kernels")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--out", help="also write the JSON report to this file")
    c.add_argument("--quiet", action="store_true", help="print only the problems")
    c.set_defaults(func=cmd_kernels_compile)
