"""Text side: tokenizers, gloss vocabulary, pseudo-glosses (harness.text)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from harness.text import (
    GlossVocab,
    GlossVocabError,
    PseudoGlossError,
    PseudoGlossExtractor,
    TextTokenizer,
    TokenizerError,
    train_tokenizer,
)
from harness.text.pseudo_gloss import tagger_available

DE = [
    "Morgen regnet es im Süden, und die Temperaturen steigen auf zwanzig Grad.",
    "Im Norden gibt es starke Gewitter, später überall Schnee.",
    "Am Wochenende wird es wärmer, die Sonne scheint über Bayern.",
    "Nachts fällt der Regen, es bleibt kühl und grau.",
    "Über den Alpen entstehen dichte Wolken und Schauer.",
    "Die Straßen bleiben nass, Grüße aus Köln!",
]
EN = [
    "Tomorrow it will rain heavily in the north.",
    "My name is Anna and I live in Boston.",
    "The sun shines over the mountains in the south.",
]
ZH = ["明天北方地区有大雨，气温将升高到二十度。", "今天南方晴天，夜里有雷阵雨。", "周末天气转暖。"]


# ---------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "char"])
def test_tokenizer_roundtrip_german(kind):
    tok = train_tokenizer(DE, vocab_size=150, lang="de", kind=kind)
    for s in DE:
        ids = tok.encode(s)
        assert ids[0] == tok.bos_id == 1 and ids[-1] == tok.eos_id == 2
        assert tok.decode(ids) == s  # umlauts, ß, punctuation attached
    assert tok.encode(DE[0], add_special=False) == tok.encode(DE[0])[1:-1]


def test_tokenizer_specials_and_vocab_bound():
    tok = train_tokenizer(DE, vocab_size=80, lang="de")
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert [tok.tokenizer.id_to_token(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert tok.vocab_size <= 80
    # subword pieces of the training words: more than one token for a long rare word
    assert len(tok.encode("Temperaturen", add_special=False)) >= 2


def test_tokenizer_whitespace_normalised():
    tok = train_tokenizer(DE, vocab_size=150, lang="de")
    assert tok.decode(tok.encode("  Morgen   regnet es ")) == "Morgen regnet es"


def test_tokenizer_chinese_char_level():
    tok = train_tokenizer(ZH, lang="zh")
    assert tok.kind == "char"
    s = ZH[0]
    assert tok.tokens(s) == list(s)  # one token per character
    assert tok.decode(tok.encode(s)) == s
    assert tok.decode(tok.encode("明天 北方")) == "明天北方"  # spaces removed for zh
    unseen = tok.encode("鑫", add_special=False)
    assert unseen == [tok.unk_id]


def test_tokenizer_training_deterministic():
    a = train_tokenizer(DE * 2, vocab_size=120, lang="de")
    b = train_tokenizer(DE * 2, vocab_size=120, lang="de")
    assert a.tokenizer.to_str() == b.tokenizer.to_str()


def test_tokenizer_save_load_identical(tmp_path):
    for lang, texts in (("de", DE), ("zh", ZH)):
        tok = train_tokenizer(texts, vocab_size=120, lang=lang)
        tok.save(tmp_path / lang)
        meta = json.loads((tmp_path / lang / "signbench_tokenizer.json").read_text("utf-8"))
        assert meta["lang"] == lang and meta["kind"] == tok.kind
        back = TextTokenizer.load(tmp_path / lang)
        assert back.kind == tok.kind and back.vocab_size == tok.vocab_size
        for s in [*texts, "Wetter ändert sich", "天气"]:
            assert back.encode(s) == tok.encode(s)
            assert back.decode(back.encode(s)) == tok.decode(tok.encode(s))


def test_tokenizer_load_errors(tmp_path):
    with pytest.raises(TokenizerError, match=r"tokenizer\.json: missing"):
        TextTokenizer.load(tmp_path)
    tok = train_tokenizer(DE, vocab_size=100, lang="de")
    tok.save(tmp_path / "t")
    (tmp_path / "t" / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"tokenizer\.json"):
        TextTokenizer.load(tmp_path / "t")


def test_from_pretrained_dir(tmp_path):
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "wetter": 4, "gut": 5}
    hf = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    d = tmp_path / "hf"
    d.mkdir()
    hf.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"pad_token": "[PAD]", "unk_token": {"content": "[UNK]"}, "bos_token": "[CLS]",
         "eos_token": "[SEP]"}), encoding="utf-8")
    tok = TextTokenizer.from_pretrained_dir(d)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.encode("wetter gut regen", add_special=False) == [4, 5, 1]
    assert tok.vocab_size == 6
    tok.save(tmp_path / "saved")
    back = TextTokenizer.load(tmp_path / "saved")
    assert back.kind == "pretrained" and back.pad_id == 0 and back.eos_id == 3
    assert back.encode("gut wetter", add_special=False) == [5, 4]
    # the folder's own template does not matter: encode frames the text as <s> text </s>
    assert tok.encode("wetter gut") == [2, 4, 5, 3]
    with pytest.raises(TokenizerError, match="does not exist"):
        TextTokenizer.from_pretrained_dir(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "spiece.model").write_bytes(b"x")
    with pytest.raises(TokenizerError, match=r"tokenizer.json: missing.*spiece.model"):
        TextTokenizer.from_pretrained_dir(empty)


# ---------------------------------------------------------------- gloss vocabulary
def test_gloss_vocab_order_and_codec(tmp_path):
    glosses = ["MORGEN REGEN SUED", "REGEN NORD", "SONNE REGEN NORD", None]
    v = GlossVocab.build(glosses)
    # specials, then by frequency (REGEN 3, NORD 2), ties by name (MORGEN < SONNE < SUED)
    assert v.itos == ["<blank>", "<pad>", "<unk>", "REGEN", "NORD", "MORGEN", "SONNE", "SUED"]
    assert (v.blank_id, v.pad_id, v.unk_id) == (0, 1, 2)
    assert v.encode("REGEN SUED SCHNEE") == [3, 7, 2]
    assert v.decode([0, 3, 0, 7, 1, 1]) == "REGEN SUED"
    assert v.decode([3, 2]) == "REGEN <unk>"
    assert GlossVocab.build(reversed(glosses)) == v  # sample order does not matter
    v.save(tmp_path / "g.json")
    assert GlossVocab.load(tmp_path / "g.json") == v
    assert GlossVocab.build(glosses, min_freq=2).tokens == ["REGEN", "NORD"]


def test_gloss_vocab_errors(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        GlossVocab.build(["A <blank>"])
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"format": 1, "specials": ["<pad>"], "tokens": []}), "utf-8")
    with pytest.raises(GlossVocabError, match=r"bad\.json: field 'specials'"):
        GlossVocab.load(p)
    p.write_text(json.dumps({"format": 1, "specials": ["<blank>", "<pad>", "<unk>"],
                             "tokens": ["A", "A"]}), "utf-8")
    with pytest.raises(GlossVocabError, match="twice"):
        GlossVocab.load(p)


# ---------------------------------------------------------------- pseudo-glosses
needs_hanta = pytest.mark.skipif(not tagger_available("de"), reason="HanTa not installed")
needs_jieba = pytest.mark.skipif(not tagger_available("zh"), reason="jieba not installed")


@needs_hanta
def test_pseudo_gloss_german():
    ext = PseudoGlossExtractor("de", max_doc_freq=1.0, backend="tagger").fit(DE)
    assert ext.extract(DE[0]) == ["MORGEN", "REGNEN", "ES", "SÜDEN", "TEMPERATUR", "STEIGEN",
                                  "ZWANZIG", "GRAD"]
    # function words (in, und, die, auf, wird) dropped; lemmas (starke -> STARK, gibt -> GEBEN)
    assert ext.extract("Im Norden gibt es starke Gewitter.") == ["NORDEN", "GEBEN", "ES",
                                                                  "STARK", "GEWITTER"]


@needs_hanta
def test_pseudo_gloss_frequent_lemmas_dropped(tmp_path):
    s = ["Morgen gibt es Regen.", "Im Süden fällt Regen.", "Im Norden scheint die Sonne.",
         "Abends kommt Schnee.", "Nachts wird es kalt."]
    # REGEN and ES occur in 2 of 5 sentences = 40 %: dropped (>= 40 %); the rest in 1 (20 %)
    ext = PseudoGlossExtractor("de", backend="tagger").fit(s)
    assert ext.doc_freq["REGEN"] == 2 and ext.doc_freq["ES"] == 2 and ext.doc_freq["SONNE"] == 1
    assert ext.dropped == {"REGEN", "ES"}
    assert [ext.extract(x) for x in s] == [
        ["MORGEN", "GEBEN"], ["SÜDEN", "FALLEN"], ["NORDEN", "SCHEINEN", "SONNE"],
        ["ABENDS", "KOMMEN", "SCHNEE"], ["NACHTS", "KALT"]]
    assert ext.vocabulary == sorted(ext.vocabulary) and "REGEN" not in ext.vocabulary
    assert ext.extract("Regen und Hagel") == ["HAGEL"]  # unseen lemma kept, frequent one not
    ext.save(tmp_path / "pg.json")
    back = PseudoGlossExtractor.load(tmp_path / "pg.json")
    assert back.dropped == ext.dropped and back.extract(s[0]) == ext.extract(s[0])
    loose = PseudoGlossExtractor("de", max_doc_freq=0.41, backend="tagger").fit(s)
    assert loose.dropped == set() and loose.extract(s[0]) == ["MORGEN", "GEBEN", "ES", "REGEN"]


@needs_hanta
def test_pseudo_gloss_english():
    ext = PseudoGlossExtractor("en", max_doc_freq=1.0, backend="tagger").fit(EN)
    assert ext.extract(EN[0]) == ["TOMORROW", "IT", "RAIN", "HEAVILY", "NORTH"]
    assert ext.extract(EN[1]) == ["MY", "NAME", "ANNA", "I", "LIVE", "BOSTON"]


@needs_jieba
def test_pseudo_gloss_chinese():
    ext = PseudoGlossExtractor("zh", max_doc_freq=1.0, backend="tagger").fit(ZH)
    out = ext.extract(ZH[0])
    assert out[0] == "明天" and "大雨" in out and "气温" in out and "升高" in out
    assert "，" not in out and "。" not in out  # punctuation dropped
    assert "的" not in ext.extract("今天的天气")  # structural particle dropped
    ext40 = PseudoGlossExtractor("zh", backend="tagger").fit([*ZH, "明天有雨。"])
    assert "有" in ext40.dropped  # in 2 of 4 sentences = 50 %


def test_pseudo_gloss_rules_fallback():
    ext = PseudoGlossExtractor("de", max_doc_freq=1.0, backend="rules").fit(DE)
    assert ext.extract("Im Norden gibt es starke Gewitter.") == ["NORDEN", "GIBT", "ES",
                                                                  "STARKE", "GEWITTER"]
    zh = PseudoGlossExtractor("zh", max_doc_freq=1.0, backend="rules").fit(ZH)
    # single characters minus stop characters (的); 天 is in every training sentence: dropped
    assert zh.extract("天气的变化") == ["气", "变", "化"]


def test_pseudo_gloss_auto_falls_back_with_warning(monkeypatch):
    import harness.text.pseudo_gloss as pg

    monkeypatch.setattr(pg, "tagger_available", lambda lang: False)
    with pytest.warns(UserWarning, match="HanTa is not installed"):
        ext = PseudoGlossExtractor("en")
    assert ext.backend == "rules"
    assert ext.fit(EN).extract("The rain is in the north") == ["RAIN", "NORTH"]


@needs_jieba
def test_taggers_lazy_and_jieba_quiet():
    code = ("import sys, harness.text as t\n"
            "assert 'jieba' not in sys.modules and 'HanTa' not in sys.modules\n"
            "e = t.PseudoGlossExtractor('zh', max_doc_freq=1.0).fit(['今天下雨。', '明天晴天。'])\n"
            "print(e.extract('今天下雨。'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "下雨" in out.stdout
    assert out.stderr == ""  # no "Building prefix dict ..." chatter


def test_pseudo_gloss_errors(tmp_path):
    with pytest.raises(PseudoGlossError, match="before fit"):
        PseudoGlossExtractor("de", backend="rules").extract("x")
    with pytest.raises(PseudoGlossError, match="unsupported language"):
        PseudoGlossExtractor("fr")
    (tmp_path / "p.json").write_text("[1]", encoding="utf-8")
    with pytest.raises(PseudoGlossError, match=r"p\.json: field 'format'"):
        PseudoGlossExtractor.load(tmp_path / "p.json")


def test_from_pretrained_dir_llama_style_bos_only_template_and_no_pad(tmp_path):
    """LLaMA's tokenizer adds <s> only and has no pad token: encode still gives <s> … </s>
    (the methods' contract) and padding uses <unk>."""
    from tokenizers.processors import TemplateProcessing

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "sonne": 3, "regen": 4}
    hf = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    d = tmp_path / "llama"
    d.mkdir()
    hf.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}), encoding="utf-8")
    tok = TextTokenizer.from_pretrained_dir(d)
    assert hf.encode("sonne regen").ids == [1, 3, 4]  # the folder's own template
    assert tok.encode("sonne regen") == [1, 3, 4, 2]
    assert tok.encode_batch(["regen", "sonne x"]) == [[1, 4, 2], [1, 3, 0, 2]]
    assert tok.pad_id == 0 and tok.unk_id == 0
