"""Recognition (gloss) metrics: corpus-pooled WER split into substitutions, deletions, insertions.

WER here is the sign-recognition convention: edit operations summed over the whole test set and
divided by the total number of reference glosses (not a mean of per-sentence WERs), reported ×100
together with its S / D / I parts, which add up to it. Alignments come from jiwer.

Empty sentences are handled here instead of being passed to jiwer (older jiwer releases raise on
an empty reference): a sentence with an empty reference contributes its hypothesis words as
insertions, and one with an empty hypothesis contributes its reference words as deletions. Only a
corpus with no reference words at all (after cleanup) is an error, because WER is then undefined.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

import jiwer

from harness import __version__ as _signbench_version
from harness.metrics.cleanup import CLEANUPS
from harness.metrics.tokenize import check_pairs

__all__ = ["recognition_scores"]


def _jiwer_version() -> str:
    try:
        return importlib.metadata.version("jiwer")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def recognition_scores(
    hypotheses: Sequence[str],
    references: Sequence[str],
    cleanup: str | None = None,
) -> dict[str, float | int | str]:
    """Corpus WER and its parts, in % of the total number of reference words.

    Args:
        hypotheses: recognised gloss sequences, one whitespace-separated string per sentence.
        references: ground-truth gloss sequences, parallel to ``hypotheses``.
        cleanup: ``None`` (score the text as given, after NFC / whitespace normalisation) or
            ``"phoenix14t"`` (the published PHOENIX-2014T cleanup, applied to both sides; see
            :mod:`harness.metrics.cleanup`).

    Returns:
        ``{"wer", "sub", "del", "ins", "n_ref_words", "signature"}`` with
        ``wer == sub + del + ins`` (up to float rounding).

    Raises:
        ValueError: unknown cleanup name; empty or mismatched lists; non-string items; no
            reference words left in the whole corpus (after cleanup).
    """
    if cleanup is not None and cleanup not in CLEANUPS:
        raise ValueError(f"unknown cleanup {cleanup!r}; expected None or one of {sorted(CLEANUPS)}")
    hyps, refs = check_pairs(hypotheses, references)
    if cleanup is not None:
        clean = CLEANUPS[cleanup]
        hyps = [clean(h) for h in hyps]
        refs = [clean(r) for r in refs]

    n_ref = sum(len(r.split()) for r in refs)
    if n_ref == 0:
        where = f" after {cleanup!r} cleanup" if cleanup else ""
        raise ValueError(f"all {len(refs)} references are empty{where}; WER is undefined")

    subs = dels = ins = 0
    aligned_refs: list[str] = []
    aligned_hyps: list[str] = []
    for hyp, ref in zip(hyps, refs, strict=True):
        if not ref:
            ins += len(hyp.split())
        elif not hyp:
            dels += len(ref.split())
        else:
            aligned_refs.append(ref)
            aligned_hyps.append(hyp)
    if aligned_refs:
        words = jiwer.process_words(aligned_refs, aligned_hyps)  # (reference, hypothesis)
        subs += words.substitutions
        dels += words.deletions
        ins += words.insertions

    def pct(count: int) -> float:
        return 100.0 * count / n_ref

    return {
        "wer": pct(subs + dels + ins),
        "sub": pct(subs),
        "del": pct(dels),
        "ins": pct(ins),
        "n_ref_words": n_ref,
        "signature": (
            f"signbench-wer|cleanup:{cleanup or 'none'}|norm:nfc|tok:whitespace|case:mixed"
            f"|pooled:corpus|jiwer:{_jiwer_version()}|signbench:{_signbench_version}"
        ),
    }
