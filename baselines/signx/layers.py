"""SignX building blocks: pre-LN Transformer layers on ``harness.ops.masked_attention``.

Every SignX self-attention (format fusion, ViT layers, Vid2Pose spatial and temporal attention,
the recogniser's encoder) runs through :func:`harness.ops.masked_attention`, so
``harness.ops.use_backend(...)`` switches them between the torch reference, Triton and the native
C++/CUDA kernel — except the decoders' *causal* self-attention (the fused op has key-padding
masks and windows, no causal mask), which uses the explicit torch formula. Cross-attention
(:class:`CrossAttention`) is written out because decoding needs the attention *weights*
(Algorithm 3's entropy penalty).

Differentiated dropout (Sec. 4.2): ``p_attn`` on attention weights (on the attention output in
the fused path, where weights never materialise), ``p_relu`` after the FFN activation, ``p_res``
on each residual branch. Notes: ``docs/methods/signx.md``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from harness.ops import masked_attention


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, T, D) over the valid steps of ``mask`` (B, T) -> (B, D)."""
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(length, dim) sinusoidal position encodings (Vaswani et al., 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    i = torch.arange(0, dim, 2, device=device, dtype=torch.float32)
    angle = pos / torch.pow(10000.0, i / max(dim, 1))
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2] = torch.sin(angle)
    out[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return out.to(dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention through ``harness.ops.masked_attention`` (key padding mask)."""

    def __init__(self, dim: int, heads: int, p_attn: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(p_attn)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (self._split(y) for y in self.qkv(x).chunk(3, dim=-1))
        if causal:  # training-time decoder pass: explicit causal + padding mask
            scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
            allowed = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()[None, None]
            if mask is not None:
                allowed = allowed & mask[:, None, None, :]
            scores = scores.masked_fill(~allowed, float("-inf"))
            out = torch.softmax(scores.float(), dim=-1).nan_to_num(0.0).to(v.dtype) @ v
        else:
            out = masked_attention(q, k, v, mask)
        out = out.transpose(1, 2).reshape(b, t, d)
        return self.proj(self.drop(out))


class CrossAttention(nn.Module):
    """Multi-head cross-attention that also returns the head-averaged weights (B, Tq, Tk)."""

    def __init__(self, dim: int, heads: int, p_attn: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(p_attn)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (B, H, Tk, d_h) of ``memory`` (cacheable across decoding steps)."""
        b, tk, d = memory.shape
        h, dh = self.heads, d // self.heads
        k, v = (y.view(b, tk, h, dh).transpose(1, 2) for y in self.kv(memory).chunk(2, dim=-1))
        return k, v

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                memory_mask: torch.Tensor | None = None,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        b, tq, d = x.shape
        h, dh = self.heads, d // self.heads
        q = self.q(x).view(b, tq, h, dh).transpose(1, 2)
        k, v = kv if kv is not None else self.memory_kv(memory)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if memory_mask is not None:
            scores = scores.masked_fill(~memory_mask[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1).nan_to_num(0.0).to(v.dtype)
        out = (self.drop(weights) @ v).transpose(1, 2).reshape(b, tq, d)
        return self.proj(out), weights.mean(1)


class FeedForward(nn.Module):
    """Linear → ReLU → Dropout(p_relu) → Linear."""

    def __init__(self, dim: int, hidden: int, p_relu: float = 0.0) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(p_relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class EncoderLayer(nn.Module):
    """Pre-LN Transformer encoder layer (ViT block): x + SA(LN x), then x + FFN(LN x)."""

    def __init__(self, dim: int, heads: int, ffn: int, p_attn: float = 0.0, p_relu: float = 0.0,
                 p_res: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, p_attn)
        self.ffn = FeedForward(dim, ffn, p_relu)
        self.drop = nn.Dropout(p_res)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask))
        return x + self.drop(self.ffn(self.norm2(x)))


class Encoder(nn.Module):
    """A stack of :class:`EncoderLayer` with a final LayerNorm; padded outputs zeroed."""

    def __init__(self, dim: int, depth: int, heads: int, ffn: int, p_attn: float = 0.0,
                 p_relu: float = 0.0, p_res: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn, p_attn, p_relu, p_res)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x)
        return x if mask is None else x * mask[..., None].to(x.dtype)


class DecoderLayer(nn.Module):
    """Pre-LN decoder layer: causal self-attention, cross-attention, FFN."""

    def __init__(self, dim: int, heads: int, ffn: int, p_attn: float = 0.0, p_relu: float = 0.0,
                 p_res: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(dim) for _ in range(3))
        self.self_attn = SelfAttention(dim, heads, p_attn)
        self.cross_attn = CrossAttention(dim, heads, p_attn)
        self.ffn = FeedForward(dim, ffn, p_relu)
        self.drop = nn.Dropout(p_res)

    def forward(self, y: torch.Tensor, y_mask: torch.Tensor | None, memory: torch.Tensor,
                memory_mask: torch.Tensor | None,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        y = y + self.drop(self.self_attn(self.norm1(y), y_mask, causal=True))
        att, weights = self.cross_attn(self.norm2(y), memory, memory_mask, kv)
        y = y + self.drop(att)
        return y + self.drop(self.ffn(self.norm3(y))), weights


class Decoder(nn.Module):
    """Token decoder over a codebook: embeddings (+ sinusoidal positions), layers, output head
    tied to the embeddings. ``forward`` returns logits, the last layer's cross-attention weights
    (B, L, Tk) and the final hidden states."""

    def __init__(self, vocab_size: int, dim: int, depth: int, heads: int, ffn: int,
                 p_attn: float = 0.0, p_relu: float = 0.0, p_res: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embed.weight, std=dim ** -0.5)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn, p_attn, p_relu, p_res)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) * math.sqrt(self.dim)
        return x + sinusoidal_positions(ids.shape[1], self.dim, ids.device, x.dtype)[None]

    def forward(self, ids: torch.Tensor, ids_mask: torch.Tensor | None, memory: torch.Tensor,
                memory_mask: torch.Tensor | None, inputs_embeds: torch.Tensor | None = None,
                cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``cache`` (decoding): a dict filled on the first call with each layer's memory keys
        and values, reused by later calls on the same memory."""
        y = self.embed_tokens(ids) if inputs_embeds is None else inputs_embeds
        weights = memory.new_zeros(memory.shape[0], y.shape[1], memory.shape[1])
        for i, layer in enumerate(self.layers):
            kv = None
            if cache is not None:
                if i not in cache:
                    cache[i] = layer.cross_attn.memory_kv(memory)
                kv = cache[i]
            y, weights = layer(y, ids_mask, memory, memory_mask, kv)
        h = self.norm(y)
        return h @ self.embed.weight.T + self.bias, weights, h


__all__ = ["CrossAttention", "Decoder", "DecoderLayer", "Encoder", "EncoderLayer",
           "FeedForward", "SelfAttention", "masked_mean", "sinusoidal_positions"]
