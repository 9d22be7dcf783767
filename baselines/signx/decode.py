"""SignX decoding: beam search with an encoder-attention entropy penalty (Algorithm 3).

Each hypothesis ⟨y, s⟩ is extended by the top-k tokens w of p(· | y, H); its score becomes
s + log p(w) − α · AttnEntropy(y, H), the entropy (nats) of the step's cross-attention over the
valid encoder positions (SignX passes the last decoder layer's head-averaged weights). The
penalty accumulates along the hypothesis; α = 0 is plain beam search, ``beam_size=1`` greedy.

``max_lengths`` (optional, (B,) long) caps each sample's hypothesis length: at the cap EOS is the
only child. SignX passes |CTC-head greedy path| + ``ctc_length_slack`` — the "CTC-constrained"
refinement read as a length bound. Where Algorithm 3 is silent (children per hypothesis, stopping,
length normalisation) and the measurement behind the cap: ``docs/methods/signx.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: step(prefixes (N, L) long, rows (N,) long: which memory row each prefix reads)
#:   -> (log_probs (N, V), attention (N, Tk) of the step's query over the memory)
StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def attention_entropy(weights: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Entropy −Σ a log a of attention rows (…, Tk) (masked keys have weight 0 → add 0)."""
    w = weights.float()
    return -(w * (w + eps).log()).sum(-1)


@torch.no_grad()
def entropy_beam_search(step: StepFn, batch_size: int, *, bos_id: int, eos_id: int,
                        beam_size: int = 8, max_len: int = 60, alpha: float = 0.0,
                        length_penalty: float = 0.0, device: torch.device | str = "cpu",
                        return_scores: bool = False,
                        max_lengths: torch.Tensor | None = None):
    """Best token sequence per sample (BOS/EOS stripped) under Algorithm 3's scoring."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    device = torch.device(device)
    k = beam_size
    seqs = torch.full((batch_size * k, 1), bos_id, dtype=torch.long, device=device)
    rows = torch.arange(batch_size, device=device).repeat_interleave(k)
    scores = torch.full((batch_size, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis per sample at the start
    finished = torch.zeros(batch_size, k, dtype=torch.bool, device=device)
    if max_lengths is not None:
        max_lengths = torch.as_tensor(max_lengths, device=device).long().view(-1)
        if max_lengths.numel() != batch_size:
            raise ValueError(f"max_lengths has {max_lengths.numel()} entries for a batch of "
                             f"{batch_size}")
    for t in range(max_len):
        log_probs, attn = step(seqs, rows)
        vocab = log_probs.shape[-1]
        log_probs = log_probs.float().view(batch_size, k, vocab)
        penalty = alpha * attention_entropy(attn).view(batch_size, k) if alpha else 0.0
        cand = scores[..., None] + log_probs - (penalty[..., None] if alpha else 0.0)
        # finished hypotheses: a single child (EOS again) that keeps the score unchanged
        frozen = torch.full_like(cand, float("-inf"))
        frozen[..., eos_id] = scores
        cand = torch.where(finished[..., None], frozen, cand)
        if max_lengths is not None:  # at the cap: EOS is the only child
            capped = torch.full_like(cand, float("-inf"))
            capped[..., eos_id] = cand[..., eos_id]
            cand = torch.where((t >= max_lengths)[:, None, None], capped, cand)
        top, idx = cand.view(batch_size, k * vocab).topk(k, dim=-1)
        parent, token = idx // vocab, idx % vocab
        base = (torch.arange(batch_size, device=device) * k)[:, None]
        seqs = torch.cat([seqs[(base + parent).flatten()], token.flatten()[:, None]], dim=1)
        finished = finished.gather(1, parent) | (token == eos_id)
        scores = top
        # top-k is sorted: with no length normalisation a live hypothesis can only lose score
        # (log p <= 0, entropy >= 0), so once every sample's best beam is finished it stays best
        if bool(finished.all()) or (not length_penalty and bool(finished[:, 0].all())):
            break
    lengths = torch.ones_like(scores)
    out_tokens = seqs[:, 1:].view(batch_size, k, -1)
    is_eos = out_tokens == eos_id
    has_eos = is_eos.any(-1)
    first_eos = torch.where(has_eos, is_eos.float().argmax(-1), torch.full_like(
        has_eos, out_tokens.shape[-1], dtype=torch.long))
    lengths = (first_eos + has_eos.long()).clamp_min(1).float()
    normed = scores / lengths.pow(length_penalty) if length_penalty else scores
    best = normed.argmax(-1)
    result, best_scores = [], []
    for b in range(batch_size):
        j = int(best[b])
        n = int(first_eos[b, j])
        result.append(out_tokens[b, j, :n].tolist())
        best_scores.append(float(normed[b, j]))
    return (result, best_scores) if return_scores else result


__all__ = ["StepFn", "attention_entropy", "entropy_beam_search"]
