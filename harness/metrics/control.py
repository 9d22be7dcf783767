"""Shuffled-reference control: does a system's output depend on its input at all?

A sign-language translation model trained on a small corpus can score well above zero by
emitting the corpus' most typical sentence for every video: BLEU rewards the frequent n-grams
("im norden", "es gibt") whatever the video showed. Accuracy alone cannot tell that apart from a
model that reads the video. The control scores the *same* outputs against the references of
*other* samples (a derangement: no sample keeps its own reference) and averages over a few
shuffles:

* a system that ignores its input scores the same against shuffled references as against its own
  (the difference is noise);
* a system that reads its input loses accuracy when the references are shuffled — the gap
  ``score(own) − score(shuffled)`` (for WER, ``shuffled − own``) is the part of its accuracy that
  comes from the input.

``distinct_outputs`` (the number of different hypotheses) is reported next to it: one distinct
output for 32 videos is the sentence prior, whatever the BLEU.

Is a gap more than noise? On a few dozen sentences one shuffle moves BLEU by points, so the mean
of a few shuffles cannot say. :func:`permutation_p_value` answers it with a one-sided Monte-Carlo
permutation test of the headline metric: under the null hypothesis "the outputs do not depend on
their inputs" the observed pairing of outputs and references is one of the n! pairings, all
equally likely, so p = (1 + #{random permutations scoring at least as well as the observed
pairing}) / (1 + permutations) (Phipson & Smyth's add-one estimate, never 0). Uniform
permutations, not derangements, are drawn: that is the exact null distribution (derangements
would exclude pairings the null allows). A small p (say ≤ 0.05) means the outputs carry
information about their own inputs; a constant output gets p = 1 (every pairing ties).

The control is a pure function of the per-sample outputs (hypotheses and references): the runner
stores it in the run JSON under ``control`` (schema in ``docs/results-schema.md``), and
``python -m harness.leaderboard.migrate`` fills it into older runs from their outputs JSONL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: shuffles averaged by default (5 derangements: the spread of one is a few BLEU points on 32
#: samples, the mean of five is stable to about one)
DEFAULT_SHUFFLES = 5
#: random permutations of the permutation test (p resolves down to 1/200 = 0.005)
DEFAULT_PERMUTATIONS = 199
#: the scores the control keeps, per task (the headline figures of the leaderboard)
CONTROL_KEYS: dict[str, tuple[str, ...]] = {
    "translation": ("bleu4", "rouge_l"),
    "recognition": ("wer",),
}

Scorer = Callable[[list[str], list[str]], dict[str, Any]]


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` with no fixed point (``n`` ≥ 2).

    Rejection sampling: about e ≈ 2.7 draws on average for any ``n``.
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 elements, got {n}")
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def _paired_count(hypotheses: Sequence[str], references: Sequence[str], draws: int,
                  name: str) -> int:
    """The number of samples, after checking the lists are parallel and ``draws`` ≥ 1."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if draws < 1:
        raise ValueError(f"{name} must be >= 1, got {draws}")
    return len(references)


def shuffled_reference_control(task: str, hypotheses: Sequence[str],
                               references: Sequence[str], scorer: Scorer, *,
                               shuffles: int = DEFAULT_SHUFFLES,
                               seed: int = 0) -> dict[str, Any] | None:
    """Mean scores of ``hypotheses`` against ``shuffles`` deranged copies of ``references``.

    Args:
        task: ``"translation"`` (keeps BLEU-4 and ROUGE-L) or ``"recognition"`` (keeps WER).
        hypotheses: system outputs, one per sample.
        references: each sample's own reference, parallel to ``hypotheses``.
        scorer: ``scorer(hypotheses, references) -> scores`` — the run's own corpus metric
            (``harness.evaluate.score`` with its language / cleanup), so the control and the
            headline figure use the same protocol.
        shuffles: derangements to average (≥ 1).
        seed: seed of the derangements (fixed: the control is deterministic).

    Returns:
        ``{"shuffles", "seed", "distinct_outputs", "samples", <score keys>}``, or ``None`` for
        fewer than two samples (no sample can take another's reference).
    """
    if task not in CONTROL_KEYS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(CONTROL_KEYS)}")
    n = _paired_count(hypotheses, references, shuffles, "shuffles")
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    keys = CONTROL_KEYS[task]
    totals = dict.fromkeys(keys, 0.0)
    hyps = list(hypotheses)
    for _ in range(shuffles):
        perm = derangement(n, rng)
        scores = scorer(hyps, [references[int(j)] for j in perm])
        for key in keys:
            totals[key] += float(scores[key])
    return {"shuffles": shuffles, "seed": seed, "samples": n,
            "distinct_outputs": len(set(hyps)),
            **{key: total / shuffles for key, total in totals.items()}}


def permutation_p_value(hypotheses: Sequence[str], references: Sequence[str],
                        metric: Callable[[list[str], list[str]], float], *,
                        higher_is_better: bool, permutations: int = DEFAULT_PERMUTATIONS,
                        seed: int = 0) -> float | None:
    """One-sided permutation-test p-value of "the outputs depend on their own inputs".

    Args:
        hypotheses: system outputs, one per sample.
        references: each sample's own reference, parallel to ``hypotheses``.
        metric: ``metric(hypotheses, references) -> float`` — the headline corpus score alone
            (e.g. BLEU-4 without ROUGE-L: it runs ``permutations + 1`` times).
        higher_is_better: True for BLEU, False for WER.
        permutations: random re-pairings drawn (≥ 1).
        seed: seed of the permutations (fixed: the p-value is deterministic).

    Returns:
        (1 + #{permutations scoring at least as well as the own pairing}) / (1 + permutations),
        or ``None`` for fewer than two samples (nothing to permute).
    """
    n = _paired_count(hypotheses, references, permutations, "permutations")
    if n < 2:
        return None
    hyps, refs = list(hypotheses), list(references)
    observed = float(metric(hyps, refs))
    rng = np.random.default_rng(seed)
    as_good = 0
    for _ in range(permutations):
        value = float(metric(hyps, [refs[int(j)] for j in rng.permutation(n)]))
        as_good += value >= observed if higher_is_better else value <= observed
    return (1 + as_good) / (1 + permutations)
