"""Accuracy metrics with reproducible signatures: translation (BLEU, ROUGE-L, chrF) and WER.

- :func:`translation_scores` — BLEU-1..4 and ROUGE-L under the ``slt`` protocol (comparable with
  signjoey / SLRT tables) or the ``sacrebleu`` protocol (adds chrF).
- :func:`recognition_scores` — corpus-pooled gloss WER with S / D / I, optional PHOENIX cleanup.
- :func:`clean_phoenix_glosses` — the published PHOENIX-2014T gloss cleanup on its own.
- :func:`shuffled_reference_control` — the same outputs scored against other samples'
  references: how much of a score comes from the input (see :mod:`harness.metrics.control`);
  :func:`permutation_p_value` — whether that gap is more than noise (a permutation test).
- :func:`corpus_bleu` — one BLEU order alone, as :func:`translation_scores` computes it.
- :func:`confidence_intervals`, :func:`paired_tests` — sacrebleu's bootstrap CIs and paired
  significance tests of BLEU-4, ROUGE-L and WER (see :mod:`harness.metrics.significance`).

Every result carries a ``signature`` string naming the protocol, tokenisation and library
versions, so that a number in a results table can be reproduced.
"""

from harness.metrics.cleanup import clean_phoenix_glosses
from harness.metrics.control import permutation_p_value, shuffled_reference_control
from harness.metrics.recognition import recognition_scores
from harness.metrics.significance import confidence_intervals, paired_tests
from harness.metrics.translation import corpus_bleu, translation_scores

__all__ = ["clean_phoenix_glosses", "confidence_intervals", "corpus_bleu", "paired_tests",
           "permutation_p_value", "recognition_scores", "shuffled_reference_control",
           "translation_scores"]
