"""Per-gloss sign templates and the fingerspelling alphabet of the synthetic corpus.

Coordinates are *canonical body coordinates*: origin at the midpoint of the shoulders, unit = the
shoulder width, x to the image right (the signer's left), y down. A signer's scale and offset
map them to image coordinates later (``state.py``), so templates are shared by all signers.

A template is a property of the language, not of the corpus seed: it is drawn from a generator
seeded by ``(LEXICON_SEED, blake2b(gloss))``, so ``REGEN`` looks the same in every corpus and
split. Each gloss has

* ``length`` 6–16 frames at speed 1 (signers' speed and per-instance jitter stretch it);
* a smooth dominant-hand (right) wrist trajectory through 3–4 control points in the signing
  space, and for about half the glosses a left-hand trajectory (two-handed signs; mirrored or
  independent), otherwise the left hand rests;
* a handshape per hand: five finger curls in {0, 0.5, 1} and an in-plane rotation;
* for about three quarters of the glosses a mouthing: a mouth (openness, width) curve from the
  vowels of the German word (PHOENIX signers mouth the German word), else a neutral mouth.

Fingerspelling letters A–Z each have a held handshape near the right shoulder with a small
letter-specific offset, and the mouth shape of the letter's name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

import numpy as np

from harness.data.synthetic.language import LEXICON

LEXICON_SEED = 20240604
DENSE = 64  # samples of a template's continuous curves

REST_RIGHT = np.array([-0.42, 1.35])
REST_LEFT = np.array([0.42, 1.35])
REST_HAND = np.array([0.3, 0.3, 0.3, 0.3, 0.3, np.pi])  # relaxed fingers pointing down
NEUTRAL_MOUTH = np.array([0.05, 0.5])  # (openness, width) in [0, 1]
FINGERSPELL_POS = np.array([-0.6, 0.05])
LETTER_FRAMES = 3  # frames per letter at speed 1

# Mouth shapes (openness, width) by vowel; consonant closures between vowels.
VISEMES: dict[str, tuple[float, float]] = {
    "a": (0.85, 0.6), "e": (0.45, 0.9), "i": (0.25, 1.0), "o": (0.65, 0.3), "u": (0.3, 0.2),
    "ä": (0.7, 0.8), "ö": (0.5, 0.35), "ü": (0.25, 0.25), "y": (0.3, 0.9),
}
_CLOSED = (0.08, 0.55)
_LETTER_NAME_VOWEL = {c: v for v, letters in {
    "e": "BCDEGPTVZ", "a": "AHJK", "i": "IY", "o": "O", "u": "QUW", "ä": "FLMNRSX"}.items()
    for c in letters}


def _stable_rng(*key: str) -> np.random.Generator:
    digest = hashlib.blake2b("\x1f".join(key).encode(), digest_size=8).digest()
    return np.random.default_rng([LEXICON_SEED, int.from_bytes(digest, "little")])


def _smooth_path(points: np.ndarray, n: int = DENSE) -> np.ndarray:
    """A smooth curve through ``points`` (K, 2): smoothstep easing between consecutive points."""
    k = len(points)
    u = np.linspace(0.0, k - 1, n)
    i = np.minimum(u.astype(int), k - 2)
    f = u - i
    f = f * f * (3 - 2 * f)
    return points[i] * (1 - f)[:, None] + points[i + 1] * f[:, None]


def _control_points(rng: np.random.Generator, k: int, xlo: float, xhi: float) -> np.ndarray:
    pts = [np.array([rng.uniform(xlo, xhi), rng.uniform(-0.9, 1.0)])]
    while len(pts) < k:
        cand = np.array([rng.uniform(xlo, xhi), rng.uniform(-0.9, 1.0)])
        if np.linalg.norm(cand - pts[-1]) > 0.35:  # every stroke moves visibly
            pts.append(cand)
    return np.stack(pts)


def _handshape(rng: np.random.Generator) -> np.ndarray:
    curls = rng.choice([0.0, 0.5, 1.0], size=5)
    return np.concatenate([curls, [rng.uniform(-0.8, 0.8)]])


def mouthing_curve(word: str, n: int = DENSE) -> np.ndarray:
    """(n, 2) mouth (openness, width) curve mouthing the vowels of ``word`` (closures between)."""
    vowels = [VISEMES[c] for c in word.lower() if c in VISEMES][:4]
    if not vowels:
        return np.tile(NEUTRAL_MOUTH, (n, 1))
    keys = [_CLOSED]
    for v in vowels:
        keys += [v, _CLOSED]
    return _smooth_path(np.array(keys, dtype=float), n)


@dataclass(frozen=True)
class SignTemplate:
    """A gloss's canonical sign: dense curves over normalised time u in [0, 1] (``DENSE`` steps)."""

    gloss: str
    length: int
    right: np.ndarray  # (DENSE, 2) right wrist
    left: np.ndarray  # (DENSE, 2) left wrist
    right_hand: np.ndarray  # (6,) five curls + rotation
    left_hand: np.ndarray  # (6,)
    two_handed: bool
    mouth: np.ndarray  # (DENSE, 2) openness, width
    has_mouthing: bool

    def resample(self, n: int) -> dict[str, np.ndarray]:
        """The template's curves at ``n`` evenly spaced times (linear interpolation)."""
        u = np.linspace(0.0, DENSE - 1, n)
        i = np.minimum(u.astype(int), DENSE - 2)
        f = (u - i)[:, None]

        def at(curve: np.ndarray) -> np.ndarray:
            return curve[i] * (1 - f) + curve[i + 1] * f

        return {"right": at(self.right), "left": at(self.left), "mouth": at(self.mouth)}


@cache
def sign_template(gloss: str) -> SignTemplate:
    """The template of a lexicon gloss (cached; identical in every corpus)."""
    if gloss not in LEXICON:
        raise KeyError(f"no sign template for {gloss!r}: not in the synthetic lexicon")
    rng = _stable_rng("sign", gloss)
    length = int(rng.integers(6, 17))
    k = int(rng.integers(3, 5))
    right = _smooth_path(_control_points(rng, k, -0.95, 0.35))
    two = bool(rng.random() < 0.5)
    if two and rng.random() < 0.5:
        left = right * np.array([-1.0, 1.0]) + rng.normal(0, 0.05, 2)  # mirrored
    elif two:
        left = _smooth_path(_control_points(rng, k, -0.35, 0.95))
    else:
        left = np.tile(REST_LEFT, (DENSE, 1))
    right_hand = _handshape(rng)
    left_hand = _handshape(rng) if two else REST_HAND.copy()
    mouthing = bool(rng.random() < 0.75)
    mouth = (mouthing_curve(LEXICON[gloss].de) if mouthing
             else np.tile(NEUTRAL_MOUTH, (DENSE, 1)))
    return SignTemplate(gloss, length, right, left, right_hand, left_hand, two, mouth, mouthing)


@dataclass(frozen=True)
class LetterTemplate:
    """A fingerspelled letter: held right-hand shape and position, and a mouth shape."""

    letter: str
    hand: np.ndarray  # (6,)
    position: np.ndarray  # (2,) canonical right-wrist position
    mouth: np.ndarray  # (2,)


@cache
def letter_template(letter: str) -> LetterTemplate:
    """The fingerspelling template of an uppercase letter A–Z."""
    if len(letter) != 1 or not ("A" <= letter <= "Z"):
        raise KeyError(f"no fingerspelling template for {letter!r}: letters are A–Z")
    rng = _stable_rng("letter", letter)
    hand = _handshape(rng)
    position = FINGERSPELL_POS + rng.uniform(-0.12, 0.12, 2)
    mouth = np.array(VISEMES[_LETTER_NAME_VOWEL[letter]])
    return LetterTemplate(letter, hand, position, mouth)
