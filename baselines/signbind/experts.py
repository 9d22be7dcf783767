"""SignBind-LLM's three CTC experts, their targets and the letter-accuracy metric.

Paper, Mechanism 1 ("Modality-Specific Expert Decomposition"): each expert is a temporal model
over per-frame visual features with a CTC head over its own vocabulary — continuous signing →
pseudo-glosses, fingerspelling → letters A–Z (:func:`letter_vocab`, read from the glosses'
``fs-NAME`` tokens by :func:`fingerspelled_words`), lipreading → CMUdict phonemes
(``baselines.signbind.phonemes``) — pre-trained on its own target before the fusion stage
freezes it. :class:`CTCExpert` is input dropout → Linear → temporal Conv1d k5 (GELU, residual) →
pre-norm :class:`TemporalEncoder` → CTC head (``<blank>`` = 0); ``forward`` returns the hidden
states (what the fusion encoder reads) and the CTC logits. :func:`letter_accuracy` is
ChicagoFSWild's 1 − (S + D + I) / N over fingerspelled segments.

The expert design is ours (the paper gives no expert details): ``docs/methods/signbind.md``.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.text import GlossVocab

FINGERSPELL_PREFIX = "fs-"  # the synthetic corpus' gloss token of a fingerspelled name
LETTERS: tuple[str, ...] = tuple(string.ascii_uppercase)


def letter_vocab() -> GlossVocab:
    """CTC vocabulary of the fingerspelling expert: ``<blank> <pad> <unk> A … Z``."""
    return GlossVocab(list(LETTERS))


def fingerspelled_words(gloss: str | None) -> list[str]:
    """The fingerspelled names of a gloss string (``"HEUTE fs-RENO"`` → ``["RENO"]``)."""
    if not gloss:
        return []
    return [t[len(FINGERSPELL_PREFIX):].upper() for t in gloss.split()
            if t.startswith(FINGERSPELL_PREFIX)]


def pad_targets(seqs: Sequence[Sequence[int]], pad: int, device: torch.device | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) padded CTC targets (L ≥ 1) and their (B,) lengths."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    out = torch.full((len(seqs), max(1, int(lengths.max()) if len(seqs) else 1)), pad,
                     dtype=torch.int64)
    for i, s in enumerate(seqs):
        if len(s):
            out[i, : len(s)] = torch.tensor(list(s), dtype=torch.int64)
    return out.to(device), lengths.to(device)


def sinusoidal_positions(n: int, d: int, device: torch.device | None = None,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n, d) sine/cosine position table (Vaswani et al.)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32)
                    * (-math.log(10000.0) / d))
    table = torch.zeros(n, d, device=device)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return table.to(dtype)


class TemporalEncoder(nn.Module):
    """Pre-norm transformer encoder over (B, T, d) with sinusoidal positions and a padding
    mask (True = valid); padded positions come out zeroed."""

    def __init__(self, d_model: int, layers: int, heads: int, ffn: int,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, heads, ffn, dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers)])
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype)[None]
        pad = ~mask
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        return self.norm(x) * mask[..., None].to(x.dtype)


class CTCExpert(nn.Module):
    """One expert: features (B, T, in_dim) → hidden (B, T, d) and CTC logits (B, T, |vocab|)."""

    def __init__(self, in_dim: int, d_model: int, vocab_size: int, layers: int = 1,
                 heads: int = 4, ffn: int | None = None, dropout: float = 0.1,
                 input_dropout: float = 0.0) -> None:
        super().__init__()
        self.input_dropout = nn.Dropout(input_dropout)
        self.proj = nn.Linear(in_dim, d_model)
        self.conv = nn.Conv1d(d_model, d_model, 5, padding=2)
        self.encoder = TemporalEncoder(d_model, layers, heads, ffn or 2 * d_model, dropout)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask[..., None].to(feats.dtype)
        h = self.proj(self.input_dropout(feats)) * m
        h = h + F.gelu(self.conv(h.transpose(1, 2)).transpose(1, 2))
        h = self.encoder(h * m, mask)
        return h, self.head(h)


def ctc_loss(logits: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor, blank: int = 0) -> torch.Tensor:
    """Mean CTC loss (per target length, as ``F.ctc_loss(reduction="mean")``; infeasible
    alignments give 0 via ``zero_infinity``). Empty targets are allowed (all-blank paths)."""
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
    return F.ctc_loss(log_probs, targets, mask.sum(1), target_lengths, blank=blank,
                      reduction="mean", zero_infinity=True)


def ctc_greedy(logits: torch.Tensor, mask: torch.Tensor, blank: int = 0
               ) -> list[list[tuple[int, int]]]:
    """Greedy (best-path) CTC decoding: per item the list of ``(token id, frame)`` emissions —
    argmax per frame, repeats collapsed, blanks removed; ``frame`` is where the token starts."""
    best = logits.argmax(-1).cpu()
    lengths = mask.sum(1).cpu().tolist()
    out = []
    for row, n in zip(best.tolist(), lengths, strict=True):
        seq, prev = [], blank
        for t, tok in enumerate(row[: int(n)]):
            if tok != prev and tok != blank:
                seq.append((tok, t))
            prev = tok
        out.append(seq)
    return out


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def letter_accuracy(hypotheses: Sequence[str], references: Sequence[str]) -> float | None:
    """1 − Σ edit distance / Σ reference letters (pooled; None without references)."""
    n = sum(len(r) for r in references)
    if n == 0:
        return None
    errors = sum(edit_distance(list(h), list(r))
                 for h, r in zip(hypotheses, references, strict=True))
    return 1.0 - errors / n


__all__ = ["FINGERSPELL_PREFIX", "LETTERS", "CTCExpert", "TemporalEncoder", "ctc_greedy",
           "ctc_loss", "edit_distance", "fingerspelled_words", "letter_accuracy", "letter_vocab",
           "pad_targets", "sinusoidal_positions"]
