"""The ``signbench`` command line.

Subcommands:

* ``info``        — versions, ops backends per device, native CUDA build, GPU and NVML status.
* ``score``       — score hypothesis/reference files (translation: BLEU-1..4 + ROUGE-L;
  recognition: WER) under a named protocol; a table for people, ``--json`` for machines.
* ``leaderboard`` — rebuild ``results/`` (tables and plots) from run JSONs and
  pytest-benchmark JSONs.

``run``, ``params`` and ``profile`` (``harness.run_cli``) and ``data`` (``harness.data.cli``)
register themselves the same way: a function taking the subparsers that sets ``func`` on its
parser.

Errors the user can fix (bad files, bad options) print one ``signbench: error: ...`` line and
exit with status 2; nothing deep inside torch surfaces as a stack trace.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import __version__


class CLIError(Exception):
    """An error to report to the user as one line, without a traceback."""


# --------------------------------------------------------------------------------------- helpers


def read_lines(path: Path, what: str) -> list[str]:
    """One sentence per line from a UTF-8 text file (a trailing newline adds no empty line)."""
    if not path.is_file():
        raise CLIError(f"{what} file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise CLIError(f"{what} file {path} is not UTF-8 (line {line}: {err.reason})") from None
    return text.splitlines()


def format_table(rows: Sequence[tuple[str, str]], header: tuple[str, str]) -> str:
    """A two-column plain-text table."""
    width = max(len(header[0]), *(len(k) for k, _ in rows)) if rows else len(header[0])
    lines = [f"{header[0]:<{width}}  {header[1]}", f"{'-' * width}  {'-' * len(header[1])}"]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ info


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def collect_info() -> dict:
    """Everything ``signbench info`` reports, as a JSON-ready dict."""
    import torch

    from harness import ops
    from harness.measure import capture_environment
    from harness.measure.power import nvml_available
    from harness.ops.dispatch import native_module

    packages = ["torch", "triton", "transformers", "peft", "tokenizers", "sacrebleu",
                "rouge-score", "jiwer", "pandas", "matplotlib", "nvtx", "nvidia-ml-py"]
    devices = ["cpu", "cuda"]
    backends = {
        device: {name: dict(zip(("available", "reason"), ops.availability(name, device),
                                strict=True))
                 for name in ops.BACKENDS}
        for device in devices
    }
    native = native_module()
    nvml_ok, nvml_reason = nvml_available()
    env = capture_environment()
    return {
        "signbench": __version__,
        "packages": {name: _package_version(name) for name in packages},
        "backends": backends,
        "default_backend": {d: ops.default_backend(d) for d in devices if backends[d]["torch"]
                            ["available"]},
        "native": {"built": native is not None,
                   "cuda_kernels": bool(native is not None and native.has_cuda())},
        "cuda_available": torch.cuda.is_available(),
        "gpu": env.get("gpu"),
        "gpu_reason": env.get("gpu_reason"),
        "nvml": {"available": nvml_ok, "reason": nvml_reason},
        "environment": env,
    }


def cmd_info(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True, default=str))
        return 0
    env = info["environment"]
    rows = [("signbench", info["signbench"]),
            ("git commit", f"{env.get('git_commit') or '—'}"
                           f"{' (dirty)' if env.get('git_dirty') else ''}"),
            ("python", str(env.get("python"))),
            ("platform", str(env.get("platform")))]
    rows += [(name, version or "not installed") for name, version in info["packages"].items()]
    print(format_table(rows, ("package", "version")))
    print()
    backend_rows = []
    for device, table in info["backends"].items():
        for name, status in table.items():
            mark = "yes" if status["available"] else "no "
            backend_rows.append((f"{device}/{name}", f"{mark}  {status['reason']}"))
    print(format_table(backend_rows, ("ops backend", "available")))
    print()
    gpu = info["gpu"]
    gpu_text = (f"{gpu.get('name')} (driver {gpu.get('driver')})" if gpu
                else f"none ({info['gpu_reason']})")
    nvml = info["nvml"]
    rows = [("native extension", "built" if info["native"]["built"] else "NOT built"),
            ("native CUDA kernels", "yes" if info["native"]["cuda_kernels"] else "no"),
            ("default backend", ", ".join(f"{d}: {b}" for d, b in
                                          info["default_backend"].items())),
            ("GPU", gpu_text),
            ("NVML power/energy", "yes" if nvml["available"] else f"no ({nvml['reason']})")]
    print(format_table(rows, ("hardware", "status")))
    return 0


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="versions, backends, CUDA build, GPU and NVML status")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_info)


# ----------------------------------------------------------------------------------------- score


def cmd_score(args: argparse.Namespace) -> int:
    from harness.evaluate import permutation_test_of
    from harness.metrics import recognition_scores, shuffled_reference_control, translation_scores

    hyps = read_lines(Path(args.hyp), "hypothesis")
    refs = read_lines(Path(args.ref), "reference")
    if len(hyps) != len(refs):
        raise CLIError(f"{args.hyp} has {len(hyps)} lines but {args.ref} has {len(refs)}; "
                       "score files need one sentence per line, aligned")
    if args.task == "translation" and args.cleanup:
        raise CLIError("--cleanup applies to --task recognition only")

    def scorer(h: list[str], r: list[str]) -> dict[str, Any]:
        if args.task == "translation":
            return translation_scores(h, r, lang=args.lang, protocol=args.protocol)
        return recognition_scores(h, r, cleanup=args.cleanup)

    scores = scorer(hyps, refs)
    control = None
    if args.control:
        control = shuffled_reference_control(args.task, hyps, refs, scorer)
        if control is None:
            raise CLIError("--control needs at least 2 sentences (each hypothesis is scored "
                           "against another sentence's reference)")
        control.update(permutation_test_of(args.task, hyps, refs, lang=args.lang,
                                           protocol=args.protocol, cleanup=args.cleanup))
    if args.json:
        out = {**scores, "control": control} if control is not None else scores
        print(json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False))
        return 0
    rows = [(key, f"{value:.2f}" if isinstance(value, float) else str(value))
            for key, value in scores.items() if key != "signature"]
    if control is not None:
        rows.append(("distinct outputs", f"{control['distinct_outputs']}/{control['samples']}"))
        rows += [(f"{key} (shuffled refs)", f"{control[key]:.2f}")
                 for key in ("bleu4", "rouge_l", "wer") if key in control]
        key = "bleu4" if args.task == "translation" else "wer"
        rows.append((f"p ({key}, {control['permutations']} permuted refs)",
                     f"{control['p_value']:.3f}"))
    print(format_table(rows, ("metric", "score")))
    print(f"\nsignature: {scores['signature']}")
    return 0


def _add_score(sub) -> None:
    p = sub.add_parser("score", help="score hypothesis/reference files (one sentence per line)")
    p.add_argument("--hyp", required=True, help="hypotheses, UTF-8, one per line")
    p.add_argument("--ref", required=True, help="references, UTF-8, one per line")
    p.add_argument("--lang", default="de", help="language code (zh/ja: character-level)")
    p.add_argument("--protocol", default="slt", choices=["slt", "sacrebleu"],
                   help="slt: comparable with published SLT tables; sacrebleu: its defaults")
    p.add_argument("--task", default="translation", choices=["translation", "recognition"])
    p.add_argument("--cleanup", default=None, choices=["phoenix14t"],
                   help="gloss cleanup applied to both sides before WER (recognition)")
    p.add_argument("--control", action="store_true",
                   help="also score the hypotheses against shuffled references (mean of 5 "
                        "derangements), count distinct outputs, and give the permutation-test "
                        "p-value of BLEU-4 / WER (199 random re-pairings): a score that does "
                        "not beat its control does not come from the input")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_score)


# ----------------------------------------------------------------------------------- leaderboard


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
        path = Path(item)
        if not path.is_file():
            raise CLIError(f"benchmark JSON not found: {path}")
        benches.append(path)
    report = build_leaderboard(runs, benches, Path(args.out))
    if not args.quiet:
        for name in ("leaderboard.md", "kernels.md", "methods.md"):
            table = Path(args.out) / name
            if table.is_file():
                print(table.read_text(encoding="utf-8"))
    print(report.summary())
    return 0


def _add_leaderboard(sub) -> None:
    p = sub.add_parser("leaderboard", help="rebuild results/ tables and plots from JSON")
    p.add_argument("--runs", nargs="*", default=["runs"],
                   help="run JSON files or folders of them (default: runs/)")
    p.add_argument("--bench", nargs="*", default=[],
                   help="pytest-benchmark JSON files (pytest benchmarks/ --benchmark-json F)")
    p.add_argument("--out", default="results", help="output folder (default: results/)")
    p.add_argument("--quiet", action="store_true", help="do not print the leaderboard")
    p.set_defaults(func=cmd_leaderboard)


# ------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signbench",
        description="SignBench: sign language translation methods, kernels and measurements.",
    )
    parser.add_argument("--version", action="version", version=f"signbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from harness.data.cli import add_data_commands
    from harness.run_cli import add_run_commands

    for add in (_add_info, _add_score, _add_leaderboard, add_data_commands, add_run_commands):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
