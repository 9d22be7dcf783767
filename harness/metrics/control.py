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

The control is a pure function of the per-sample outputs (hypotheses and references), so the
leaderboard can compute it for any run whose outputs JSONL is committed; the runner stores it in
the run JSON under ``control`` (schema in ``docs/results-schema.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: shuffles averaged by default (5 derangements: the spread of one is a few BLEU points on 32
#: samples, the mean of five is stable to about one)
DEFAULT_SHUFFLES = 5
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
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if shuffles < 1:
        raise ValueError(f"shuffles must be >= 1, got {shuffles}")
    n = len(references)
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
