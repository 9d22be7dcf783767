"""Bootstrap confidence intervals and paired significance tests, from sacrebleu.

sacrebleu (``sacrebleu.significance``; Koehn 2004's paired bootstrap resampling and Riezler &
Maxwell 2005's paired approximate randomisation) does the resampling. BLEU-4 is its own
:class:`~sacrebleu.metrics.BLEU` under the ``slt`` protocol; ROUGE-L and WER enter the same
machinery as sacrebleu :class:`~sacrebleu.metrics.base.Metric` subclasses whose per-sentence
statistics are (F_β, 1) and (edits, reference words), so every metric is resampled over the same
sentence indices. The seed is fixed (sacrebleu's 12345) and named in every signature
(``bs:1000|rs:12345``). A CI is sacrebleu's: the bootstrap mean μ ± half the width of the central
95 % of the resampled scores. Notes: ``docs/results-schema.md`` ("Confidence intervals").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import jiwer
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU
from sacrebleu.metrics.base import Metric, Score, Signature
from sacrebleu.significance import PairedTest

from harness.metrics.cleanup import CLEANUPS
from harness.metrics.tokenize import check_pairs, is_cjk, tokenizer_for
from harness.metrics.translation import ROUGE_BETA, _slt_bleu_text, rouge_l_fbeta

__all__ = ["N_BOOTSTRAP", "N_TRIALS", "SEED", "confidence_intervals", "paired_tests"]

#: bootstrap resamples for every CI and for the paired bootstrap test
N_BOOTSTRAP = 1000
#: trials of the paired approximate-randomisation test (sacrebleu's default)
N_TRIALS = 10000
#: the RNG seed (sacrebleu's default ``SACREBLEU_SEED``), pinned whatever the environment says
SEED = 12345

#: the headline metrics of each task, in the order they are reported
TASK_METRICS = {"translation": ("bleu4", "rouge_l"), "recognition": ("wer",)}


@contextlib.contextmanager
def _pinned_seed() -> Iterator[None]:
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(SEED)
    try:
        yield
    finally:
        if old is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = old


class _SentenceMetric(Metric):
    """A sacrebleu metric from precomputed per-sentence statistics ``(numerator, denominator)``:
    corpus score = 100 · Σ numerator / Σ denominator. Subclasses give :meth:`sentence_stats`."""

    name = ""

    def __init__(self) -> None:
        super().__init__()
        self.num_refs = 1

    def sentence_stats(self, hyp: str, ref: str) -> list[float]:
        raise NotImplementedError

    def _extract_corpus_statistics(self, hypotheses: Sequence[str],
                                   references: Sequence[Sequence[str]] | None) -> Any:
        if not references:
            raise ValueError("references are required")
        return [self.sentence_stats(h, r) for h, r in zip(hypotheses, references[0], strict=True)]

    def _compute_score_from_stats(self, stats: Sequence[float]) -> Score:
        num, den = float(stats[0]), float(stats[1])
        return Score(self.name, 100.0 * num / den if den else 0.0)

    def _aggregate_and_compute(self, stats: Sequence[Sequence[float]]) -> Score:
        return self._compute_score_from_stats([sum(s[0] for s in stats), sum(s[1] for s in stats)])

    # sacrebleu's per-segment hooks: unused, statistics come from sentence_stats
    def _preprocess_segment(self, sent: str) -> str:
        return sent

    def _extract_reference_info(self, refs: Sequence[str]) -> dict[str, Any]:
        return {"refs": refs}

    def _compute_segment_statistics(self, hypothesis: str, ref_kwargs: dict) -> list[float]:
        return self.sentence_stats(hypothesis, ref_kwargs["refs"][0])


class RougeL(_SentenceMetric):
    """Sentence-mean ROUGE-L F_β (β = 1.2) as the ``slt`` protocol computes it."""

    name = "ROUGE-L"

    def __init__(self, lang: str) -> None:
        super().__init__()
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizer_for(lang))

    def sentence_stats(self, hyp: str, ref: str) -> list[float]:
        s = self._scorer.score(ref, hyp)["rougeL"]  # rouge-score takes (target, prediction)
        return [rouge_l_fbeta(s.precision, s.recall, ROUGE_BETA), 1.0]


class WordErrorRate(_SentenceMetric):
    """Corpus-pooled WER: Σ (S + D + I) / Σ reference words, per-sentence counts from jiwer."""

    name = "WER"

    def __init__(self, cleanup: str | None = None) -> None:
        super().__init__()
        self._clean = CLEANUPS[cleanup] if cleanup else None

    def sentence_stats(self, hyp: str, ref: str) -> list[float]:
        if self._clean is not None:
            hyp, ref = self._clean(hyp), self._clean(ref)
        n_ref = len(ref.split())
        if not ref or not hyp:
            return [float(len(hyp.split()) + n_ref), float(n_ref)]
        w = jiwer.process_words(ref, hyp)
        return [float(w.substitutions + w.deletions + w.insertions), float(n_ref)]


def _metrics(task: str, lang: str, cleanup: str | None) -> dict[str, Metric]:
    if task == "translation":
        return {"bleu4": BLEU(max_ngram_order=4, tokenize="none", smooth_method="floor",
                              smooth_value=0.0, effective_order=True),
                "rouge_l": RougeL(lang)}
    if task == "recognition":
        return {"wer": WordErrorRate(cleanup)}
    raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASK_METRICS)}")


def _inputs(metric: str, texts: list[str], lang: str) -> list[str]:
    """BLEU under ``slt`` scores CJK per character (the text is pre-split); the others as is."""
    return _slt_bleu_text(texts, lang) if metric == "bleu4" else texts


class _SentenceSignature(Signature):
    """sacrebleu's signature (references, resamples, seed, version) plus the metric's own
    settings, e.g. ``metric:rouge_l|nrefs:1|bs:1000|seed:12345|tok:whitespace|version:2.6.0``."""

    def __init__(self, metric: str, settings: dict[str, str]) -> None:
        super().__init__({"num_refs": 1})
        self.info = {"metric": metric, **self.info, **settings}
        self._abbr = {**self._abbr, "metric": "m", **{k: k for k in settings}}


def _signature(name: str, metric: Metric, lang: str, cleanup: str | None,
               test: str | None = None) -> str:
    if name == "bleu4":
        sig = metric.get_signature()
    elif name == "rouge_l":
        sig = _SentenceSignature(name, {"tok": "char" if is_cjk(lang) else "whitespace"})
    else:
        sig = _SentenceSignature(name, {"cleanup": cleanup or "none"})
    sig.update("seed", SEED)
    if test == "ar":
        sig.update("ar", N_TRIALS)
    else:
        sig.update("bs", N_BOOTSTRAP)
    return sig.format()


def confidence_intervals(task: str, hypotheses: Sequence[str], references: Sequence[str], *,
                         lang: str = "de", cleanup: str | None = None) -> dict[str, Any]:
    """95 % bootstrap CIs (sacrebleu, :data:`N_BOOTSTRAP` resamples, seed :data:`SEED`) of the
    task's headline metrics: ``{metric: {"score", "mean", "ci", "signature"}}`` with metric
    ``bleu4`` and ``rouge_l`` (translation, ``slt`` protocol) or ``wer`` (recognition)."""
    hyps, refs = check_pairs(hypotheses, references)
    out: dict[str, Any] = {}
    with _pinned_seed():
        for name, metric in _metrics(task, lang, cleanup).items():
            score = metric.corpus_score(_inputs(name, hyps, lang), [_inputs(name, refs, lang)],
                                        n_bootstrap=N_BOOTSTRAP)
            out[name] = {"score": float(score.score), "mean": float(score._mean),
                         "ci": float(score._ci),
                         "signature": _signature(name, metric, lang, cleanup)}
    return out


def paired_tests(task: str, systems: Sequence[tuple[str, Sequence[str]]],
                 references: Sequence[str], *, lang: str = "de", cleanup: str | None = None,
                 test: str = "bs") -> dict[str, Any]:
    """sacrebleu's paired test (``bs``: bootstrap resampling, ``ar``: approximate randomisation)
    of every system against the first one (the baseline), on the same references.

    Returns ``{metric: {"signature", "scores": [...], "p_values": [None, p, ...]}}`` in the order
    of ``systems``. Raises ValueError for fewer than two systems or mismatched lengths."""
    if test not in ("bs", "ar"):
        raise ValueError(f"unknown test {test!r}; expected 'bs' or 'ar'")
    if len(systems) < 2:
        raise ValueError(f"a paired test needs at least two systems, got {len(systems)}")
    refs = check_pairs(references, references)[0]
    named = []
    for name, hyps in systems:
        named.append((name, check_pairs(hyps, refs)[0]))
    out: dict[str, Any] = {}
    with _pinned_seed():
        for name, metric in _metrics(task, lang, cleanup).items():
            sys_inputs = [(n, _inputs(name, h, lang)) for n, h in named]
            ref_input = _inputs(name, refs, lang)
            n_samples = N_TRIALS if test == "ar" else N_BOOTSTRAP
            _, results = PairedTest(sys_inputs, {name: metric}, [ref_input], test_type=test,
                                    n_samples=n_samples, n_ar_confidence=-1)()
            (key,) = [k for k in results if k != "System"]
            res = results[key]
            out[name] = {"signature": _signature(name, metric, lang, cleanup, test),
                         "scores": [float(r.score) for r in res],
                         "p_values": [None if r.p_value is None else float(r.p_value)
                                      for r in res]}
    return out
