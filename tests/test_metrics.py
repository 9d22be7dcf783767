"""Tests for harness.metrics against independent references.

Every expected number comes from outside the code under test: a direct sacrebleu / rouge-score /
jiwer call written here with the protocol's settings, a value worked out by hand, or arithmetic
done in the test. The implementation is only ever the thing being checked.
"""

from __future__ import annotations

import unicodedata
from fractions import Fraction

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from harness.metrics.cleanup import clean_phoenix_glosses
from harness.metrics.recognition import recognition_scores
from harness.metrics.translation import translation_scores

BETA = 1.2

DE_HYPS = [
    "am donnerstag gibt es im süden gewitter",
    "über den alpen schneit es",
    "morgen wird es kühler und regnerisch",
    "im norden weht ein frischer wind",
]
DE_REFS = [
    "am donnerstag gibt es gewitter im süden",
    "über den alpen schneit es heute",
    "morgen wird es kühl und regnerisch",
    "der wind weht frisch aus norden",
]
ZH_HYPS = ["今天天气很好", "明天下雨了", "北京 冬天 很 冷"]
ZH_REFS = ["今天 天气 很 好", "明天 会 下雨", "北京的冬天非常冷"]


# ---------------------------------------------------------------- independent reference helpers
class _Whitespace:
    def tokenize(self, text: str) -> list[str]:
        return text.split()


class _Chars:
    def tokenize(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]


def _char_spaced(text: str) -> str:
    return " ".join(c for c in text if not c.isspace())


def _slt_bleu(hyps: list[str], refs: list[str], n: int) -> float:
    bleu = BLEU(
        max_ngram_order=n,
        tokenize="none",
        smooth_method="floor",
        smooth_value=0.0,
        effective_order=True,
    )
    return bleu.corpus_score(hyps, [refs]).score


def _fbeta_by_hand(p: float, r: float) -> float:
    if p == 0 or r == 0:
        return 0.0
    return (1 + BETA**2) * p * r / (r + BETA**2 * p)


def _rouge_mean(hyps: list[str], refs: list[str], tokenizer: object, beta: bool) -> float:
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizer)
    vals = []
    for h, r in zip(hyps, refs, strict=True):
        s = scorer.score(r, h)["rougeL"]
        vals.append(_fbeta_by_hand(s.precision, s.recall) if beta else s.fmeasure)
    return 100 * sum(vals) / len(vals)


# ------------------------------------------------------------------------ slt protocol: German
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_slt_bleu_german_matches_direct_sacrebleu(n: int) -> None:
    got = translation_scores(DE_HYPS, DE_REFS, lang="de")
    assert got[f"bleu{n}"] == pytest.approx(_slt_bleu(DE_HYPS, DE_REFS, n), abs=1e-9)


def test_slt_bleu_orders_are_distinct_and_cumulative() -> None:
    got = translation_scores(DE_HYPS, DE_REFS)
    # cumulative BLEU falls with the order on imperfect output; identical values would mean the
    # order was not passed (sacrebleu's own signature does not record it).
    assert got["bleu1"] > got["bleu2"] > got["bleu3"] > got["bleu4"] > 0


def test_slt_rouge_german_matches_rouge_score_with_hand_beta() -> None:
    got = translation_scores(DE_HYPS, DE_REFS)
    assert got["rouge_l"] == pytest.approx(_rouge_mean(DE_HYPS, DE_REFS, _Whitespace(), True))


def test_rouge_beta_formula_on_hand_lcs_examples() -> None:
    # hyp "a b c d", ref "a c d e": LCS "a c d" = 3, P = R = 3/4 -> F_beta = 3/4 for any beta.
    got = translation_scores(["a b c d"], ["a c d e"])["rouge_l"]
    assert got == pytest.approx(75.0)
    # hyp "a b c d e f", ref "a c e": LCS 3, P = 1/2, R = 1.
    # F_1.2 = 2.44 * 1/2 / (1 + 1.44/2) = 1.22 / 1.72 = 61/86 (F1 would be 2/3).
    p, r, b2 = Fraction(1, 2), Fraction(1), Fraction(144, 100)
    expected = (1 + b2) * p * r / (r + b2 * p)
    assert expected == Fraction(61, 86)
    got = translation_scores(["a b c d e f"], ["a c e"])["rouge_l"]
    assert got == pytest.approx(100 * float(expected))
    assert got != pytest.approx(100 * 2 / 3)


def test_default_rouge_tokenizer_would_lose_umlauts() -> None:
    # rouge-score's default tokenizer deletes non-ASCII letters: "über" -> "ber", and "schön" /
    # "schän" both become the tokens ("sch", "n"), a perfect match...
    default = rouge_scorer.RougeScorer(["rougeL"])
    assert default.score("über", "über")["rougeL"].fmeasure == 1.0
    assert default.score("schän", "schön")["rougeL"].fmeasure == 1.0
    # ...so a correct implementation must score them as different words.
    assert translation_scores(["schön"], ["schän"])["rouge_l"] == 0.0
    assert translation_scores(["über den alpen"], ["ber den alpen"])["rouge_l"] < 100.0
    assert translation_scores(["schön"], ["schön"])["rouge_l"] == pytest.approx(100.0)
    # and it returns nothing at all for Chinese:
    assert rouge_scorer.RougeScorer(["rougeL"]).score("今天", "今天")["rougeL"].fmeasure == 0.0


# ------------------------------------------------------------------------ slt protocol: Chinese
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_slt_bleu_chinese_is_char_level_sacrebleu(n: int) -> None:
    got = translation_scores(ZH_HYPS, ZH_REFS, lang="zh")
    hyps = [_char_spaced(h) for h in ZH_HYPS]
    refs = [_char_spaced(r) for r in ZH_REFS]
    assert got[f"bleu{n}"] == pytest.approx(_slt_bleu(hyps, refs, n), abs=1e-9)


def test_slt_rouge_chinese_matches_rouge_score_char_tokens() -> None:
    got = translation_scores(ZH_HYPS, ZH_REFS, lang="zh")
    assert got["rouge_l"] == pytest.approx(_rouge_mean(ZH_HYPS, ZH_REFS, _Chars(), True))


def test_chinese_char_level_differs_from_word_level() -> None:
    hyp, ref = ["今天天气很好"], ["今天 天气 很 好"]
    as_zh = translation_scores(hyp, ref, lang="zh")
    as_words = translation_scores(hyp, ref, lang="de")  # whitespace tokens
    assert as_zh["bleu4"] == pytest.approx(100.0)
    assert as_zh["rouge_l"] == pytest.approx(100.0)
    assert as_words["bleu1"] == 0.0
    assert as_words["rouge_l"] == 0.0
    assert "tok:char" in as_zh["signature"]
    assert "tok:whitespace" in as_words["signature"]


@pytest.mark.parametrize("lang", ["ja", "zh-CN", "ZH_Hans"])
def test_cjk_variants_are_char_level(lang: str) -> None:
    got = translation_scores(["明日 は 雨"], ["明日は雨"], lang=lang)
    assert got["bleu4"] == pytest.approx(100.0)
    assert got["rouge_l"] == pytest.approx(100.0)


# ------------------------------------------------------------------------ sacrebleu protocol
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_sacrebleu_protocol_german_matches_13a(n: int) -> None:
    hyps = [*DE_HYPS, "Es regnet, oder?"]
    refs = [*DE_REFS, "Es regnet."]
    got = translation_scores(hyps, refs, lang="de", protocol="sacrebleu")
    direct = BLEU(max_ngram_order=n).corpus_score(hyps, [refs]).score  # defaults: 13a, exp
    assert got[f"bleu{n}"] == pytest.approx(direct, abs=1e-9)
    assert got["chrf"] == pytest.approx(CHRF().corpus_score(hyps, [refs]).score)
    assert got["rouge_l"] == pytest.approx(_rouge_mean(hyps, refs, _Whitespace(), False))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_sacrebleu_protocol_chinese_matches_zh_tokenizer(n: int) -> None:
    got = translation_scores(ZH_HYPS, ZH_REFS, lang="zh", protocol="sacrebleu")
    direct = BLEU(max_ngram_order=n, tokenize="zh").corpus_score(ZH_HYPS, [ZH_REFS]).score
    assert got[f"bleu{n}"] == pytest.approx(direct, abs=1e-9)
    assert got["chrf"] == pytest.approx(CHRF().corpus_score(ZH_HYPS, [ZH_REFS]).score)
    assert got["rouge_l"] == pytest.approx(_rouge_mean(ZH_HYPS, ZH_REFS, _Chars(), False))


def test_signatures_name_protocol_settings_and_versions() -> None:
    slt = translation_scores(DE_HYPS, DE_REFS)["signature"]
    for part in ("signbench-slt", "tok:whitespace", "bleu:1-4", "floor0", "beta:1.2"):
        assert part in slt
    for part in ("case:mixed", "sacrebleu:2.", "rouge-score:0.", "signbench:"):
        assert part in slt
    sb = translation_scores(DE_HYPS, DE_REFS, protocol="sacrebleu")
    assert set(sb) == {"bleu1", "bleu2", "bleu3", "bleu4", "chrf", "rouge_l", "signature"}
    assert "signbench-sacrebleu" in sb["signature"]
    assert "tok:13a|smooth:exp" in sb["signature"]  # the sacrebleu 4-gram BLEU signature
    zh = translation_scores(ZH_HYPS, ZH_REFS, lang="zh", protocol="sacrebleu")["signature"]
    assert "tok:zh" in zh


def test_result_keys_and_types() -> None:
    got = translation_scores(DE_HYPS, DE_REFS)
    assert set(got) == {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "signature"}
    assert all(type(got[k]) is float for k in got if k != "signature")


# ------------------------------------------------------------------------ normalisation, edges
def test_nfc_composed_and_decomposed_umlauts_score_the_same() -> None:
    decomposed = [unicodedata.normalize("NFD", h) for h in DE_HYPS]
    assert decomposed != DE_HYPS
    assert translation_scores(decomposed, DE_REFS) == translation_scores(DE_HYPS, DE_REFS)
    perfect = translation_scores(["u\u0308ber den alpen"], ["\u00fcber den alpen"])
    assert perfect["bleu3"] == pytest.approx(100.0)
    assert perfect["rouge_l"] == pytest.approx(100.0)


def test_whitespace_runs_are_collapsed() -> None:
    messy = ["  am  donnerstag\tgibt es im süden gewitter ", *DE_HYPS[1:]]
    assert translation_scores(messy, DE_REFS) == translation_scores(DE_HYPS, DE_REFS)


def test_empty_hypothesis_scores_zero_for_its_sentence() -> None:
    hyps = ["", "über den alpen schneit es"]
    refs = ["am donnerstag gibt es gewitter", "über den alpen schneit es"]
    got = translation_scores(hyps, refs)
    assert got["rouge_l"] == pytest.approx(50.0)  # (0 + 100) / 2
    for n in (1, 2, 3, 4):
        assert got[f"bleu{n}"] == pytest.approx(_slt_bleu(hyps, refs, n), abs=1e-9)
    assert translation_scores([""], ["über den alpen"])["bleu1"] == 0.0


def test_translation_input_errors() -> None:
    with pytest.raises(ValueError, match=r"2 hypotheses but 3 references"):
        translation_scores(["a", "b"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="empty"):
        translation_scores([], [])
    with pytest.raises(ValueError, match="references are empty"):
        translation_scores(["a", "b"], ["", "  "])
    with pytest.raises(ValueError, match="unknown protocol"):
        translation_scores(["a"], ["a"], protocol="bleurt")
    with pytest.raises(TypeError, match="lang"):
        translation_scores(["a"], ["a"], lang=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"hypotheses\[1\]"):
        translation_scores(["a", 3], ["a", "b"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"references\[0\]"):
        translation_scores(["a"], [None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="list of strings"):
        translation_scores("a b", "a b")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ recognition (WER)
def test_wer_hand_worked_single_sentence() -> None:
    # ref A B C D / hyp A X C D E: B->X is 1 substitution, E is 1 insertion; 4 reference words.
    got = recognition_scores(["A X C D E"], ["A B C D"])
    assert got["n_ref_words"] == 4
    assert got["sub"] == pytest.approx(25.0)
    assert got["del"] == 0.0
    assert got["ins"] == pytest.approx(25.0)
    assert got["wer"] == pytest.approx(50.0)


def test_wer_is_corpus_pooled_not_sentence_mean() -> None:
    # sentence 1: 1 deletion of 2 words (50 %); sentence 2: perfect, 3 words.
    # pooled: 1 / 5 = 20 %; a mean of sentence WERs would give 25 %.
    got = recognition_scores(["REGEN", "MORGEN WIND STARK"], ["REGEN SONNE", "MORGEN WIND STARK"])
    assert got["wer"] == pytest.approx(20.0)
    assert got["del"] == pytest.approx(20.0)
    assert got["n_ref_words"] == 5


def test_wer_matches_direct_jiwer_on_nonempty_corpus() -> None:
    hyps = ["A B C", "X Y", "HEUTE REGEN REGEN"]
    refs = ["A C D", "X Y Z", "MORGEN REGEN"]
    direct = jiwer.process_words(refs, hyps)
    got = recognition_scores(hyps, refs)
    assert got["wer"] == pytest.approx(100 * direct.wer)
    n = sum(len(r.split()) for r in refs)
    assert got["sub"] == pytest.approx(100 * direct.substitutions / n)
    assert got["del"] == pytest.approx(100 * direct.deletions / n)
    assert got["ins"] == pytest.approx(100 * direct.insertions / n)


def test_wer_with_phoenix_cleanup_hand_worked() -> None:
    refs = [
        "__ON__ loc-REGEN NORDRAUM A B C __OFF__",  # -> REGEN NORD A+B+C (3 words)
        "cl-KOMMEN WIE AUSSEHEN HEUTE",  # -> KOMMEN WIE-AUSSEHEN HEUTE (3 words)
    ]
    hyps = [
        "REGEN REGEN-PLUSPLUS NORD A+B+C WIND",  # -> REGEN NORD A+B+C WIND: 1 insertion
        "__EMOTION__ KOMMEN WIE AUSSEHEN MORGEN",  # -> KOMMEN WIE-AUSSEHEN MORGEN: 1 sub
    ]
    got = recognition_scores(hyps, refs, cleanup="phoenix14t")
    assert got["n_ref_words"] == 6
    assert got["sub"] == pytest.approx(100 / 6)
    assert got["del"] == 0.0
    assert got["ins"] == pytest.approx(100 / 6)
    assert got["wer"] == pytest.approx(200 / 6)
    assert "cleanup:phoenix14t" in got["signature"]
    assert "jiwer:" in got["signature"]
    raw = recognition_scores(hyps, refs)
    assert raw["wer"] > got["wer"]
    assert "cleanup:none" in raw["signature"]


def test_wer_empty_reference_sentence_counts_insertions() -> None:
    # documented choice: an empty reference adds its hypothesis words as insertions.
    got = recognition_scores(["A B", "C"], ["", "C"])
    assert got["n_ref_words"] == 1
    assert got["ins"] == pytest.approx(200.0)
    assert got["wer"] == pytest.approx(200.0)


def test_wer_empty_hypothesis_counts_deletions() -> None:
    got = recognition_scores(["", "C"], ["A B", "C"])
    assert got["del"] == pytest.approx(200 / 3)
    assert got["wer"] == pytest.approx(200 / 3)


def test_wer_errors() -> None:
    with pytest.raises(ValueError, match="references are empty after 'phoenix14t'"):
        recognition_scores(["A"], ["__ON__ __OFF__"], cleanup="phoenix14t")
    with pytest.raises(ValueError, match="references are empty"):
        recognition_scores(["A"], [""])
    with pytest.raises(ValueError, match="unknown cleanup"):
        recognition_scores(["A"], ["A"], cleanup="phoenix2015")
    with pytest.raises(ValueError, match=r"1 hypotheses but 2 references"):
        recognition_scores(["A"], ["A", "B"])
    with pytest.raises(ValueError, match="empty"):
        recognition_scores([], [])


def test_wer_nfc() -> None:
    got = recognition_scores([unicodedata.normalize("NFD", "MÜNCHEN SÜD")], ["MÜNCHEN SÜD"])
    assert got["wer"] == 0.0


# ------------------------------------------------------------------------ PHOENIX cleanup rules
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        # 1. annotation markers dropped
        ("__ON__ REGEN __OFF__", "REGEN"),
        ("__EMOTION__ __LEFTHAND__ SONNE __EPENTHESIS__ __PU__", "SONNE"),
        # 2. loc- / cl- prefixes stripped (repeatedly); a bare prefix disappears
        ("loc-HIER cl-KOMMEN", "HIER KOMMEN"),
        ("cl-loc-HIER loc-", "HIER"),
        # 3. -PLUSPLUS suffix stripped
        ("REGEN-PLUSPLUS WOLKE", "REGEN WOLKE"),
        # 4. XXRAUM -> XX, bare RAUM kept
        ("NORDRAUM RAUM", "NORD RAUM"),
        # 5. WIE AUSSEHEN compound
        ("WIE AUSSEHEN WETTER", "WIE-AUSSEHEN WETTER"),
        ("WIE MORGEN", "WIE MORGEN"),
        # 6. fingerspelling joined with +
        ("A B C", "A+B+C"),
        ("HEISSEN M A R I E", "HEISSEN M+A+R+I+E"),
        ("A+B C", "A+B+C"),
        ("SCH A", "SCH+A"),
        ("SCH NN", "SCH NN"),
        ("X REGEN Y", "X REGEN Y"),
        ("a b", "a b"),
        # 7. consecutive duplicates collapsed (also when cleanup creates them)
        ("REGEN REGEN SONNE REGEN", "REGEN SONNE REGEN"),
        ("REGEN loc-REGEN REGEN-PLUSPLUS", "REGEN"),
        # 8. whitespace normalised
        ("  REGEN \t SONNE  ", "REGEN SONNE"),
        ("", ""),
    ],
)
def test_phoenix_cleanup_rules(raw: str, clean: str) -> None:
    assert clean_phoenix_glosses(raw) == clean


_GLOSSES = [
    "A", "B", "SCH", "NN", "A+B", "REGEN", "loc-REGEN", "REGEN-PLUSPLUS", "NORDRAUM", "RAUM",
    "WIE", "AUSSEHEN", "__ON__", "__OFF__", "cl-KOMMEN", "KOMMEN",
]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_GLOSSES), max_size=10))
def test_phoenix_cleanup_is_idempotent_and_wer_adds_up(tokens: list[str]) -> None:
    text = " ".join(tokens)
    once = clean_phoenix_glosses(text)
    assert clean_phoenix_glosses(once) == once
    assert "__" not in once and "loc-" not in once and "PLUSPLUS" not in once
    ref = "REGEN SONNE A B"
    got = recognition_scores([text], [ref], cleanup="phoenix14t")
    assert got["wer"] == pytest.approx(got["sub"] + got["del"] + got["ins"])


def test_public_api_is_reexported_from_the_package() -> None:
    import harness.metrics as metrics

    assert metrics.translation_scores is translation_scores
    assert metrics.recognition_scores is recognition_scores
    assert metrics.clean_phoenix_glosses is clean_phoenix_glosses
