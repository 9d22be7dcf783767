"""Text preparation shared by the SignBench metrics: input checks, normalisation, tokenisers.

Every metric sees text through the same three steps, so that a score never depends on how a
caller happened to encode or space its strings:

1. :func:`check_pairs` rejects inputs that would give a silently wrong number (a bare string instead
   of a list, mismatched lengths, non-string items);
2. :func:`normalize_text` applies Unicode NFC (a decomposed ``u + combining diaeresis`` and a
   composed ``ü`` are the same word) and collapses whitespace runs;
3. a tokenizer from :func:`tokenizer_for` splits on whitespace, or into characters for languages
   written without spaces (Chinese, Japanese), as the SLT literature scores them.

The tokenizer objects have the ``tokenize(text) -> list[str]`` method that rouge-score expects, so
rouge-score's default tokenizer (which deletes every non-ASCII letter, e.g. German umlauts, and
returns nothing at all for Chinese) is never used.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

__all__ = [
    "CJK_LANGS",
    "MAX_LINE_TOKENS",
    "SUPPORTED_LANGS",
    "CharTokenizer",
    "MetricTypeError",
    "WhitespaceTokenizer",
    "check_lang",
    "check_line_lengths",
    "check_pairs",
    "is_cjk",
    "normalize_text",
    "tokenizer_for",
]

#: Primary language subtags scored at character level (no word spaces in the script).
CJK_LANGS: frozenset[str] = frozenset({"zh", "ja"})
#: Languages SignBench has a scoring protocol for (primary subtags; ``zh-CN`` is ``zh``): the
#: spoken languages of PHOENIX-2014T / the synthetic corpus (de), How2Sign (en), CSL-Daily (zh),
#: and Japanese (character-scored like Chinese).
SUPPORTED_LANGS: tuple[str, ...] = ("de", "en", "zh", "ja")
#: Longest line the translation metrics score, in tokens (characters for zh / ja): ROUGE-L's LCS
#: table is quadratic in the line length (1,000 tokens: 1M cells, ~0.4 s; 1 MB lines would need
#: tens of GB). SLT sentences are under 100 tokens.
MAX_LINE_TOKENS = 1000


class MetricTypeError(TypeError, ValueError):
    """A metric input has the wrong type.

    Subclasses both ``TypeError`` (what it is) and ``ValueError`` (what callers of the metrics are
    told to catch for any bad input).
    """


def normalize_text(text: str) -> str:
    """Return ``text`` in Unicode NFC with whitespace runs collapsed to one space and stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def is_cjk(lang: str) -> bool:
    """True when ``lang`` (a BCP-47-ish tag such as ``zh``, ``zh-CN``, ``ja_JP``) is scored by char.

    Raises :class:`MetricTypeError` when ``lang`` is not a string.
    """
    if not isinstance(lang, str):
        raise MetricTypeError(f"lang must be a language code string, got {type(lang).__name__}")
    primary = lang.strip().lower().replace("_", "-").split("-")[0]
    return primary in CJK_LANGS


def check_lang(lang: str) -> str:
    """``lang`` when SignBench has a protocol for it (:data:`SUPPORTED_LANGS`, regional variants
    included), else a ``ValueError`` naming the supported ones."""
    primary = lang.strip().lower().replace("_", "-").split("-")[0] if isinstance(lang, str) else ""
    if primary not in SUPPORTED_LANGS:
        raise ValueError(f"language {lang!r}: SignBench has no scoring protocol for it; "
                         f"supported: {', '.join(SUPPORTED_LANGS)} (regional variants such as "
                         f"zh-CN too)")
    return lang


def check_line_lengths(texts: Sequence[str], lang: str, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` and the line (index + 1) of the first text over
    :data:`MAX_LINE_TOKENS` tokens (as the metrics tokenise ``lang``)."""
    tokenizer = tokenizer_for(lang)
    for i, text in enumerate(texts):
        if len(text) > MAX_LINE_TOKENS:  # cheap bound first: a token has >= 1 character
            n = len(tokenizer.tokenize(text))
            if n > MAX_LINE_TOKENS:
                raise ValueError(f"{name}: line {i + 1} has {n} tokens; translation "
                                 f"scores take lines of at most {MAX_LINE_TOKENS} tokens "
                                 f"(ROUGE-L's LCS is quadratic in the line length)")


class WhitespaceTokenizer:
    """Split on whitespace, keeping every character (case, umlauts, punctuation) untouched."""

    name = "whitespace"

    def tokenize(self, text: str) -> list[str]:
        """Return the whitespace-separated tokens of ``text``."""
        return text.split()


class CharTokenizer:
    """Drop all whitespace and return the remaining characters, one token each (CJK scoring)."""

    name = "char"

    def tokenize(self, text: str) -> list[str]:
        """Return the non-space characters of ``text`` in order."""
        return [ch for ch in text if not ch.isspace()]


def tokenizer_for(lang: str) -> WhitespaceTokenizer | CharTokenizer:
    """Character tokenizer for Chinese / Japanese, whitespace tokenizer for everything else."""
    return CharTokenizer() if is_cjk(lang) else WhitespaceTokenizer()


def _check_list(items: object, name: str) -> list[str]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise MetricTypeError(
            f"{name} must be a list of strings (one per sentence), got {type(items).__name__}"
        )
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise MetricTypeError(f"{name}[{i}] must be a str, got {type(item).__name__}")
    return list(items)


def check_pairs(
    hypotheses: Sequence[str], references: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Validate a parallel corpus and return NFC / whitespace-normalised copies of both sides.

    Raises ``ValueError`` for empty or mismatched lists, :class:`MetricTypeError` (also a
    ``ValueError``) for a non-list argument or a non-string item, naming its index.
    """
    hyps = _check_list(hypotheses, "hypotheses")
    refs = _check_list(references, "references")
    if len(hyps) != len(refs):
        raise ValueError(
            f"got {len(hyps)} hypotheses but {len(refs)} references; they must be parallel"
        )
    if not hyps:
        raise ValueError("no sentences to score: hypotheses and references are empty")
    return [normalize_text(h) for h in hyps], [normalize_text(r) for r in refs]
