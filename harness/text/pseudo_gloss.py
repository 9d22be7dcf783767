"""Pseudo-glosses for gloss-free methods: content-word lemmas of the spoken sentence.

Sign2GPT and HFA supervise their visual encoders with *pseudo-glosses* instead of annotated
glosses: the lemmas of the sentence's content words (Universal Dependencies part of speech in
:data:`CONTENT_POS`: ``NOUN NUM ADV PRON PROPN ADJ VERB``), in order of appearance, minus lemmas
that occur in more than ``max_doc_freq`` (default 0.4) of the training sentences.

:class:`PseudoGlossExtractor` ``(lang, max_doc_freq=0.4, pos=CONTENT_POS, backend="auto")``:
``fit(train_texts)``, then ``extract(text) -> list[str]``; ``vocabulary`` (kept lemmas seen in
training), ``save(path)`` / ``load(path)`` (JSON with settings, document frequencies and dropped
lemmas). Languages ``de``, ``en``, ``zh``.

* ``backend="tagger"``: HanTa for German (STTS tags, :data:`STTS_TO_UD`) and English (CLAWS5
  tags, :data:`CLAWS5_TO_UD`), jieba for Chinese (:data:`ICTCLAS_TO_UD`); their models ship in
  the pip packages, nothing is downloaded.
* ``backend="rules"``: words (Chinese: single characters) minus :data:`STOPWORDS` and
  punctuation, no lemmatisation — a much weaker approximation. ``"auto"`` uses the tagger when
  installed, else the rules with a warning.

Lemmas are uppercased (``str.upper``: German ß becomes SS) to look like glosses; ``extract``
keeps lemmas never seen in training, only the frequent ones are removed.

Design notes (tagger calls, tag-mapping choices): docs/components.md (section
"harness.text.pseudo_gloss").
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.text.jsonfile import read_versioned_json, write_json

CONTENT_POS: frozenset[str] = frozenset({"NOUN", "NUM", "ADV", "PRON", "PROPN", "ADJ", "VERB"})
LANGS: tuple[str, ...] = ("de", "en", "zh")
BACKENDS: tuple[str, ...] = ("auto", "tagger", "rules")
FORMAT = 1

#: HanTa German STTS base tags (bracketed sub-type removed) -> UD coarse POS.
STTS_TO_UD: dict[str, str] = {
    "$(": "PUNCT", "$,": "PUNCT", "$.": "PUNCT",
    "ADJ": "ADJ", "ADJA": "ADJ", "ADJD": "ADJ", "ADV": "ADV",
    "APPO": "ADP", "APPR": "ADP", "APPRART": "ADP", "APZR": "ADP",
    "ART": "DET", "CARD": "NUM", "FM": "X", "ITJ": "INTJ",
    "KOKOM": "CCONJ", "KON": "CCONJ", "KOUI": "SCONJ", "KOUS": "SCONJ",
    "NE": "PROPN", "NN": "NOUN", "NNA": "NOUN", "NNI": "NOUN",
    "PDAT": "DET", "PDS": "PRON", "PIAT": "DET", "PIDAT": "DET", "PIS": "PRON", "PPER": "PRON",
    "PPOSAT": "DET", "PPOSS": "PRON", "PRELAT": "DET", "PRELS": "PRON", "PRF": "PRON",
    "PROAV": "ADV", "PTKA": "PART", "PTKANT": "PART", "PTKNEG": "PART", "PTKVZ": "ADP",
    "PTKZU": "PART", "PWAT": "DET", "PWAV": "ADV", "PWS": "PRON", "TRUNC": "X",
    "VA": "AUX", "VM": "AUX", "VV": "VERB", "XY": "X", "UNKNOWN": "X",
}

#: HanTa English CLAWS5 (BNC) tags -> UD coarse POS.
CLAWS5_TO_UD: dict[str, str] = {
    "AJ0": "ADJ", "AJC": "ADJ", "AJS": "ADJ", "AT0": "DET", "AV0": "ADV", "AVP": "ADP",
    "AVQ": "ADV", "CJC": "CCONJ", "CJS": "SCONJ", "CJT": "SCONJ", "CRD": "NUM", "DPS": "PRON",
    "DT0": "DET", "DTQ": "DET", "EX0": "PRON", "IN": "ADP", "ITJ": "INTJ",
    "NN": "NOUN", "NN0": "NOUN", "NN1": "NOUN", "NN2": "NOUN", "NP0": "PROPN", "ORD": "ADJ",
    "PNI": "PRON", "PNP": "PRON", "PNQ": "PRON", "PNX": "PRON", "POS": "PART",
    "PRF": "ADP", "PRP": "ADP", "PUL": "PUNCT", "PUN": "PUNCT", "PUQ": "PUNCT", "PUR": "PUNCT",
    "!!!": "PUNCT", "TO0": "PART", "UNC": "X",
    **{f"VB{s}": "AUX" for s in "BDGINZ"}, **{f"VD{s}": "AUX" for s in "BDGINZ"},
    **{f"VH{s}": "AUX" for s in "BDGINZ"}, "VM0": "AUX",
    **{f"VV{s}": "VERB" for s in "BDGINZ"}, "XX0": "PART", "ZZ0": "X",
}

#: jieba (ICTCLAS-style) tags -> UD coarse POS; unlisted tags go by :data:`_ICTCLAS_PREFIX`.
ICTCLAS_TO_UD: dict[str, str] = {
    **dict.fromkeys(["n", "nl", "ng", "t", "tg", "s", "f", "vn", "an", "q", "j"], "NOUN"),
    **dict.fromkeys(["nr", "nr1", "nr2", "nrj", "nrf", "nrfg", "ns", "nsf", "nt", "nz"],
                    "PROPN"),
    **dict.fromkeys(["v", "vd", "vi", "vl", "vg", "vf", "vx", "vyou"], "VERB"),
    "vshi": "AUX",
    **dict.fromkeys(["a", "ag", "al", "b", "bl", "z"], "ADJ"),
    **dict.fromkeys(["d", "ad", "dg"], "ADV"),
    **dict.fromkeys(["r", "rr", "rz", "rzt", "rzs", "rzv", "ry", "ryt", "rys", "ryv", "rg"],
                    "PRON"),
    **dict.fromkeys(["m", "mq", "mg"], "NUM"),
    **dict.fromkeys(["p", "pba", "pbei"], "ADP"),
    **dict.fromkeys(["c", "cc"], "CCONJ"),
    **dict.fromkeys(["u", "uj", "ul", "uv", "uz", "ud", "ug", "y"], "PART"),
    "e": "INTJ", "x": "PUNCT", "w": "PUNCT",
    **dict.fromkeys(["o", "h", "k", "i", "l", "g", "eng", "un"], "X"),
}
_ICTCLAS_PREFIX: dict[str, str] = {"n": "NOUN", "v": "VERB", "a": "ADJ", "d": "ADV",
                                   "r": "PRON", "m": "NUM", "u": "PART", "p": "ADP",
                                   "c": "CCONJ", "w": "PUNCT"}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Stop words of the rules fallback (function words; Chinese: single characters).
STOPWORDS: dict[str, frozenset[str]] = {
    "de": _words("""der die das den dem des ein eine einer eines einem einen und oder aber
        sondern denn in im ins am an ans auf aus bei beim mit nach von vom zu zum zur für über
        unter vor hinter neben zwischen durch gegen ohne um bis seit während ist sind war waren
        wird werden wurde wurden sein seid bin bist hat haben hatte hatten habe kann können
        muss müssen soll sollen darf dürfen will wollen mag möchte sich auch noch nur so wie als
        dass daß ob wenn weil nicht kein keine keinen keinem keiner doch ja nein"""),
    "en": _words("""the a an and or but nor so yet in on at to of for from with by about
        into onto over under up down off out as than that which who whom whose this these those
        is are was were be been being am will would shall should can could may might must do
        does did done have has had having not no there here if then because while"""),
    "zh": frozenset("的了是在和与及也都就将会把被着过吗呢吧啊呀么之而且或但"),
}
_WORD_RE = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")

_lock = threading.Lock()
_hanta: dict[str, Any] = {}
_jieba_ready = False


class PseudoGlossError(ValueError):
    """Bad settings or a malformed saved extractor (the message names the file/field)."""


def tagger_available(lang: str) -> bool:
    """Whether the tagger for ``lang`` (HanTa for de/en, jieba for zh) is installed."""
    import importlib.util

    return importlib.util.find_spec("jieba" if lang == "zh" else "HanTa") is not None


def _hanta_tagger(lang: str) -> Any:
    with _lock:
        if lang not in _hanta:
            from HanTa import HanoverTagger as ht

            _hanta[lang] = ht.HanoverTagger("morphmodel_ger.pgz" if lang == "de"
                                            else "morphmodel_en.pgz")
        return _hanta[lang]


def _jieba_posseg() -> Any:
    global _jieba_ready
    with _lock:
        import jieba
        import jieba.posseg

        if not _jieba_ready:
            jieba.setLogLevel(logging.WARNING)  # silences "Building prefix dict ..." chatter
            jieba.initialize()
            _jieba_ready = True
        return jieba.posseg


def _stts_to_ud(tag: str) -> str:
    return STTS_TO_UD.get(tag.split("(", 1)[0], "X")


def _ictclas_to_ud(tag: str) -> str:
    return ICTCLAS_TO_UD.get(tag) or _ICTCLAS_PREFIX.get(tag[:1], "X")


class PseudoGlossExtractor:
    """Content-word lemmas of a sentence, minus lemmas frequent in the training sentences.

    ``PseudoGlossExtractor(lang).fit(train_texts)``, then ``extract(text) -> list[str]``.
    """

    def __init__(self, lang: str, max_doc_freq: float = 0.4,
                 pos: Iterable[str] = CONTENT_POS, backend: str = "auto") -> None:
        if lang not in LANGS:
            raise PseudoGlossError(f"unsupported language {lang!r}; expected one of {LANGS}")
        if not 0.0 < max_doc_freq <= 1.0:
            raise PseudoGlossError(f"max_doc_freq must be in (0, 1], got {max_doc_freq}")
        if backend not in BACKENDS:
            raise PseudoGlossError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        if backend == "auto":
            if tagger_available(lang):
                backend = "tagger"
            else:
                warnings.warn(f"pseudo-glosses for {lang!r}: "
                              f"{'jieba' if lang == 'zh' else 'HanTa'} is not installed; "
                              f"falling back to the stop-word rules (weaker)", stacklevel=2)
                backend = "rules"
        self.lang = lang
        self.max_doc_freq = float(max_doc_freq)
        self.pos: frozenset[str] = frozenset(pos)
        self.backend = backend
        self.num_sentences = 0
        self.doc_freq: dict[str, int] = {}
        self.dropped: frozenset[str] = frozenset()
        self._fitted = False

    # ------------------------------------------------------------------ analysis
    def analyse(self, text: str) -> list[tuple[str, str, str]]:
        """``(word, lemma, UD POS)`` for each token of ``text`` (lemma as the tool gives it)."""
        if self.backend == "rules":
            return self._analyse_rules(text)
        if self.lang == "zh":
            posseg = _jieba_posseg()
            return [(w.word, w.word, _ictclas_to_ud(w.flag))
                    for w in posseg.cut(text) if w.word.strip()]
        words = _WORD_RE.findall(text)
        if not words:
            return []
        tagged = _hanta_tagger(self.lang).tag_sent(words, taglevel=1)
        to_ud = _stts_to_ud if self.lang == "de" else (lambda t: CLAWS5_TO_UD.get(t, "X"))
        return [(w, lemma, to_ud(tag)) for w, lemma, tag in tagged]

    def _analyse_rules(self, text: str) -> list[tuple[str, str, str]]:
        stop = STOPWORDS[self.lang]
        units = [c for c in text if not c.isspace()] if self.lang == "zh" \
            else _WORD_RE.findall(text)
        out = []
        for u in units:
            if not any(c.isalnum() for c in u):
                out.append((u, u, "PUNCT"))
            elif u.lower() in stop:
                out.append((u, u, "X"))
            else:
                out.append((u, u, "NUM" if u.isdigit() else "NOUN"))
        return out

    def content_lemmas(self, text: str) -> list[str]:
        """Uppercased lemmas of the content words of ``text``, before frequency filtering."""
        return [lemma.upper() for _, lemma, upos in self.analyse(text)
                if upos in self.pos and lemma.strip()]

    # ------------------------------------------------------------------ fitting / extraction
    def fit(self, train_texts: Iterable[str]) -> PseudoGlossExtractor:
        """Count in how many training sentences each lemma occurs; drop those at or above
        ``max_doc_freq`` of the sentences."""
        from tqdm import tqdm

        texts = list(train_texts)
        if not texts:
            raise PseudoGlossError("fit needs at least one training sentence")
        df: Counter[str] = Counter()
        for t in tqdm(texts, desc=f"pseudo-glosses ({self.lang})", unit="sent",
                      disable=len(texts) < 2000, leave=False):
            if not isinstance(t, str):
                raise PseudoGlossError(f"training text is {type(t).__name__}, expected str")
            df.update(set(self.content_lemmas(t)))
        self.num_sentences = len(texts)
        self.doc_freq = dict(sorted(df.items()))
        limit = self.max_doc_freq * self.num_sentences
        self.dropped = frozenset(w for w, c in df.items() if c >= limit)
        self._fitted = True
        return self

    def extract(self, text: str) -> list[str]:
        """Pseudo-glosses of ``text`` in order of appearance (duplicates kept)."""
        if not self._fitted:
            raise PseudoGlossError("PseudoGlossExtractor.extract called before fit()/load()")
        return [w for w in self.content_lemmas(text) if w not in self.dropped]

    @property
    def vocabulary(self) -> list[str]:
        """Sorted pseudo-glosses seen in training and not dropped."""
        return sorted(w for w in self.doc_freq if w not in self.dropped)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        obj = {"format": FORMAT, "lang": self.lang, "backend": self.backend,
               "max_doc_freq": self.max_doc_freq, "pos": sorted(self.pos),
               "num_sentences": self.num_sentences, "doc_freq": self.doc_freq,
               "dropped": sorted(self.dropped)}
        return write_json(path, obj)

    @classmethod
    def load(cls, path: str | Path) -> PseudoGlossExtractor:
        p = Path(path)
        obj = read_versioned_json(p, FORMAT, "pseudo-gloss", PseudoGlossError)
        for key in ("lang", "backend", "max_doc_freq", "pos", "num_sentences", "doc_freq",
                    "dropped"):
            if key not in obj:
                raise PseudoGlossError(f"{p}: missing field {key!r}")
        if obj["backend"] == "tagger" and not tagger_available(obj["lang"]):
            raise PseudoGlossError(f"{p}: was fitted with the {obj['lang']} tagger, which is not "
                                   f"installed here (pip install "
                                   f"{'jieba' if obj['lang'] == 'zh' else 'HanTa'})")
        ext = cls(obj["lang"], obj["max_doc_freq"], obj["pos"], obj["backend"])
        ext.num_sentences = int(obj["num_sentences"])
        ext.doc_freq = {str(k): int(v) for k, v in obj["doc_freq"].items()}
        ext.dropped = frozenset(obj["dropped"])
        ext._fitted = True
        return ext
