"""PHOENIX-2014T gloss cleanup applied before WER, as in the published evaluation scripts.

Sign-recognition WER on RWTH-PHOENIX-Weather 2014T is always reported after a fixed cleanup of
both gloss sequences. The rules come from the dataset's evaluation scripts as ported to Python by
N. C. Camgoz (``signjoey/phoenix_utils/phoenix_cleanup.py``, function
``clean_phoenix_2014_trans``, reused unchanged by SLRT and later work). Without it, WER is not
comparable with published tables. This module reimplements those rules on tokens instead of on the
raw string, in the same order:

1. **Drop annotation markers.** Any token of the form ``__X__`` (``__ON__``, ``__OFF__``,
   ``__EMOTION__``, ``__LEFTHAND__``, ``__EPENTHESIS__``, ``__PU__``, …) marks a non-sign event
   (hands moving on/off, facial expression, transitional movement), not a gloss.
2. **Strip ``loc-`` and ``cl-`` prefixes.** Locative and classifier variants score as their base
   gloss (``loc-HIER`` → ``HIER``, ``cl-KOMMEN`` → ``KOMMEN``); repeated prefixes are all removed.
3. **Strip the ``-PLUSPLUS`` suffix**, the repetition marker (``REGEN-PLUSPLUS`` → ``REGEN``).
4. **``XXRAUM`` → ``XX``.** A capitalised stem glued to ``RAUM`` (region) scores as the stem
   (``NORDRAUM`` → ``NORD``); a bare ``RAUM`` is left alone (the script's ``\\b([A-Z]+)RAUM\\b``).
5. **``WIE AUSSEHEN`` → ``WIE-AUSSEHEN``**, the compound gloss of the annotation vocabulary.
6. **Join fingerspelling with ``+``.** A run of two or more adjacent fingerspelled units is one
   gloss: ``A B C`` → ``A+B+C``. Units are single ASCII capitals, already ``+``-joined spellings
   (``A+B C`` → ``A+B+C``), and the German letter groups ``SCH`` and ``NN``, which the script
   also attaches to neighbouring letters; a run needs at least one single letter or ``+``
   spelling, so ``SCH NN`` stays two glosses. The script does this with a cascade of string
   regexes; this token rule gives the same result on ordinary input and also covers long runs.
   One documented difference: markers dropped in rule 1 do not stop a run here (``A __OFF__ B``
   → ``A+B``), whereas the string regexes, which see a double space, leave ``A B``.
7. **Collapse consecutive duplicates** (``REGEN REGEN`` → ``REGEN``), as the script's final
   ``itertools.groupby`` pass does.
8. **Normalise whitespace**: single spaces, no leading or trailing space.

PHOENIX-2014 (the older, recognition-only release) uses a different rule set (``qu-``, ``poss-``,
``lh-`` prefixes, ``S0NNE`` → ``SONNE``, ``HABEN2`` → ``HABEN``, ``ZEIGEN`` →
``ZEIGEN-BILDSCHIRM``); it is not implemented here.
"""

from __future__ import annotations

import re
from itertools import groupby

__all__ = ["CLEANUPS", "clean_phoenix_glosses"]

_MARKER = re.compile(r"^__\S+__$")
_PREFIX = re.compile(r"^(?:loc|cl)-")
_PLUSPLUS = re.compile(r"-PLUSPLUS\b")
_RAUM = re.compile(r"\b([A-Z]+)RAUM\b")
_LETTER_SPELLING = re.compile(r"^[A-Z](?:\+[A-Z])*$")
_SPELLING_UNIT = re.compile(r"^(?:[A-Z]|SCH|NN)(?:\+(?:[A-Z]|SCH|NN))*$")


def _strip_token(token: str) -> str:
    """Rules 2–4 on one token; may return an empty string (e.g. for a bare ``loc-``)."""
    while _PREFIX.match(token):
        token = _PREFIX.sub("", token, count=1)
    token = _PLUSPLUS.sub("", token)
    return _RAUM.sub(r"\1", token)


def _merge_wie_aussehen(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for tok in tokens:
        if tok == "AUSSEHEN" and out and out[-1] == "WIE":
            out[-1] = "WIE-AUSSEHEN"
        else:
            out.append(tok)
    return out


def _join_fingerspelling(tokens: list[str]) -> list[str]:
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if len(run) >= 2 and any(_LETTER_SPELLING.match(t) for t in run):
            out.append("+".join(run))
        else:
            out.extend(run)
        run.clear()

    for tok in tokens:
        if _SPELLING_UNIT.match(tok):
            run.append(tok)
        else:
            flush()
            out.append(tok)
    flush()
    return out


def clean_phoenix_glosses(text: str) -> str:
    """Apply the PHOENIX-2014T WER cleanup (rules 1–8 of the module docstring) to a gloss string.

    >>> clean_phoenix_glosses("__ON__ loc-REGEN-PLUSPLUS REGEN NORDRAUM WIE AUSSEHEN A B C __OFF__")
    'REGEN NORD WIE-AUSSEHEN A+B+C'
    """
    tokens = [t for t in text.split() if not _MARKER.match(t)]
    tokens = [t for t in (_strip_token(t) for t in tokens) if t]
    tokens = _merge_wie_aussehen(tokens)
    tokens = _join_fingerspelling(tokens)
    return " ".join(tok for tok, _ in groupby(tokens))


#: Named cleanups accepted by ``recognition_scores(cleanup=...)``.
CLEANUPS = {"phoenix14t": clean_phoenix_glosses}
