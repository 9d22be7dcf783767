"""Translation metrics: BLEU-1..4, ROUGE-L (and chrF) under a named, reproducible protocol.

Two protocols, because published sign-language-translation numbers and MT numbers are not computed
the same way and must not be mixed in one table:

``slt``
    Comparable with the SLT tables of the signjoey / SLRT lineage. Text is NFC-normalised and
    whitespace-collapsed, nothing else (no lowercasing, no punctuation splitting); tokens are
    whitespace-separated words, or characters for Chinese / Japanese. BLEU-n is sacrebleu's
    cumulative corpus BLEU with ``max_ngram_order=n``, ``tokenize="none"``, floor smoothing with
    value 0 and effective order. ROUGE-L is the sentence mean of the LCS F-measure with β = 1.2,
    ``F = (1+β²)·P·R / (R + β²·P)``, from rouge-score's LCS precision P and recall R.
``sacrebleu``
    sacrebleu's defaults (13a tokenisation, ``zh`` for Chinese, ``char`` for Japanese since
    ``ja-mecab`` needs MeCab), default ``exp`` smoothing, plus chrF and the plain ROUGE-L F1.

Scores are on a 0–100 scale. The ``signature`` string names everything a reader needs to
reproduce them: protocol, tokenisation, n-gram orders, smoothing, β, case handling and versions.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from harness import __version__ as _signbench_version
from harness.metrics.tokenize import check_line_lengths, check_pairs, is_cjk, tokenizer_for

__all__ = ["PROTOCOLS", "ROUGE_BETA", "corpus_bleu", "rouge_l_fbeta", "translation_scores"]

#: Protocol names accepted by :func:`translation_scores`.
PROTOCOLS: tuple[str, ...] = ("slt", "sacrebleu")

#: β of the ROUGE-L F-measure in the ``slt`` protocol (recall weighted 1.2× precision).
ROUGE_BETA: float = 1.2

_ORDERS = (1, 2, 3, 4)


def rouge_l_fbeta(precision: float, recall: float, beta: float = ROUGE_BETA) -> float:
    """F_β of LCS precision and recall: ``(1+β²)·P·R / (R + β²·P)``, 0 when P or R is 0."""
    if precision <= 0.0 or recall <= 0.0:
        return 0.0
    b2 = beta * beta
    return (1.0 + b2) * precision * recall / (recall + b2 * precision)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _versions() -> str:
    return (
        f"sacrebleu:{_version('sacrebleu')}|rouge-score:{_version('rouge-score')}"
        f"|signbench:{_signbench_version}"
    )


def _rouge_l(hyps: list[str], refs: list[str], lang: str, beta: float | None) -> float:
    """Sentence-mean ROUGE-L ×100: F_β from rouge-score's P and R, or its own F1 if beta is None."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizer_for(lang))
    total = 0.0
    for hyp, ref in zip(hyps, refs, strict=True):
        s = scorer.score(ref, hyp)["rougeL"]  # rouge-score takes (target, prediction)
        total += s.fmeasure if beta is None else rouge_l_fbeta(s.precision, s.recall, beta)
    return 100.0 * total / len(hyps)


def _bleu(n: int, protocol: str, lang: str) -> BLEU:
    """sacrebleu's corpus BLEU of maximum order ``n`` as ``protocol`` configures it."""
    if protocol == "slt":
        return BLEU(max_ngram_order=n, tokenize="none", smooth_method="floor",
                    smooth_value=0.0, effective_order=True)
    return BLEU(max_ngram_order=n, tokenize=_sacrebleu_tokenize(lang))


def _slt_bleu_text(texts: list[str], lang: str) -> list[str]:
    """The ``slt`` protocol's BLEU input: characters joined by spaces for CJK, else as is."""
    if not is_cjk(lang):
        return texts
    tok = tokenizer_for(lang)  # "今天 天气" -> "今 天 天 气"
    return [" ".join(tok.tokenize(t)) for t in texts]


def _slt_scores(hyps: list[str], refs: list[str], lang: str) -> dict[str, float | str]:
    bleu_hyps, bleu_refs = _slt_bleu_text(hyps, lang), _slt_bleu_text(refs, lang)
    out: dict[str, float | str] = {
        f"bleu{n}": float(_bleu(n, "slt", lang).corpus_score(bleu_hyps, [bleu_refs]).score)
        for n in _ORDERS}
    out["rouge_l"] = _rouge_l(hyps, refs, lang, ROUGE_BETA)
    tok_name = "char" if is_cjk(lang) else "whitespace"
    out["signature"] = (
        f"signbench-slt|tok:{tok_name}|norm:nfc|bleu:1-4,smooth:floor0,eff"
        f"|rougeL:lcs,beta:{ROUGE_BETA},mean|case:mixed|{_versions()}"
    )
    return out


def _sacrebleu_tokenize(lang: str) -> str:
    primary = lang.strip().lower().replace("_", "-").split("-")[0]
    return {"zh": "zh", "ja": "char"}.get(primary, "13a")


def _sacrebleu_scores(hyps: list[str], refs: list[str], lang: str) -> dict[str, float | str]:
    tokenize = _sacrebleu_tokenize(lang)
    out: dict[str, float | str] = {}
    bleu4_sig = ""
    for n in _ORDERS:
        bleu = _bleu(n, "sacrebleu", lang)
        out[f"bleu{n}"] = float(bleu.corpus_score(hyps, [refs]).score)
        if n == 4:  # sacrebleu's own signature omits the order, so keep the 4-gram one
            bleu4_sig = str(bleu.get_signature())
    chrf = CHRF()
    out["chrf"] = float(chrf.corpus_score(hyps, [refs]).score)
    out["rouge_l"] = _rouge_l(hyps, refs, lang, None)
    rouge_tok = "char" if is_cjk(lang) else "whitespace"
    out["signature"] = (
        f"signbench-sacrebleu|tok:{tokenize}|norm:nfc|bleu:1-4,smooth:exp"
        f"|chrF:[{chrf.get_signature()}]|rougeL:lcs,f1,tok:{rouge_tok},mean|case:mixed"
        f"|{_versions()}|bleu4:[{bleu4_sig}]"
    )
    return out


def _checked(hypotheses: Sequence[str], references: Sequence[str], lang: str,
             protocol: str) -> tuple[list[str], list[str]]:
    """The inputs of both scorers, checked and normalised (the errors ``translation_scores``
    documents) before any work."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    is_cjk(lang)  # type-checks lang
    hyps, refs = check_pairs(hypotheses, references)
    check_line_lengths(hyps, lang, "hypotheses")
    check_line_lengths(refs, lang, "references")
    if not any(refs):
        raise ValueError(f"all {len(refs)} references are empty after normalisation")
    return hyps, refs


def translation_scores(
    hypotheses: Sequence[str],
    references: Sequence[str],
    lang: str = "de",
    protocol: str = "slt",
) -> dict[str, float | str]:
    """Corpus BLEU-1..4 and ROUGE-L (×100) of ``hypotheses`` against one reference each.

    Args:
        hypotheses: system outputs, one string per sentence.
        references: reference translations, parallel to ``hypotheses``.
        lang: target-language code; ``zh`` / ``ja`` (and regional variants) are scored per
            character, anything else per whitespace token.
        protocol: ``"slt"`` (signjoey / SLRT-comparable) or ``"sacrebleu"`` (adds ``chrf``).

    Returns:
        ``{"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "signature"}`` (+ ``"chrf"`` for the
        ``sacrebleu`` protocol). An empty hypothesis (or reference) gives that sentence ROUGE-L 0;
        BLEU is a corpus statistic, so an empty hypothesis only adds reference length.

    Raises:
        ValueError: unknown protocol; empty or mismatched lists (both counts are named); every
            reference empty; a non-string item (its index is named) or non-string ``lang``;
            a line over ``MAX_LINE_TOKENS`` (1,000) tokens (its index is named).
    """
    hyps, refs = _checked(hypotheses, references, lang, protocol)
    if protocol == "slt":
        return _slt_scores(hyps, refs, lang)
    return _sacrebleu_scores(hyps, refs, lang)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], lang: str = "de",
                order: int = 4, protocol: str = "slt") -> float:
    """Corpus BLEU-``order`` (×100) alone, exactly as :func:`translation_scores` computes it —
    for callers that score many re-pairings of the same sentences (the control's permutation
    test) and must not pay for ROUGE-L each time. Same validation and errors."""
    if order not in _ORDERS:
        raise ValueError(f"BLEU order must be one of {_ORDERS}, got {order!r}")
    hyps, refs = _checked(hypotheses, references, lang, protocol)
    if protocol == "slt":
        hyps, refs = _slt_bleu_text(hyps, lang), _slt_bleu_text(refs, lang)
    return float(_bleu(order, protocol, lang).corpus_score(hyps, [refs]).score)
