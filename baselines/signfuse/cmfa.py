"""SignFuse's building blocks besides the ST-GCN: visual stream, CMFA, HTA, SLA, losses.

* ``VisualStream`` (Sec. 3.2, eqs. 2–3): ResNet-50 (``baselines.common.resnet``, timm names;
  ``base_width`` scales it for tiny profiles) on every *valid* frame (padded frames are never
  run), global average pooled (d_v = 2048 at base width 64) → Conv1D(k = 3, s = 2, padding 1) →
  BatchNorm1d → ReLU → (B, ⌈T/2⌉, d). Frames arrive as uint8 (B, T, H, W, 3); they are scaled to
  [0, 1] and standardised with the ImageNet mean / std (the ResNet's pretraining statistics).
* ``CMFA`` (Sec. 3.4, eqs. 6–12): L layers of fusion + FFN (4d, GELU) with residual + LayerNorm
  (eq. 12). Layer 1 fuses F̂_v and F̂_s; "after the first layer, both inputs are derived from the
  fused representation": layer l > 1 gets (F, F). The fusion of each layer is ``fusion``:
  ``cmfa`` — ``harness.ops.GatedCrossAttention`` (the paper; fused kernels on the native / Triton
  backends); the Sec. 5.4 ablations, all keeping depth, FFN and the residual (F_v + F_s)/2:
  ``nogate`` (bidirectional, α = ½), ``v2s`` / ``s2v`` (one direction: LN(O_v→s) or LN(O_s→v)),
  ``concat`` (LN(W [F_v; F_s] + b)), ``add`` (LN(F_v + F_s)) — the last two have no residual
  (they already are the sum). The ablation attentions use ``harness.ops.masked_attention`` with
  the same head split as CMFA. Padded positions are zeroed after every layer.
* ``HTA`` (Sec. 3.5, eqs. 13–17): depthwise temporal convs (``groups = d``, 'same' padding
  k // 2) with (k, s) ∈ {(1, 1), (5, 2), (11, 4)}; each output is average-pooled *over its valid
  length* to T'' (``masked_adaptive_pool``: the bins of ``nn.AdaptiveAvgPool1d`` computed per
  sample on its own valid length, so padding never enters a bin; shorter sequences are
  upsampled the same way the torch op does), concatenated on features → Linear(|scales|·d → d) →
  H + MHSA(H) → LayerNorm (eq. 17; ``nn.MultiheadAttention``, 8 heads, no mask: every one of
  the T'' positions is valid after pooling). The paper's "depthwise separable" in the text vs
  "depthwise" in Table 1: we use depthwise only (the issue's reading) — the linear after the
  concatenation already mixes channels. ``scales`` selects a subset (ablation "temporal scale
  analysis").
* ``SLA`` (Sec. 3.6, eqs. 18–19): adaptive average pooling T'' → N_s sign tokens, Linear(d →
  hidden) → GELU → Linear(hidden → d_LLM) → LayerNorm(d_LLM). ``hidden`` defaults to d_LLM (the
  LLaVA-1.5 "mlp2x_gelu" projector shape; the paper gives W'_1 no size) — see the parameter
  budget in ``baselines.signfuse``. ``out_scale``: the initial LayerNorm gain. A LayerNorm
  output has unit RMS per token, while an LLM's input embeddings have RMS ≈ 0.02–0.04 (LLaMA's
  ``initializer_range`` 0.02); with gain 1 the sign tokens are ~30× larger than every text
  embedding, dominate the frozen LM's attention and make ‖E_sign − E_text‖² measure the scale
  gap only. ``baselines.signfuse`` passes the LM's embedding RMS (a bug fix; see there).
* ``info_nce`` (eq. 21): symmetric InfoNCE on cosine similarities with fixed τ.
* ``resample_tokens``: the stage-2 alignment target — a variable-length text embedding sequence
  (its valid tokens) resampled to N_s positions by linear interpolation along time, so sign
  token i is matched with the text at relative position i / N_s (a monotonic alignment; see
  ``baselines.signfuse`` for why).
* ``WordPresenceHead`` / ``word_presence_targets`` / ``word_presence_loss`` (ours, the tiny
  profile's ``stream_pretrain`` aid; see ``baselines.signfuse``): a stream's features, max-pooled
  over their valid time steps → Linear(d → V) logits of "token v occurs in the sentence";
  target = the multi-hot of the sentence's token ids (specials excluded); loss = binary
  cross-entropy with logits summed over the V tokens, averaged over the batch (a mean over V
  too would make the gradient 1/V as large for a ~10-of-500-ones target).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.resnet import resnet50
from harness.ops import GatedCrossAttention
from harness.ops.attention import masked_attention

FUSIONS = ("cmfa", "nogate", "v2s", "s2v", "concat", "add")
HTA_SCALES: dict[int, int] = {1: 1, 5: 2, 11: 4}  # kernel → stride (eqs. 13–15)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _zero_padded(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x * mask[..., None].to(x.dtype)


# ------------------------------------------------------------------------------------ visual


class VisualStream(nn.Module):
    """Frames (B, T, H, W, 3) uint8 or float in [0, 1] + mask → (B, ⌈T/2⌉, d), mask."""

    def __init__(self, d: int = 512, base_width: int = 64) -> None:
        super().__init__()
        self.backbone = resnet50(base_width=base_width)
        self.temporal = nn.Conv1d(self.backbone.num_features, d, kernel_size=3, stride=2,
                                  padding=1)
        self.bn = nn.BatchNorm1d(d)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def frame_features(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """F_v (B, T, d_v): GAP(ResNet(v_t)) of the valid frames, zeros at padding."""
        if frames.dim() != 5 or frames.shape[-1] != 3:
            raise ValueError(f"VisualStream: frames must be (B, T, H, W, 3), got "
                             f"{tuple(frames.shape)}")
        if tuple(mask.shape) != tuple(frames.shape[:2]):
            raise ValueError(f"VisualStream: mask has shape {tuple(mask.shape)}, expected "
                             f"{tuple(frames.shape[:2])}")
        x = frames[mask]  # (N, H, W, 3) valid frames only
        x = x.float() / 255.0 if not x.is_floating_point() else x.float()
        x = (x.permute(0, 3, 1, 2) - self.mean) / self.std
        feats = self.backbone(x)  # (N, d_v)
        out = feats.new_zeros(*mask.shape, feats.shape[-1])
        out[mask] = feats
        return out

    def forward(self, frames: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        from baselines.signfuse_stgcn import downsampled_mask

        fv = self.frame_features(frames, mask)
        y = torch.relu(self.bn(self.temporal(fv.transpose(1, 2)))).transpose(1, 2)
        mask2 = downsampled_mask(mask, 2)
        return _zero_padded(y, mask2), mask2


# -------------------------------------------------------------------------------------- CMFA


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, h, d // h).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


class AblationFusion(nn.Module):
    """The Sec. 5.4 fusion alternatives to CMFA (module docstring)."""

    def __init__(self, d: int, heads: int, kind: str) -> None:
        super().__init__()
        if kind not in FUSIONS[1:]:
            raise ValueError(f"AblationFusion: kind must be one of {FUSIONS[1:]}, got {kind!r}")
        self.kind, self.heads = kind, heads
        if kind in ("nogate", "v2s"):
            self.q_v, self.k_s, self.v_s = (nn.Linear(d, d) for _ in range(3))
        if kind in ("nogate", "s2v"):
            self.q_s, self.k_v, self.v_v = (nn.Linear(d, d) for _ in range(3))
        if kind == "concat":
            self.proj = nn.Linear(2 * d, d)
        self.norm = nn.LayerNorm(d)

    def _attend(self, q, k, v, key_mask):
        h = self.heads
        return _merge(masked_attention(_heads(q, h), _heads(k, h), _heads(v, h), key_mask))

    def forward(self, fv, fs, mask_v=None, mask_s=None):
        if self.kind == "concat":
            return self.norm(self.proj(torch.cat([fv, fs], dim=-1)))
        if self.kind == "add":
            return self.norm(fv + fs)
        outs = []
        if self.kind in ("nogate", "v2s"):
            outs.append(self._attend(self.q_v(fv), self.k_s(fs), self.v_s(fs), mask_s))
        if self.kind in ("nogate", "s2v"):
            outs.append(self._attend(self.q_s(fs), self.k_v(fv), self.v_v(fv), mask_v))
        return self.norm(sum(outs) / len(outs)) + (fv + fs) / 2


class CMFALayer(nn.Module):
    """Fusion (eqs. 6–11 or an ablation) → F' = LN(F + FFN(F)) (eq. 12)."""

    def __init__(self, d: int, heads: int, ffn: int, fusion: str = "cmfa",
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.fusion = (GatedCrossAttention(d, heads) if fusion == "cmfa"
                       else AblationFusion(d, heads, fusion))
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn, d))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, fv: torch.Tensor, fs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        f = self.fusion(fv, fs, mask, mask)
        f = self.norm(f + self.dropout(self.ffn(f)))
        return _zero_padded(f, mask)


class CMFA(nn.Module):
    """L stacked ``CMFALayer``s; layer 1 gets (F̂_v, F̂_s), later layers (F, F)."""

    def __init__(self, d: int = 512, heads: int = 8, layers: int = 3, ffn: int = 2048,
                 fusion: str = "cmfa", dropout: float = 0.1) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"CMFA: fusion must be one of {FUSIONS}, got {fusion!r}")
        if layers < 1:
            raise ValueError(f"CMFA: layers must be >= 1, got {layers}")
        self.layers = nn.ModuleList(CMFALayer(d, heads, ffn, fusion, dropout)
                                    for _ in range(layers))

    def forward(self, fv: torch.Tensor, fs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        f = self.layers[0](fv, fs, mask)
        for layer in self.layers[1:]:
            f = layer(f, f, mask)
        return f


# --------------------------------------------------------------------------------------- HTA


def pooling_matrix(lengths: torch.Tensor, width: int, out_len: int) -> torch.Tensor:
    """(B, out_len, width) averaging weights: row i of sample b averages positions
    [⌊i·n/out⌋, ⌈(i+1)·n/out⌉) of its first n = lengths[b] positions (adaptive pooling bins)."""
    n = lengths.clamp_min(1).to(torch.float64)[:, None]  # (B, 1)
    i = torch.arange(out_len, device=lengths.device, dtype=torch.float64)[None]
    start = torch.floor(i * n / out_len)
    end = torch.ceil((i + 1) * n / out_len)
    pos = torch.arange(width, device=lengths.device, dtype=torch.float64)[None, None]
    inside = (pos >= start[..., None]) & (pos < end[..., None])
    w = inside.to(torch.float32)
    return w / w.sum(-1, keepdim=True).clamp_min(1.0)


def masked_adaptive_pool(x: torch.Tensor, mask: torch.Tensor, out_len: int) -> torch.Tensor:
    """(B, T, d) with valid ``mask`` (B, T) → (B, out_len, d), each sample pooled on its valid
    prefix with ``nn.AdaptiveAvgPool1d``'s bins (equal to it for an all-valid sample)."""
    w = pooling_matrix(mask.sum(1), x.shape[1], out_len).to(x.dtype)
    return w @ x


class HTA(nn.Module):
    """Hierarchical Temporal Aggregation (eqs. 13–17): (B, T', d), mask → (B, T'', d)."""

    def __init__(self, d: int = 512, out_len: int = 64, heads: int = 8,
                 scales: Sequence[int] = (1, 5, 11), dropout: float = 0.1) -> None:
        super().__init__()
        scales = tuple(int(k) for k in scales)
        bad = [k for k in scales if k not in HTA_SCALES]
        if not scales or bad or len(set(scales)) != len(scales):
            raise ValueError(f"HTA: scales must be a non-empty subset of "
                             f"{tuple(HTA_SCALES)}, got {scales}")
        self.scales, self.out_len = scales, out_len
        self.convs = nn.ModuleList(
            nn.Conv1d(d, d, k, stride=HTA_SCALES[k], padding=k // 2, groups=d) for k in scales)
        self.proj = nn.Linear(len(scales) * d, d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from baselines.signfuse_stgcn import downsampled_mask

        xt = _zero_padded(x, mask).transpose(1, 2)
        pooled = []
        for k, conv in zip(self.scales, self.convs, strict=True):
            h = conv(xt).transpose(1, 2)  # (B, ⌈T'/s⌉, d)
            m = downsampled_mask(mask, HTA_SCALES[k])
            pooled.append(masked_adaptive_pool(h, m, self.out_len))
        h = self.proj(torch.cat(pooled, dim=-1))  # H_combined (B, T'', d)
        att, _ = self.attn(h, h, h, need_weights=False)
        return self.norm(h + att)


# --------------------------------------------------------------------------------------- SLA


class SLA(nn.Module):
    """Sign-Language Adapter (eqs. 18–19): (B, T'', d) → (B, N_s, d_LLM)."""

    def __init__(self, d: int = 512, d_llm: int = 4096, tokens: int = 32,
                 hidden: int | None = None, out_scale: float = 1.0) -> None:
        super().__init__()
        if not out_scale > 0:
            raise ValueError(f"SLA: out_scale must be > 0, got {out_scale}")
        self.tokens = tokens
        hidden = hidden or d_llm
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d_llm))
        self.norm = nn.LayerNorm(d_llm)
        with torch.no_grad():  # the LN gain starts at the LM's embedding scale (docstring)
            self.norm.weight.fill_(out_scale)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            z = F.adaptive_avg_pool1d(h.transpose(1, 2), self.tokens).transpose(1, 2)
        else:
            z = masked_adaptive_pool(h, mask, self.tokens)
        return self.norm(self.mlp(z))


# ------------------------------------------------------------------------------------ losses


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Eq. (21): ½ [CE(a→b) + CE(b→a)] over cos(a_i, b_j) / τ, positives on the diagonal."""
    logits = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def resample_tokens(e: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """(B, L, H) with valid ``mask`` (B, L) → (B, n, H): each sample's valid tokens linearly
    interpolated to n positions (``align_corners=True``: first and last tokens kept)."""
    out = []
    for row, m in zip(e, mask, strict=True):
        valid = row[m]  # (L_b, H)
        if valid.shape[0] == 1:
            out.append(valid.expand(n, -1))
            continue
        out.append(F.interpolate(valid.T[None], size=n, mode="linear",
                                 align_corners=True)[0].T)
    return torch.stack(out)


class WordPresenceHead(nn.Module):
    """(B, T, d) features + mask → (B, V) word-presence logits: masked max over time → Linear."""

    def __init__(self, d_model: int, vocab_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(f"WordPresenceHead: expected x (B, T, d) and mask (B, T), got "
                             f"{tuple(x.shape)} and {tuple(mask.shape)}")
        if not bool(mask.any(1).all()):
            raise ValueError("WordPresenceHead: a sample has no valid time step")
        pooled = x.masked_fill(~mask[..., None], float("-inf")).amax(1)
        return self.proj(pooled)


def word_presence_targets(ids: torch.Tensor, mask: torch.Tensor, vocab_size: int,
                          exclude: Sequence[int] = ()) -> torch.Tensor:
    """Multi-hot (B, V) float: 1 where token v occurs among the valid ``ids`` (B, L) of the
    sample, ids in ``exclude`` (specials: bos / eos / pad) never set."""
    if ids.shape != mask.shape:
        raise ValueError(f"word_presence_targets: ids {tuple(ids.shape)} and mask "
                         f"{tuple(mask.shape)} differ")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"word_presence_targets: token ids must lie in [0, {vocab_size})")
    out = torch.zeros(ids.shape[0], vocab_size, device=ids.device)
    out.scatter_add_(1, ids.long(), mask.to(out.dtype))
    out = (out > 0).float()
    if len(exclude):
        out[:, torch.tensor(list(exclude), dtype=torch.long, device=ids.device)] = 0.0
    return out


def word_presence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE with logits, summed over the vocabulary, averaged over the batch."""
    if logits.shape != targets.shape:
        raise ValueError(f"word_presence_loss: logits {tuple(logits.shape)} and targets "
                         f"{tuple(targets.shape)} differ")
    bce = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return bce.sum(-1).mean()


__all__ = ["CMFA", "FUSIONS", "HTA", "HTA_SCALES", "SLA", "AblationFusion", "CMFALayer",
           "VisualStream", "WordPresenceHead", "info_nce", "masked_adaptive_pool", "masked_mean",
           "pooling_matrix", "resample_tokens", "word_presence_loss", "word_presence_targets"]
