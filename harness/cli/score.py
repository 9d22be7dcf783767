"""``signbench score``: score hypothesis / reference files under a named protocol.

Translation: BLEU-1..4 + ROUGE-L (``--protocol slt`` comparable with published SLT tables,
``sacrebleu`` its defaults); recognition: WER (``--cleanup phoenix14t`` for the PHOENIX gloss
cleanup). ``--control`` adds the shuffled-reference control and the permutation-test p-value of
the headline score (``harness.metrics.shuffled_reference_control``,
``harness.evaluate.permutation_test_of``). A table for people, ``--json`` for machines.
Refused with one line: a ``--lang`` outside ``SUPPORTED_LANGS``, a directory or missing file, a
line over ``MAX_LINE_TOKENS`` tokens (file and line named); a UTF-8 BOM is stripped, with a note.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.cli.common import CLIError, format_table, read_lines


def cmd_score(args: argparse.Namespace) -> int:
    from harness.evaluate import permutation_test_of
    from harness.metrics import recognition_scores, shuffled_reference_control, translation_scores
    from harness.metrics.tokenize import check_lang, check_line_lengths

    check_lang(args.lang)  # ValueError naming the supported languages
    hyps = read_lines(Path(args.hyp), "hypothesis")
    refs = read_lines(Path(args.ref), "reference")
    if args.task == "translation":
        for path, lines in ((args.hyp, hyps), (args.ref, refs)):
            check_line_lengths(lines, args.lang, str(path))  # ValueError naming file and line
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


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``score`` to ``signbench``'s subparsers."""
    p = subparsers.add_parser("score",
                              help="score hypothesis/reference files (one sentence per line)")
    p.add_argument("--hyp", required=True, help="hypotheses, UTF-8, one per line")
    p.add_argument("--ref", required=True, help="references, UTF-8, one per line")
    p.add_argument("--lang", default="de",
                   help="language code: de, en, zh, ja (zh/ja: character-level)")
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
