"""Gloss vocabulary: whitespace-separated gloss tokens <-> integer ids (CTC targets).

Built from the gloss strings of the *training* split. Ids:

* ``<blank>`` = 0 -- the CTC blank (``torch.nn.CTCLoss(blank=0)``, the default),
* ``<pad>``   = 1 -- padding of target tensors (never a real target; CTC reads target lengths),
* ``<unk>``   = 2 -- a gloss not seen in training (dev/test),
* then the glosses, most frequent first, ties broken by name (Unicode code-point order), so the
  same training glosses always give the same ids regardless of sample order.

``min_freq`` (default 1) drops glosses seen fewer times (they map to ``<unk>``). Saved as JSON
``{"format": 1, "specials": [...], "tokens": [...], "counts": [...]}``; ``tokens`` lists every
id's token in order (specials included).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.text.jsonfile import read_versioned_json, write_json

BLANK, PAD, UNK = "<blank>", "<pad>", "<unk>"
SPECIALS: tuple[str, ...] = (BLANK, PAD, UNK)
FORMAT = 1


class GlossVocabError(ValueError):
    """A gloss vocabulary file is malformed (the message names the file and field)."""


class GlossVocab:
    """Gloss <-> id mapping with ``<blank>`` = 0, ``<pad>`` = 1, ``<unk>`` = 2."""

    blank_id, pad_id, unk_id = 0, 1, 2

    def __init__(self, tokens: Sequence[str], counts: Sequence[int] | None = None) -> None:
        """``tokens``: the non-special glosses in id order (ids start at 3)."""
        self.itos: list[str] = [*SPECIALS, *tokens]
        self.stoi: dict[str, int] = {}
        for i, t in enumerate(self.itos):
            if not t or any(c.isspace() for c in t):
                raise ValueError(f"gloss #{i} {t!r} is empty or contains whitespace")
            if t in self.stoi:
                raise ValueError(f"gloss {t!r} appears twice in the vocabulary")
            self.stoi[t] = i
        self.counts: list[int] = list(counts) if counts is not None else [0] * len(tokens)

    @classmethod
    def build(cls, glosses: Iterable[str | None], min_freq: int = 1) -> GlossVocab:
        """Vocabulary of the whitespace tokens in ``glosses`` (``None`` entries are skipped)."""
        counter: Counter[str] = Counter()
        for g in glosses:
            if g is not None:
                counter.update(g.split())
        for s in SPECIALS:
            if s in counter:
                raise ValueError(f"training glosses contain the reserved token {s!r}")
        kept = sorted(((t, c) for t, c in counter.items() if c >= min_freq),
                      key=lambda tc: (-tc[1], tc[0]))
        return cls([t for t, _ in kept], [c for _, c in kept])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, gloss: str) -> bool:
        return gloss in self.stoi

    @property
    def tokens(self) -> list[str]:
        """The non-special glosses in id order."""
        return self.itos[len(SPECIALS):]

    def encode(self, gloss: str) -> list[int]:
        """Ids of the whitespace tokens of ``gloss`` (unknown -> ``unk_id``)."""
        return [self.stoi.get(t, self.unk_id) for t in gloss.split()]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Space-joined glosses of ``ids``; blank/pad dropped when ``skip_special``
        (``<unk>`` is kept: it marks a position where something was recognised)."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise IndexError(f"gloss id {i} out of range 0..{len(self.itos) - 1}")
            if skip_special and i in (self.blank_id, self.pad_id):
                continue
            out.append(self.itos[i])
        return " ".join(out)

    def save(self, path: str | Path) -> Path:
        obj = {"format": FORMAT, "specials": list(SPECIALS), "tokens": self.tokens,
               "counts": self.counts}
        return write_json(path, obj)

    @classmethod
    def load(cls, path: str | Path) -> GlossVocab:
        p = Path(path)
        obj = read_versioned_json(p, FORMAT, "gloss vocabulary", GlossVocabError)
        if obj.get("specials") != list(SPECIALS):
            raise GlossVocabError(f"{p}: field 'specials' is {obj.get('specials')!r}, "
                                  f"expected {list(SPECIALS)}")
        tokens, counts = obj.get("tokens"), obj.get("counts")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise GlossVocabError(f"{p}: field 'tokens' must be a list of strings")
        if counts is not None and (not isinstance(counts, list) or len(counts) != len(tokens)):
            raise GlossVocabError(f"{p}: field 'counts' must be a list as long as 'tokens'")
        try:
            return cls(tokens, counts)
        except ValueError as e:
            raise GlossVocabError(f"{p}: field 'tokens': {e}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GlossVocab) and self.itos == other.itos

    def __hash__(self) -> int:
        return hash(tuple(self.itos))

    def __repr__(self) -> str:
        return f"GlossVocab({len(self.tokens)} glosses + {len(SPECIALS)} specials)"
