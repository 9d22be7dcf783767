"""Tests for the shuffled-reference control (``harness.metrics.control``) and where it surfaces:
the runner's run JSON, the run schema check and the leaderboard's columns."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from test_leaderboard import make_run, write_json

from harness.evaluate import score
from harness.metrics import (
    corpus_bleu,
    permutation_p_value,
    recognition_scores,
    shuffled_reference_control,
    translation_scores,
)
from harness.metrics.control import DEFAULT_PERMUTATIONS, derangement
from harness.results import RunFileError, validate_run

SENTENCES = ["am montag regnet es im norden", "im süden scheint die sonne",
             "morgen wird es kalt und windig", "die temperatur steigt auf zehn grad",
             "am abend gibt es gewitter im osten", "in der nacht bleibt es trocken"]


def _translation(h: list[str], r: list[str]) -> dict:
    return translation_scores(h, r, lang="de")


def test_derangement_moves_every_element():
    rng = np.random.default_rng(3)
    for n in (2, 3, 7, 32):
        for _ in range(20):
            perm = derangement(n, rng)
            assert sorted(perm.tolist()) == list(range(n))
            assert not np.any(perm == np.arange(n))
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1, rng)


def test_constant_output_scores_the_same_against_shuffled_references():
    """One sentence for every input (the sentence prior): shuffling the references only
    reorders the (hypothesis, reference) pairs, so corpus BLEU, ROUGE-L and WER are unchanged."""
    hyps = [SENTENCES[0]] * len(SENTENCES)
    own = _translation(hyps, SENTENCES)
    control = shuffled_reference_control("translation", hyps, SENTENCES, _translation)
    assert control["distinct_outputs"] == 1 and control["samples"] == len(SENTENCES)
    assert control["bleu4"] == pytest.approx(own["bleu4"])
    assert control["rouge_l"] == pytest.approx(own["rouge_l"])
    gloss = ["A B C", "D E", "F G H I"]
    control = shuffled_reference_control(
        "recognition", ["A B"] * 3, gloss, lambda h, r: recognition_scores(h, r))
    assert control["wer"] == pytest.approx(recognition_scores(["A B"] * 3, gloss)["wer"])


def test_input_dependent_output_loses_its_score_when_references_are_shuffled():
    """Perfect outputs over disjoint vocabularies: 100 BLEU against their own references and
    no matching n-gram against anyone else's (BLEU 0, WER ≥ 100 computed by hand: every
    reference word is substituted or deleted)."""
    refs = ["a b c d", "e f g h", "i j k l", "m n o p"]
    control = shuffled_reference_control("translation", refs, refs, _translation, shuffles=3)
    assert _translation(refs, refs)["bleu4"] == pytest.approx(100.0)
    assert control["bleu4"] == 0.0 and control["rouge_l"] == 0.0
    assert control["distinct_outputs"] == 4 and control["shuffles"] == 3
    glosses = ["A B", "C D", "E F"]
    control = shuffled_reference_control("recognition", glosses, glosses,
                                         lambda h, r: recognition_scores(h, r))
    assert control["wer"] == pytest.approx(100.0)


def test_control_is_deterministic_and_uses_the_given_scorer():
    hyps = [SENTENCES[(i + 1) % 6] for i in range(6)]
    calls: list[list[str]] = []

    def scorer(h, r):
        calls.append(list(r))
        return _translation(h, r)

    a = shuffled_reference_control("translation", hyps, SENTENCES, scorer, seed=4)
    b = shuffled_reference_control("translation", hyps, SENTENCES, _translation, seed=4)
    assert a == b and len(calls) == 5
    assert all(r != SENTENCES and sorted(r) == sorted(SENTENCES) for r in calls)
    # the mean of the five deranged scores, recomputed independently
    mean = np.mean([_translation(hyps, r)["bleu4"] for r in calls])
    assert a["bleu4"] == pytest.approx(mean)


def test_control_bad_input():
    assert shuffled_reference_control("translation", ["x"], ["y"], _translation) is None
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        shuffled_reference_control("translation", ["a", "b"], ["a", "b", "c"], _translation)
    with pytest.raises(ValueError, match="unknown task 'dance'"):
        shuffled_reference_control("dance", ["a", "b"], ["a", "b"], _translation)
    with pytest.raises(ValueError, match="shuffles must be >= 1"):
        shuffled_reference_control("translation", ["a", "b"], ["a", "b"], _translation,
                                   shuffles=0)


def _sacrebleu_slt_bleu4(h: list[str], r: list[str]) -> float:
    """Independent reference: sacrebleu called directly with the slt protocol's settings."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(max_ngram_order=4, tokenize="none", smooth_method="floor", smooth_value=0.0,
                effective_order=True)
    return float(bleu.corpus_score(h, [r]).score)


def test_corpus_bleu_is_translation_scores_bleu_alone():
    hyps = [SENTENCES[(i + 1) % 6] for i in range(3)] + SENTENCES[3:]
    for protocol in ("slt", "sacrebleu"):
        full = translation_scores(hyps, SENTENCES, lang="de", protocol=protocol)
        for n in (1, 2, 3, 4):
            assert corpus_bleu(hyps, SENTENCES, lang="de", order=n,
                               protocol=protocol) == pytest.approx(full[f"bleu{n}"])
    assert corpus_bleu(hyps, SENTENCES) == pytest.approx(_sacrebleu_slt_bleu4(hyps, SENTENCES))
    zh_h, zh_r = ["今天天气很好", "明天下雨"], ["今天天气不错", "明天会下雨"]
    assert corpus_bleu(zh_h, zh_r, lang="zh") == pytest.approx(
        translation_scores(zh_h, zh_r, lang="zh")["bleu4"])
    with pytest.raises(ValueError, match="BLEU order must be one of"):
        corpus_bleu(hyps, SENTENCES, order=5)
    with pytest.raises(ValueError, match="unknown protocol"):
        corpus_bleu(hyps, SENTENCES, protocol="nist")
    with pytest.raises(ValueError, match="2 hypotheses"):
        corpus_bleu(["a", "b"], ["a"])


def test_permutation_p_value_counts_re_pairings_scoring_at_least_as_well():
    """p = (1 + #{permutations at least as good}) / (1 + permutations), recounted here with the
    same seeded permutations and an independent BLEU."""
    hyps = [SENTENCES[(i + 1) % 6] for i in range(3)] + SENTENCES[3:]  # half right
    p = permutation_p_value(hyps, SENTENCES, _sacrebleu_slt_bleu4, higher_is_better=True,
                            permutations=50, seed=7)
    observed = _sacrebleu_slt_bleu4(hyps, SENTENCES)
    rng = np.random.default_rng(7)
    count = sum(_sacrebleu_slt_bleu4(hyps, [SENTENCES[j] for j in rng.permutation(6)])
                >= observed for _ in range(50))
    assert p == pytest.approx((1 + count) / 51)
    assert p == permutation_p_value(hyps, SENTENCES, _sacrebleu_slt_bleu4,
                                    higher_is_better=True, permutations=50, seed=7)


def test_permutation_p_value_extremes():
    """Outputs that are their own references over disjoint vocabularies: no other pairing is as
    good, so p is the smallest value 1 / (1 + permutations) (BLEU and WER); one sentence for
    every input ties under every pairing: p = 1."""
    refs = [f"w{i} x{i} y{i} z{i}" for i in range(8)]
    assert permutation_p_value(refs, refs, _sacrebleu_slt_bleu4,
                               higher_is_better=True) == 1 / (1 + DEFAULT_PERMUTATIONS)
    wer = lambda h, r: recognition_scores(h, r)["wer"]  # noqa: E731
    assert permutation_p_value(refs, refs, wer, higher_is_better=False,
                               permutations=20) == pytest.approx(1 / 21)
    assert permutation_p_value([refs[0]] * 8, refs, _sacrebleu_slt_bleu4,
                               higher_is_better=True, permutations=20) == 1.0
    assert permutation_p_value(["a b"] * 8, refs, wer, higher_is_better=False,
                               permutations=20) == 1.0


def test_permutation_p_value_bad_input():
    assert permutation_p_value(["x"], ["y"], _sacrebleu_slt_bleu4, higher_is_better=True) is None
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        permutation_p_value(["a", "b"], ["a", "b", "c"], _sacrebleu_slt_bleu4,
                            higher_is_better=True)
    with pytest.raises(ValueError, match="permutations must be >= 1"):
        permutation_p_value(["a", "b"], ["a", "b"], _sacrebleu_slt_bleu4,
                            higher_is_better=True, permutations=0)


def test_validate_run_checks_the_control_block():
    good = {"shuffles": 5, "seed": 0, "samples": 6, "distinct_outputs": 2, "bleu4": 3.5,
            "rouge_l": 20.0}
    validate_run(make_run(control=good))
    with pytest.raises(RunFileError, match=r"control\.bleu4"):
        validate_run(make_run(control={**good, "bleu4": "high"}), "r.json")
    missing = {k: v for k, v in good.items() if k != "distinct_outputs"}
    with pytest.raises(RunFileError, match=r"control\.distinct_outputs"):
        validate_run(make_run(control=missing), "r.json")
    tested = {**good, "permutations": 199, "p_value": 0.005}
    validate_run(make_run(control=tested))
    for bad, field in (({"p_value": 0.0}, "p_value"), ({"p_value": 1.5}, "p_value"),
                       ({"p_value": "small"}, "p_value"), ({"permutations": 0}, "permutations"),
                       ({"permutations": 2.5}, "permutations")):
        with pytest.raises(RunFileError, match=rf"control\.{field}"):
            validate_run(make_run(control={**tested, **bad}), "r.json")
    alone = {k: v for k, v in tested.items() if k != "permutations"}
    with pytest.raises(RunFileError, match="come together"):
        validate_run(make_run(control=alone), "r.json")


def test_leaderboard_shows_the_control_from_the_run_or_its_outputs(tmp_path):
    """Older runs get their control from their outputs JSONL once, by the migration; the
    leaderboard then shows what the run JSON stores."""
    from harness.leaderboard import build_leaderboard
    from harness.leaderboard.migrate import migrate_runs

    hyps = [SENTENCES[0]] * 3 + SENTENCES[3:]
    lines = [json.dumps({"name": f"s{i}", "reference": r, "hypothesis": h})
             for i, (h, r) in enumerate(zip(hyps, SENTENCES, strict=True))]
    (tmp_path / "out.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    without = write_json(tmp_path / "a.json", make_run(outputs="out.jsonl"))
    stored = {"shuffles": 5, "seed": 0, "samples": 32, "distinct_outputs": 30, "bleu4": 1.25,
              "rouge_l": 9.0}
    with_control = write_json(tmp_path / "b.json",
                          make_run(outputs=None, split="dev", control=stored))
    # an older run: a stored control (kept as is) and outputs the p-value is computed from
    older = write_json(tmp_path / "c.json", make_run(outputs="out.jsonl", split="train",
                                                  control={**stored, "bleu4": 7.5}))
    migrate_runs([without, with_control, older])
    build_leaderboard([without, with_control, older], [], tmp_path / "res")
    with open(tmp_path / "res" / "leaderboard-full.csv", encoding="utf-8") as f:
        rows = {r["split"]: r for r in csv.DictReader(f)}
    expected = shuffled_reference_control(
        "translation", hyps, SENTENCES, lambda h, r: score("translation", h, r, lang="de"))
    assert rows["test"]["distinct outputs"] == "4/6"
    assert float(rows["test"]["BLEU-4 shuffled refs"]) == pytest.approx(expected["bleu4"],
                                                                        abs=1e-6)
    assert rows["dev"]["distinct outputs"] == "30/32"
    assert rows["dev"]["BLEU-4 shuffled refs"] == "1.25" and rows["dev"]["WER shuffled refs"] == ""
    # the permutation test: computed from the JSONL; a stored control without it and without
    # outputs to compute it from leaves the cell empty
    p_expected = permutation_p_value(hyps, SENTENCES, lambda h, r: corpus_bleu(h, r, lang="de"),
                                     higher_is_better=True)
    assert float(rows["test"]["p (permuted refs)"]) == pytest.approx(p_expected)
    assert rows["dev"]["p (permuted refs)"] == ""
    assert rows["train"]["BLEU-4 shuffled refs"] == "7.5"
    assert float(rows["train"]["p (permuted refs)"]) == pytest.approx(p_expected)
    md = (tmp_path / "res" / "leaderboard.md").read_text(encoding="utf-8")
    assert "shuffled refs" in md and "does not come" in md and "permutation-test" in md

    (tmp_path / "out.jsonl").write_text('{"name": "s0"}\n{"name": "s1"}\n', encoding="utf-8")
    unmigrated = write_json(tmp_path / "a.json", make_run(outputs="out.jsonl"))  # no control again
    with pytest.raises(RunFileError, match=r"out\.jsonl: per-sample outputs"):
        migrate_runs([unmigrated])
