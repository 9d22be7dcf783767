"""HFA's pseudo-gloss prototypes and the pseudo-gloss pretraining loss L_psp (Sec. 3.2, eqs. 1–3).

Prototypes P (U + 1 × 300): one 300-d word vector per pseudo-gloss plus a zero "non-sign"
vector, frozen (a buffer). :func:`build_prototypes` takes them from a local fastText model
(``.vec`` / ``.bin``, as the paper's cc.de.300) when one is given, otherwise from PPMI + SVD
word vectors trained on the training text (:func:`train_word_vectors`), otherwise from
deterministic sub-word hash vectors (:func:`subword_hash_vector`, with a warning).

:class:`PseudoGlossHead` (Sign2GPT's ``zero_fasttext_prototype_head``): Z' = Linear(dropout(Z)),
S = cos(Z', P) (eq. 1), Ê = Σ_t softmax_T(S/τ_T) ⊙ softmax_U(S/τ_U) over the valid steps
(eqs. 2–3), L_psp = BCE(Ê, H) against the multi-hot pseudo-glosses H (:func:`multi_hot`).

The lookup rules, the word-vector recipe and the temperatures: ``docs/methods/hfa.md``.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from harness.text import PseudoGlossExtractor

PROTOTYPE_DIM = 300
WINDOW = 5
CDS_ALPHA = 0.75
TEMPERATURE_RANGE = (0.01, 1.0)


@dataclass
class PrototypeInfo:
    """Where the prototype vectors came from (for the run JSON)."""

    source: str  # "fasttext:<path>" | "ppmi-svd" | "subword-hash"
    words: int
    missing: int = 0
    svd_dims: int | None = None


# ---------------------------------------------------------------------------------- vectors


def _tokens(text: str) -> list[str]:
    return [w.upper() for w in "".join(c if c.isalnum() else " " for c in text).split()]


def train_word_vectors(sentences: Sequence[Sequence[str]], dim: int = PROTOTYPE_DIM,
                       window: int = WINDOW, alpha: float = CDS_ALPHA
                       ) -> tuple[dict[str, np.ndarray], int]:
    """PPMI + SVD word vectors (``docs/methods/hfa.md``) → ({word: (dim,) float32}, SVD rank
    used)."""
    vocab = sorted({w for s in sentences for w in s})
    if not vocab:
        raise ValueError("train_word_vectors: no words in the training sentences")
    index = {w: i for i, w in enumerate(vocab)}
    counts: Counter[tuple[int, int]] = Counter()
    for s in sentences:
        ids = [index[w] for w in s]
        for i, a in enumerate(ids):
            for j in range(max(0, i - window), min(len(ids), i + window + 1)):
                if j != i:
                    counts[a, ids[j]] += 1
    n = len(vocab)
    m = np.zeros((n, n), dtype=np.float64)
    for (a, b), c in counts.items():
        m[a, b] = c
    total = m.sum()
    if total == 0:  # one-word sentences only: identity-like vectors
        m = np.eye(n)
        total = float(n)
    p_w = m.sum(1) / total
    ctx = m.sum(0) ** alpha
    p_c = ctx / max(ctx.sum(), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log((m / total) / (p_w[:, None] * p_c[None, :]))
    ppmi = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)
    u, s, _ = np.linalg.svd(ppmi, full_matrices=False)
    k = int(min(dim, int((s > 1e-9).sum()) or 1))
    w = u[:, :k] * np.sqrt(s[:k])[None, :]
    out = np.zeros((n, dim), dtype=np.float32)
    out[:, :k] = w
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out /= np.where(norms > 0, norms, 1.0)
    return {word: out[i] for word, i in index.items()}, k


def subword_hash_vector(word: str, dim: int = PROTOTYPE_DIM, nmin: int = 3,
                        nmax: int = 5) -> np.ndarray:
    """Unit vector: sum of fixed N(0, 1) vectors of the character n-grams of ``<word>``."""
    token = f"<{word.lower()}>"
    grams = [token[i:i + n] for n in range(nmin, nmax + 1) for i in range(len(token) - n + 1)]
    vec = np.zeros(dim, dtype=np.float64)
    for g in grams or [token]:
        seed = int.from_bytes(hashlib.blake2b(g.encode("utf-8"), digest_size=8).digest(), "little")
        vec += np.random.default_rng(seed).standard_normal(dim)
    return (vec / max(np.linalg.norm(vec), 1e-12)).astype(np.float32)


def _lookup_keys(word: str) -> list[str]:
    return list(dict.fromkeys([word, word.capitalize(), word.lower()]))


def read_fasttext(path: str | Path, words: Iterable[str]) -> dict[str, np.ndarray]:
    """Vectors of ``words`` (any of their lookup spellings) from a local fastText model."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"fastText model {p} does not exist")
    wanted = {k: w for w in words for k in _lookup_keys(w)}
    found: dict[str, tuple[int, np.ndarray]] = {}
    if p.suffix == ".bin":
        try:
            import fasttext  # type: ignore[import-not-found]
        except ImportError:
            raise ValueError(f"{p}: reading a fastText .bin model needs the 'fasttext' package; "
                             f"install it or pass the .vec text file") from None
        model = fasttext.load_model(str(p))
        return {w: np.asarray(model.get_word_vector(w), dtype=np.float32)
                for w in set(wanted.values())}
    with p.open(encoding="utf-8", errors="replace") as f:
        header = f.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise ValueError(f"{p}: not a fastText .vec file (first line must be 'N D', got "
                             f"{' '.join(header[:3])!r})")
        dim = int(header[1])
        for line_no, line in enumerate(f, start=2):
            word, _, rest = line.rstrip("\n").partition(" ")
            if word not in wanted:
                continue
            values = np.array(rest.split(), dtype=np.float32)
            if values.shape != (dim,):
                raise ValueError(f"{p}:{line_no}: word {word!r} has {values.size} values, "
                                 f"header says {dim}")
            target = wanted[word]
            rank = _lookup_keys(target).index(word)
            if target not in found or rank < found[target][0]:
                found[target] = (rank, values)
    return {w: v for w, (_, v) in found.items()}


def build_prototypes(vocabulary: Sequence[str], *, texts: Sequence[str] | None = None,
                     extractor: PseudoGlossExtractor | None = None,
                     fasttext_path: str | Path | None = None, dim: int = PROTOTYPE_DIM
                     ) -> tuple[torch.Tensor, PrototypeInfo]:
    """P: (len(vocabulary) + 1, dim) float32, last row the zero (non-sign) prototype."""
    trained: dict[str, np.ndarray] | None = None
    svd_dims = None
    if texts:
        sentences = []
        for t in texts:
            lemmas = extractor.extract(t) if extractor is not None else []
            sentences.append(lemmas + [w for w in _tokens(t) if w not in lemmas])
        trained, svd_dims = train_word_vectors(sentences, dim)
    table = np.zeros((len(vocabulary) + 1, dim), dtype=np.float32)
    missing = 0
    if fasttext_path is not None:
        vectors = read_fasttext(fasttext_path, vocabulary)
        if vectors and next(iter(vectors.values())).shape != (dim,):
            raise ValueError(f"{fasttext_path}: vectors have {next(iter(vectors.values())).size} "
                             f"dimensions, expected {dim}")
        mean_norm = float(np.mean([np.linalg.norm(v) for v in vectors.values()])) if vectors \
            else 1.0
        for i, w in enumerate(vocabulary):
            if w in vectors:
                table[i] = vectors[w]
                continue
            missing += 1
            fallback = trained.get(w) if trained else None
            table[i] = (fallback if fallback is not None else subword_hash_vector(w, dim)) \
                * mean_norm
        info = PrototypeInfo(f"fasttext:{fasttext_path}", len(vocabulary), missing, svd_dims)
    elif trained is not None:
        for i, w in enumerate(vocabulary):
            v = trained.get(w)
            if v is None:
                missing += 1
                v = subword_hash_vector(w, dim)
            table[i] = v
        info = PrototypeInfo("ppmi-svd", len(vocabulary), missing, svd_dims)
    else:
        warnings.warn("HFA prototypes: no fastText model and no training texts; using untrained "
                      "sub-word hash vectors", stacklevel=2)
        for i, w in enumerate(vocabulary):
            table[i] = subword_hash_vector(w, dim)
        info = PrototypeInfo("subword-hash", len(vocabulary))
    return torch.from_numpy(table), info


# ---------------------------------------------------------------------------------- loss


def multi_hot(glosses: Sequence[Sequence[str]], index: dict[str, int], size: int) -> torch.Tensor:
    """H (B, size): 1 where a pseudo-gloss of the sample is in ``index`` (unknown ones skipped)."""
    out = torch.zeros(len(glosses), size)
    for b, words in enumerate(glosses):
        for w in words:
            j = index.get(w)
            if j is not None:
                out[b, j] = 1.0
    return out


class PseudoGlossHead(nn.Module):
    """Z → Ê (B, U) pseudo-gloss presence scores; ``loss(Ê, H)`` = L_psp (eqs. 1–3)."""

    def __init__(self, in_dim: int, prototypes: torch.Tensor, temperature: float = 0.1,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if prototypes.dim() != 2 or prototypes.shape[0] < 2:
            raise ValueError(f"PseudoGlossHead: prototypes must be (U + 1, D') with U >= 1, got "
                             f"{tuple(prototypes.shape)}")
        self.proj = nn.Linear(in_dim, prototypes.shape[1])
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("prototypes", prototypes.clone(), persistent=True)
        self.tau_T = nn.Parameter(torch.tensor(float(temperature)))
        self.tau_U = nn.Parameter(torch.tensor(float(temperature)))

    @property
    def num_glosses(self) -> int:
        """U: pseudo-glosses with a label (the zero prototype excluded)."""
        return self.prototypes.shape[0] - 1

    def similarity(self, z: torch.Tensor) -> torch.Tensor:
        """S = cos(Z', P): (B, T, U + 1) (the zero prototype's column is 0)."""
        zp = F.normalize(self.proj(self.dropout(z)).float(), dim=-1)
        p = F.normalize(self.prototypes.float(), dim=-1)  # the zero row stays zero
        return zp @ p.T

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Ê (B, U) in [0, 1]: Σ_t softmax_T(S/τ_T) ⊙ softmax_U(S/τ_U), padded steps excluded."""
        s = self.similarity(z)
        lo, hi = TEMPERATURE_RANGE
        s_u = torch.softmax(s / self.tau_U.clamp(lo, hi), dim=-1)
        s_t = torch.softmax((s / self.tau_T.clamp(lo, hi)).masked_fill(~mask[..., None],
                                                                       float("-inf")), dim=1)
        e = (s_t * s_u).sum(dim=1)
        return e[:, : self.num_glosses]

    @staticmethod
    def loss(e_hat: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_psp = BCE(Ê, H), mean over batch and pseudo-glosses."""
        return F.binary_cross_entropy(e_hat.clamp(1e-6, 1 - 1e-6), labels.to(e_hat.dtype))


__all__ = ["PROTOTYPE_DIM", "PrototypeInfo", "PseudoGlossHead", "build_prototypes",
           "multi_hot", "read_fasttext", "subword_hash_vector", "train_word_vectors"]
