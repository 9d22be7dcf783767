"""``signbench compare RUN_A RUN_B ...``: sacrebleu's paired significance tests between runs.

Reads each run JSON and the per-sample outputs JSONL beside it; the runs must share task,
dataset, language and split, and their outputs the same samples (names and references, in the
same order), else one error line names the run and what differs. Prints, per metric of the task
(BLEU-4 and ROUGE-L, or WER), the score of each run and the p-value matrix of the paired test
(``--test bs``: bootstrap resampling, 1,000 resamples; ``ar``: approximate randomisation, 10,000
trials; seed 12345, in the signature) — the same figures as ``results/significance.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.cli.common import CLIError

_SAME = ("task", "dataset", "lang", "split")


def _load(path: Path) -> tuple[dict[str, Any], Any]:
    from harness.leaderboard.sources import read_outputs
    from harness.results import load_run

    if not path.is_file():
        raise CLIError(f"run JSON not found: {path}")
    run = load_run(path)
    outputs = read_outputs(path, run)
    if outputs is None:
        raise CLIError(f"{path}: no per-sample outputs JSONL beside it (field 'outputs': "
                       f"{run.get('outputs')!r}) for a {run.get('task')!r} run")
    return run, outputs


def _check_same(paths: list[Path], loaded: list[tuple[dict[str, Any], Any]]) -> None:
    (run0, out0), path0 = loaded[0], paths[0]
    for path, (run, out) in zip(paths[1:], loaded[1:], strict=True):
        for key in _SAME:
            if run.get(key) != run0.get(key):
                raise CLIError(f"{path}: field '{key}' is {run.get(key)!r} but {path0} has "
                               f"{run0.get(key)!r}; only runs on the same split can be compared")
        if out.names != out0.names:
            if len(out.names) != len(out0.names):
                detail = f"{len(out.names)} samples vs {len(out0.names)}"
            else:
                i = next(i for i, (a, b) in
                         enumerate(zip(out.names, out0.names, strict=True)) if a != b)
                detail = f"sample {i + 1} is {out.names[i]!r} vs {out0.names[i]!r}"
            raise CLIError(f"{path}: per-sample outputs name other samples than {path0}'s "
                           f"({detail})")
        if out.references != out0.references:
            i = next(i for i, (a, b) in
                     enumerate(zip(out.references, out0.references, strict=True)) if a != b)
            raise CLIError(f"{path}: the reference of sample {out.names[i]!r} differs from "
                           f"{path0}'s")


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.leaderboard.board import matrix_table
    from harness.leaderboard.runs import run_label
    from harness.leaderboard.stats import compare_runs

    paths = [Path(p) for p in args.runs]
    if len(paths) < 2:
        raise CLIError("compare needs at least two run JSONs")
    loaded = [_load(p) for p in paths]
    _check_same(paths, loaded)
    run0, out0 = loaded[0]
    labels = [run["method"] + (f" ({run['variant']})" if run.get("variant") else "")
              for run, _ in loaded]
    for fallback in ([run_label(run) for run, _ in loaded], [str(p) for p in paths]):
        if len(set(labels)) < len(labels):
            labels = fallback
    comparisons = compare_runs(
        run0["task"], labels, [out.hypotheses for _, out in loaded], out0.references,
        lang=run0["lang"], cleanup="phoenix14t" if run0["dataset"] == "phoenix14t" else None,
        title=f"{run0['task']} — {run0['dataset']}-{run0['lang']} / {run0['split']}",
        test=args.test)
    if args.json:
        print(json.dumps([{"metric": c.metric, "test": c.test, "signature": c.signature,
                           "runs": list(c.labels), "scores": list(c.scores),
                           "p_values": [list(r) for r in c.p_values]} for c in comparisons],
                         indent=2, ensure_ascii=False))
        return 0
    from tabulate import tabulate

    test = {"bs": "paired bootstrap resampling", "ar": "paired approximate randomisation"}
    print(f"{comparisons[0].title}: sacrebleu {test[args.test]}; row A, column B = p-value "
          "of A and B scoring this differently by chance (** ≤ 0.05)")
    for comp in comparisons:
        header, body = matrix_table(comp)
        print()
        print(tabulate(body, headers=header, tablefmt="simple", disable_numparse=True))
        print(f"signature: {comp.signature}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``compare`` to ``signbench``'s subparsers."""
    p = subparsers.add_parser(
        "compare", help="paired significance tests (sacrebleu) between runs on the same split")
    p.add_argument("runs", nargs="+", metavar="RUN_JSON",
                   help="run JSON files (each with its outputs JSONL beside it)")
    p.add_argument("--test", choices=("bs", "ar"), default="bs",
                   help="bs: paired bootstrap resampling (1,000); ar: approximate "
                        "randomisation (10,000)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_compare)
