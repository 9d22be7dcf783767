"""A LLaMA-architecture causal LM conditioned on prefix embeddings, with LoRA (SignFuse, SignBind).

Shared by SignFuse and SignBind-LLM, which both put a LLaMA-style decoder behind a visual /
multimodal adapter whose outputs are *prefix embeddings* in the LM's input space; the LM is
trained with the causal-LM loss on the target sentence only and decodes with beam search.
``transformers``' ``LlamaForCausalLM`` and ``peft`` (LoRA) do the work; this module builds the
model to a profile and wraps the calls the methods need:

* :func:`build_llama` — profiles ``tiny`` (CPU-sized) and ``paper`` (LLaMA-2-7B,
  :data:`LLAMA2_7B`; :func:`llama_param_count`); ``config_overrides`` are ``LlamaConfig`` fields
  (unknown names raise ``ValueError``); built directly on ``device`` (``"meta"`` for parameter
  reports); random init, or ``init=`` a local HF checkpoint directory (never the network;
  embeddings resized to ``vocab_size``) or a state-dict file (strict, HF names).
* :func:`add_lora` — LoRA injected in place (``peft.inject_adapter_in_model``: the model stays a
  ``LlamaForCausalLM``); every non-LoRA LM parameter is frozen. Load base weights *before* it.
* :func:`prefix_lm_loss` — token-mean cross-entropy (fp32) over the valid target tokens; the
  prefix's valid positions are packed to the right end of the prefix block, and the logits at
  position ``P − 1 + j`` predict ``target_ids[:, j]``.
* :func:`generate_from_prefix` — beam search after the prefix, returning only the new tokens; a
  row ends at ``eos_id`` (kept) and is padded with ``pad_id`` (:func:`pad_after_eos`). With
  ``bos_id`` ``<s>`` is fed after the prefix (train on ``<s> text </s>``); with ``bos_id=None``
  the first token is predicted from the prefix (train on ``text </s>``).
* :func:`text_prefix` — a sentence's own input embeddings matched to ``n`` prefix positions
  (``mean`` or ``interp``, :func:`resample_tokens`): SignFuse's alignment target (eq. 22) and the
  soft prefix the LLaMA stand-in learns to read (``harness.pretrain.text``).
* :func:`embed_tokens`, :func:`left_align`, :func:`lora_parameter_names` — helpers.

Design notes: docs/components.md (section "baselines.common.llm").
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from baselines.common.weights import load_weights

#: LLaMA-2-7B's architecture as ``LlamaConfig`` keyword arguments (vocabulary set separately)
LLAMA2_7B: dict[str, Any] = dict(
    hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=32, hidden_act="silu", max_position_embeddings=4096, rms_norm_eps=1e-5,
    rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
    initializer_range=0.02,
)
#: the CPU-sized profile: same architecture, small dimensions
LLAMA_TINY: dict[str, Any] = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=4, hidden_act="silu", max_position_embeddings=1024, rms_norm_eps=1e-6,
    rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
    initializer_range=0.02,
)
PROFILES: dict[str, dict[str, Any]] = {"tiny": LLAMA_TINY, "paper": LLAMA2_7B}
LLAMA2_VOCAB = 32_000


def llama_param_count(vocab_size: int, hidden_size: int, intermediate_size: int,
                      num_hidden_layers: int, tied: bool = False) -> int:
    """Parameters of a LLaMA (MHA, no biases): embeddings, layers, final RMSNorm, LM head."""
    h, i = hidden_size, intermediate_size
    per_layer = 4 * h * h + 3 * h * i + 2 * h
    return (1 if tied else 2) * vocab_size * h + num_hidden_layers * per_layer + h


def paper_llm_figure(model: LlamaForCausalLM) -> dict[str, Any]:
    """The LM backbone's parameters at LLaMA-2's 32,000-token vocabulary beside the "7B" the
    papers name (``paper_figures`` of SignFuse and SignBind-LLM; works on ``meta``)."""
    total = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    vocab = model.get_input_embeddings().weight.shape[0]
    tables = 1 if model.config.tie_word_embeddings else 2
    ours = total + (LLAMA2_VOCAB - vocab) * model.config.hidden_size * tables
    return {"ours": int(ours), "paper": 7_000_000_000, "source": "LLaMA-2 7B (vocab 32,000)"}


def _config(vocab_size: int, profile: str, overrides: dict[str, Any]) -> LlamaConfig:
    if profile not in PROFILES:
        raise ValueError(f"build_llama: profile must be one of {sorted(PROFILES)}, got {profile!r}")
    known = set(LlamaConfig().to_dict()) | {"rope_theta", "rope_scaling", "attn_implementation"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"build_llama: unknown LlamaConfig field(s) {unknown}")
    kw = {**PROFILES[profile], **overrides}
    rope_theta = kw.pop("rope_theta", 10000.0)
    kw.setdefault("rope_parameters", {"rope_type": "default", "rope_theta": rope_theta})
    attn = kw.pop("attn_implementation", "sdpa")
    cfg = LlamaConfig(vocab_size=vocab_size, **kw)
    cfg._attn_implementation = attn
    return cfg


def build_llama(vocab_size: int, *, profile: str, init: str | Path | None = None,
                device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                **config_overrides: Any) -> LlamaForCausalLM:
    """A ``LlamaForCausalLM`` for ``vocab_size`` tokens (profiles, ``init``: docs/components.md)."""
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"build_llama: vocab_size must be a positive int, got {vocab_size!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    dtype = dtype or torch.float32
    cfg = _config(vocab_size, profile, config_overrides)
    if init is not None:
        path = Path(init)
        if not path.exists():
            raise FileNotFoundError(f"build_llama: init checkpoint {path} does not exist")
        if dev.type == "meta":
            raise ValueError("build_llama: init= and device='meta' exclude each other")
        if path.is_dir():
            return _from_pretrained(path, vocab_size, dev, dtype, config_overrides)
    # built directly on the target device (meta: no memory; cuda: no 27 GB CPU detour at 7B)
    ctx = torch.device(dev) if dev.type != "cpu" else nullcontext()
    with ctx:
        model = LlamaForCausalLM(cfg)
    if init is not None:
        load_weights(model, init)
    return model.to(device=dev, dtype=dtype)


def _from_pretrained(path: Path, vocab_size: int, dev: torch.device, dtype: torch.dtype,
                     overrides: dict[str, Any]) -> LlamaForCausalLM:
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"build_llama: {path} is a directory without config.json — not a Hugging Face "
            "checkpoint (give a state-dict file instead)"
        )
    try:
        model = LlamaForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype,
                                                 **overrides)
    except (OSError, ValueError) as exc:
        raise ValueError(f"build_llama: cannot load a LLaMA checkpoint from {path}: {exc}") from exc
    old = model.get_input_embeddings().weight.shape[0]
    if old != vocab_size:
        warnings.warn(
            f"build_llama: checkpoint {path} has vocabulary {old}, resizing to {vocab_size}; "
            "token ids keep their meaning only if the corpus tokenizer shares the checkpoint's ids",
            stacklevel=3,
        )
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
    return model.to(dev)


# ------------------------------------------------------------------------------------------ LoRA


def add_lora(model: LlamaForCausalLM, *, r: int = 16, alpha: int = 32, dropout: float = 0.05,
             target_modules: Sequence[str] = ("q_proj", "v_proj")) -> LlamaForCausalLM:
    """Inject LoRA adapters into ``target_modules`` in place; freeze every other LM parameter."""
    from peft import LoraConfig, inject_adapter_in_model

    if r < 1 or alpha <= 0 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"add_lora: need r >= 1, alpha > 0, 0 <= dropout < 1; got r={r}, "
                         f"alpha={alpha}, dropout={dropout}")
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = sorted(set(target_modules) - names)
    if missing:
        raise ValueError(f"add_lora: target module(s) {missing} not found in "
                         f"{type(model).__name__}")
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                     target_modules=list(target_modules), bias="none")
    model = inject_adapter_in_model(cfg, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    return model


def lora_parameter_names(model: nn.Module) -> list[str]:
    """Names of the LoRA parameters (``…lora_A…`` / ``…lora_B…``) of ``model``."""
    return [n for n, _ in model.named_parameters() if "lora_" in n]


# ------------------------------------------------------------------------------------- helpers


def _unwrap(model: nn.Module) -> LlamaForCausalLM:
    """The ``LlamaForCausalLM`` itself, also when given a ``peft`` wrapper."""
    if hasattr(model, "get_base_model") and not isinstance(model, LlamaForCausalLM):
        model = model.get_base_model()
    if not hasattr(model, "get_input_embeddings") or not hasattr(model, "config"):
        raise ValueError(f"expected a Hugging Face causal LM, got {type(model).__name__}")
    return model  # type: ignore[return-value]


def embed_tokens(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The LM's input embedding of ``ids`` (B, L) → (B, L, H), e.g. to build prompts."""
    lm = _unwrap(model)
    if ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"embed_tokens: ids must be int64/int32, got {ids.dtype}")
    v = lm.config.vocab_size
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= v):
        raise ValueError(f"embed_tokens: ids outside [0, {v}) (min {int(ids.min())}, "
                         f"max {int(ids.max())})")
    return lm.get_input_embeddings()(ids)


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


TEXT_PREFIXES = ("mean", "interp")


@torch.no_grad()
def text_prefix(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, n: int,
                how: str = "interp") -> torch.Tensor:
    """The LM's input embeddings of ``ids`` (B, L) (valid ``mask``), without gradient, matched
    to ``n`` positions (B, n, H) fp32: ``interp`` resamples the valid tokens
    (:func:`resample_tokens`), ``mean`` repeats their mean n times."""
    if how not in TEXT_PREFIXES:
        raise ValueError(f"text_prefix: how must be one of {TEXT_PREFIXES}, got {how!r}")
    e = embed_tokens(model, ids).float()
    m = mask.bool()
    if how == "mean":
        w = m[..., None].float()
        return ((e * w).sum(1) / w.sum(1).clamp_min(1.0))[:, None].expand(-1, n, -1)
    return resample_tokens(e, m, n)


def _check_prefix(lm: LlamaForCausalLM, prefix_embeds: torch.Tensor, prefix_mask: torch.Tensor,
                  fn: str) -> torch.Tensor:
    h = lm.config.hidden_size
    if prefix_embeds.dim() != 3 or prefix_embeds.shape[-1] != h:
        raise ValueError(f"{fn}: prefix_embeds must be (B, P, {h}), got "
                         f"{tuple(prefix_embeds.shape)}")
    if not prefix_embeds.is_floating_point():
        raise ValueError(f"{fn}: prefix_embeds must be floating point, got {prefix_embeds.dtype}")
    if tuple(prefix_mask.shape) != tuple(prefix_embeds.shape[:2]):
        raise ValueError(f"{fn}: prefix_mask {tuple(prefix_mask.shape)} does not match "
                         f"prefix_embeds (B, P) = {tuple(prefix_embeds.shape[:2])}")
    mask = prefix_mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError(f"{fn}: every row needs at least one valid prefix position "
                         f"(rows {mask.any(dim=1).logical_not().nonzero().flatten().tolist()})")
    return mask


def left_align(embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's valid positions (in order) to the right end: (B, P, H), (B, P) bool."""
    order = torch.sort(mask.to(torch.int8), dim=1, stable=True).indices  # invalid first
    idx = order.unsqueeze(-1).expand(-1, -1, embeds.shape[-1])
    return embeds.gather(1, idx), mask.gather(1, order)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(1) - 1).clamp(min=0)


def prefix_lm_loss(model: nn.Module, prefix_embeds: torch.Tensor, prefix_mask: torch.Tensor,
                   target_ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Causal-LM cross-entropy on ``target_ids`` given the prefix embeddings (scalar, fp32).

    Sequence ``[prefix (left-aligned), embed(target_ids)]``; ``target_ids[:, j]`` is predicted
    from position ``P − 1 + j`` (the first target token from the last prefix position); prefix and
    padded target positions are excluded (label −100). Mean over valid target tokens.
    """
    fn = "prefix_lm_loss"
    lm = _unwrap(model)
    pmask = _check_prefix(lm, prefix_embeds, prefix_mask, fn)
    if target_ids.dim() != 2 or target_ids.shape[0] != prefix_embeds.shape[0]:
        raise ValueError(f"{fn}: target_ids must be (B={prefix_embeds.shape[0]}, L), got "
                         f"{tuple(target_ids.shape)}")
    if tuple(target_mask.shape) != tuple(target_ids.shape):
        raise ValueError(f"{fn}: target_mask {tuple(target_mask.shape)} does not match "
                         f"target_ids {tuple(target_ids.shape)}")
    tmask = target_mask.bool()
    if not bool(tmask.any()):
        raise ValueError(f"{fn}: target_mask has no valid token")
    dtype = lm.get_input_embeddings().weight.dtype
    pre, pmask = left_align(prefix_embeds.to(dtype), pmask)
    tgt = embed_tokens(lm, target_ids.masked_fill(~tmask, 0))
    embeds = torch.cat([pre, tgt], dim=1)
    mask = torch.cat([pmask, tmask], dim=1)
    p, length = pre.shape[1], target_ids.shape[1]
    hidden = lm.model(inputs_embeds=embeds, attention_mask=mask.long(),
                      position_ids=_positions(mask), use_cache=False).last_hidden_state
    # explicit shift: position P-1+j predicts target j (j = 0..L-1)
    logits = lm.lm_head(hidden[:, p - 1:p - 1 + length]).float()
    labels = target_ids.masked_fill(~tmask, -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=-100)


@contextmanager
def _eval_mode(model: nn.Module):
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


@torch.no_grad()
def generate_from_prefix(model: nn.Module, prefix_embeds: torch.Tensor,
                         prefix_mask: torch.Tensor, *, bos_id: int | None, eos_id: int,
                         pad_id: int, num_beams: int = 5, length_penalty: float = 1.0,
                         max_new_tokens: int = 60) -> torch.Tensor:
    """Beam search (greedy for ``num_beams=1``) after the prefix → (B, L) new token ids.

    BOS convention: the module docstring; ``eos_id`` ends a row (kept), ``pad_id``
    fills after it; L ≤ ``max_new_tokens``. The prefix is cast to the
    LM's embedding dtype (e.g. fp32 adapters in front of a bf16 LM).
    """
    fn = "generate_from_prefix"
    lm = _unwrap(model)
    pmask = _check_prefix(lm, prefix_embeds, prefix_mask, fn)
    if num_beams < 1 or max_new_tokens < 1:
        raise ValueError(f"{fn}: num_beams ({num_beams}) and max_new_tokens ({max_new_tokens}) "
                         "must be >= 1")
    v = lm.config.vocab_size
    for name, tok in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id)):
        if tok is not None and not 0 <= tok < v:
            raise ValueError(f"{fn}: {name}={tok} outside the vocabulary [0, {v})")
    dtype = lm.get_input_embeddings().weight.dtype
    pre, pmask = left_align(prefix_embeds.to(dtype), pmask)
    if bos_id is not None:
        bos = torch.full((pre.shape[0], 1), bos_id, dtype=torch.long, device=pre.device)
        pre = torch.cat([pre, embed_tokens(lm, bos).to(pre.dtype)], dim=1)
        pmask = torch.cat([pmask, torch.ones_like(pmask[:, :1])], dim=1)
    # beam-only flags (transformers warns about them for greedy decoding)
    beam = dict(early_stopping=True, length_penalty=length_penalty) if num_beams > 1 else {}
    with _eval_mode(model), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = lm.generate(
            inputs_embeds=pre, attention_mask=pmask.long(), num_beams=num_beams,
            max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos_id,
            pad_token_id=pad_id, bos_token_id=bos_id, num_return_sequences=1, **beam,
        )
    return pad_after_eos(out, eos_id, pad_id)


def pad_after_eos(ids: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """Set every position after a row's first ``eos_id`` to ``pad_id`` (B, L).

    Needed because transformers' beam search fills finished rows with ``pad_token_id or eos``,
    i.e. with EOS when ``pad_id`` is 0.
    """
    is_eos = (ids == eos_id).long()
    after = (is_eos.cumsum(1) - is_eos) > 0
    return ids.masked_fill(after, pad_id)


__all__ = [
    "LLAMA2_7B",
    "LLAMA2_VOCAB",
    "LLAMA_TINY",
    "PROFILES",
    "TEXT_PREFIXES",
    "add_lora",
    "build_llama",
    "embed_tokens",
    "generate_from_prefix",
    "left_align",
    "llama_param_count",
    "lora_parameter_names",
    "pad_after_eos",
    "paper_llm_figure",
    "prefix_lm_loss",
    "resample_tokens",
    "text_prefix",
]
