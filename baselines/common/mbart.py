"""mBART for the SignBench methods: build it from a profile, run it on visual embeddings.

Why a module of its own: HyperSign (and HFA) feed *visual* features, not token ids, into an
mBART encoder (``inputs_embeds``), decode text with teacher forcing for the losses and beam
search for generation. ``transformers``' ``MBartForConditionalGeneration`` does all of that; this
module only builds it to the right size and wraps the three calls.

Profiles (:func:`mbart_config`):

* ``tiny`` — d_model 128, 2 encoder + 2 decoder layers, 4 heads, FFN 256, dropout 0.1; trains on
  2 CPU cores in minutes.
* ``paper`` — mBART-large-cc25 dimensions: d_model 1024, 12 + 12 layers, 16 heads, FFN 4096,
  learned positions (1024), ``scale_embedding=False``, pre-LayerNorm with ``layernorm_embedding``
  and a final LayerNorm in encoder and decoder (the cc25 checkpoint's config). The vocabulary is
  the corpus tokenizer's, as the public HyperSign / SLRT code does when it trims mBART-cc25's
  250,027-piece vocabulary to the pieces the corpus uses (a few thousand for PHOENIX-2014T).

Parameters (:func:`mbart_param_count`; tied input/output embeddings, learned positions P = 1026):
encoder layer 4(d²+d) + (2·d·f + f + d) + 2·2d, decoder layer 8(d²+d) + (2·d·f + f + d) + 3·2d,
embeddings V·d + 2·P·d, four LayerNorms 4·2d (``layernorm_embedding`` and the final ``layer_norm``
of each side). For d = 1024, f = 4096, 12 + 12 layers: 354.8 M + 1024·V (V = 250,027: 610.9 M;
``final_logits_bias`` is a buffer, not a parameter).

Initialisation: random (``init_std`` 0.02) unless ``init=PATH`` names a local Hugging Face
checkpoint directory, loaded with ``from_pretrained(PATH, local_files_only=True)`` (never the
network). Its embedding is then trimmed to the corpus tokenizer: when ``PATH`` also holds the
checkpoint's ``tokenizer.json``, each corpus token copies the row of the same piece string in the
checkpoint vocabulary (pieces it lacks keep the mean embedding); otherwise the embedding is
resized (``resize_token_embeddings``) and the checkpoint rows beyond the corpus vocabulary are
dropped — the ids then mean different pieces, so only the transformer layers are reused.

Special tokens: the corpus tokenizer's ``<pad>``, ``<s>``, ``</s>``. Decoding starts from ``<s>``
(a trimmed vocabulary has no language-id tokens; cc25's ``de_DE`` start token is replaced by BOS,
as in SLRT's trimmed setup) and stops at ``</s>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import MBartConfig, MBartForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

#: mBART-large-cc25's full sentencepiece vocabulary (before trimming)
CC25_VOCAB = 250_027
MAX_POSITIONS = 1024


@dataclass(frozen=True)
class MBartSize:
    """The size knobs of an mBART (the rest of ``MBartConfig`` stays at cc25's values)."""

    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    ffn: int
    dropout: float = 0.1
    attention_dropout: float = 0.1
    max_positions: int = MAX_POSITIONS


PROFILES: dict[str, MBartSize] = {
    "tiny": MBartSize(d_model=128, encoder_layers=2, decoder_layers=2, heads=4, ffn=256,
                      dropout=0.1, attention_dropout=0.0, max_positions=512),
    # mBART-large-cc25 (config of facebook/mbart-large-cc25).
    "paper": MBartSize(d_model=1024, encoder_layers=12, decoder_layers=12, heads=16, ffn=4096,
                       dropout=0.1, attention_dropout=0.1, max_positions=MAX_POSITIONS),
}


def mbart_config(size: MBartSize, vocab_size: int, pad_id: int = 0, bos_id: int = 1,
                 eos_id: int = 2) -> MBartConfig:
    """An ``MBartConfig`` of ``size`` over a (trimmed) vocabulary of ``vocab_size`` ids."""
    if vocab_size <= max(pad_id, bos_id, eos_id):
        raise ValueError(f"mbart_config: vocab_size {vocab_size} does not hold the special ids "
                         f"pad={pad_id} bos={bos_id} eos={eos_id}")
    if size.d_model % size.heads:
        raise ValueError(f"mbart_config: d_model {size.d_model} is not divisible by "
                         f"{size.heads} heads")
    return MBartConfig(
        vocab_size=vocab_size, d_model=size.d_model,
        encoder_layers=size.encoder_layers, decoder_layers=size.decoder_layers,
        encoder_attention_heads=size.heads, decoder_attention_heads=size.heads,
        encoder_ffn_dim=size.ffn, decoder_ffn_dim=size.ffn,
        dropout=size.dropout, attention_dropout=size.attention_dropout, activation_dropout=0.0,
        max_position_embeddings=size.max_positions, scale_embedding=False,
        pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id,
        decoder_start_token_id=bos_id, forced_eos_token_id=None, tie_word_embeddings=True,
    )


def mbart_param_count(d: int, ffn: int, enc_layers: int, dec_layers: int, vocab: int,
                      max_positions: int = MAX_POSITIONS) -> int:
    """Parameters of an mBART by the formula in the module docstring (independent of torch)."""
    attn = 4 * (d * d + d)
    ff = 2 * d * ffn + ffn + d
    ln = 2 * d
    enc = enc_layers * (attn + ff + 2 * ln)
    dec = dec_layers * (2 * attn + ff + 3 * ln)
    emb = vocab * d + 2 * (max_positions + 2) * d
    return enc + dec + emb + 4 * ln


def _special_ids(tokenizer: Any) -> tuple[int, int, int]:
    ids = (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
    if any(i is None for i in ids):
        raise ValueError(f"mBART needs <pad>, <s> and </s> in the tokenizer; {tokenizer!r} has "
                         f"pad={ids[0]} bos={ids[1]} eos={ids[2]}")
    return ids  # type: ignore[return-value]


def build_mbart(size: MBartSize, vocab_size: int, tokenizer: Any = None,
                init: str | Path | None = None) -> MBartForConditionalGeneration:
    """mBART of ``size`` over the tokenizer's vocabulary (or ``vocab_size`` ids without one).

    ``init``: a local checkpoint directory (see the module docstring); ``None`` = random init.
    Respects an enclosing ``with torch.device("meta")`` (for parameter counts).
    """
    pad, bos, eos = _special_ids(tokenizer) if tokenizer is not None else (0, 1, 2)
    vocab = int(tokenizer.vocab_size) if tokenizer is not None else int(vocab_size)
    if init is None:
        return MBartForConditionalGeneration(mbart_config(size, vocab, pad, bos, eos))
    path = Path(init)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"mBART init: {path} is not a local Hugging Face checkpoint "
                                f"directory (no config.json)")
    model = MBartForConditionalGeneration.from_pretrained(str(path), local_files_only=True)
    check_size(model.config, size, path / "config.json")
    _trim_vocabulary(model, path, tokenizer, vocab)
    model.config.pad_token_id, model.config.bos_token_id = pad, bos
    model.config.eos_token_id, model.config.decoder_start_token_id = eos, bos
    model.config.forced_eos_token_id = None
    model.generation_config.pad_token_id, model.generation_config.bos_token_id = pad, bos
    model.generation_config.eos_token_id = eos
    model.generation_config.decoder_start_token_id = bos
    model.generation_config.forced_bos_token_id = None
    model.generation_config.forced_eos_token_id = None
    return model


def check_size(config: Any, size: MBartSize, path: Path) -> None:
    """Raise ``ValueError`` naming ``path``, the field and both values when the checkpoint's
    architecture is not the method's ``size`` (the tensors would not fit the method's layers)."""
    pairs = {"d_model": size.d_model, "encoder_layers": size.encoder_layers,
             "decoder_layers": size.decoder_layers, "encoder_attention_heads": size.heads,
             "decoder_attention_heads": size.heads, "encoder_ffn_dim": size.ffn,
             "decoder_ffn_dim": size.ffn}
    bad = [f"{field} {getattr(config, field)} (method: {want})"
           for field, want in pairs.items() if getattr(config, field) != want]
    if bad:
        raise ValueError(f"mBART init: {path} does not match the method's mBART: "
                         + "; ".join(bad) + " — set the method's sizes to the checkpoint's")


def _trim_vocabulary(model: MBartForConditionalGeneration, path: Path, tokenizer: Any,
                     vocab: int) -> None:
    """Cut the checkpoint's embedding down to the corpus vocabulary (module docstring)."""
    old = model.get_input_embeddings().weight.detach()
    tok_file = path / "tokenizer.json"
    if tokenizer is None or not tok_file.is_file():
        model.resize_token_embeddings(vocab)
        return
    data = json.loads(tok_file.read_text(encoding="utf-8"))
    pieces = data.get("model", {}).get("vocab", {})
    # Unigram models list [[piece, score], ...]; BPE / WordPiece map piece -> id.
    piece_id = ({p[0]: i for i, p in enumerate(pieces)} if isinstance(pieces, list)
                else dict(pieces))
    for added in data.get("added_tokens", []):
        piece_id[added["content"]] = added["id"]
    new = old.mean(0, keepdim=True).repeat(vocab, 1)
    for token, idx in tokenizer.tokenizer.get_vocab(with_added_tokens=True).items():
        src = piece_id.get(token)
        if src is not None and src < old.shape[0] and idx < vocab:
            new[idx] = old[src]
    model.resize_token_embeddings(vocab)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(new)
    model.tie_weights()


# ------------------------------------------------------------------------------------ helpers


def encode(model: MBartForConditionalGeneration, inputs_embeds: torch.Tensor,
           attention_mask: torch.Tensor) -> torch.Tensor:
    """The mBART encoder on visual embeddings (B, N, d) with mask (B, N) bool → (B, N, d)."""
    if inputs_embeds.shape[:2] != attention_mask.shape:
        raise ValueError(f"mbart.encode: inputs_embeds {tuple(inputs_embeds.shape)} and "
                         f"attention_mask {tuple(attention_mask.shape)} disagree on (B, N)")
    max_pos = model.config.max_position_embeddings
    if inputs_embeds.shape[1] > max_pos:
        raise ValueError(f"mbart.encode: {inputs_embeds.shape[1]} positions exceed the model's "
                         f"max_position_embeddings={max_pos}")
    out = model.get_encoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask.long())
    return out.last_hidden_state


def decode(model: MBartForConditionalGeneration, encoder_states: torch.Tensor,
           encoder_mask: torch.Tensor, text_ids: torch.Tensor, text_mask: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced decoding of ``text_ids`` (``<s> … </s>`` padded, (B, L)).

    Inputs are ``text_ids[:, :-1]``, targets ``text_ids[:, 1:]``. Returns ``(logits (B, L-1, V),
    hidden (B, L-1, d))`` — the last decoder layer's states, used for HyperSign's D_v / D_k.
    """
    dec_in = text_ids[:, :-1]
    dec_mask = text_mask[:, :-1]
    out = model.model.decoder(input_ids=dec_in, attention_mask=dec_mask.long(),
                              encoder_hidden_states=encoder_states,
                              encoder_attention_mask=encoder_mask.long(), use_cache=False)
    hidden = out.last_hidden_state
    logits = model.lm_head(hidden) + model.final_logits_bias.to(hidden.dtype)
    return logits, hidden


def beam_search(model: MBartForConditionalGeneration, attention_mask: torch.Tensor, *,
                inputs_embeds: torch.Tensor | None = None,
                encoder_states: torch.Tensor | None = None, num_beams: int = 5,
                length_penalty: float = 1.0, max_new_tokens: int = 60) -> torch.Tensor:
    """Beam search from visual embeddings (or precomputed encoder states) → token ids (B, L').

    Exactly one of ``inputs_embeds`` / ``encoder_states`` is given. ``generate`` adds the decoder
    start token ``<s>`` and stops each beam at ``</s>``.
    """
    if (inputs_embeds is None) == (encoder_states is None):
        raise ValueError("beam_search: give exactly one of inputs_embeds / encoder_states")
    if num_beams < 1 or max_new_tokens < 1:
        raise ValueError(f"beam_search: num_beams ({num_beams}) and max_new_tokens "
                         f"({max_new_tokens}) must be >= 1")
    cfg = model.config
    kwargs: dict[str, Any] = dict(
        attention_mask=attention_mask.long(), num_beams=num_beams, length_penalty=length_penalty,
        max_new_tokens=max_new_tokens, early_stopping=True, do_sample=False,
        decoder_start_token_id=cfg.decoder_start_token_id, bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id,
    )
    if inputs_embeds is not None:
        kwargs["inputs_embeds"] = inputs_embeds
    else:
        kwargs["encoder_outputs"] = BaseModelOutput(last_hidden_state=encoder_states)
    return model.generate(**kwargs)


def translate(method: Any, x: torch.Tensor, mask: torch.Tensor, *, num_beams: int = 5,
              length_penalty: float = 1.0, max_new_tokens: int = 60) -> list[str]:
    """A method's ``generate`` tail: its ``mbart`` encodes the visual embeddings ``x`` (B, N, d)
    with ``mask``, beam search decodes, its ``tokenizer`` turns ids into text; inside the
    method's NVTX ranges ``encoder`` and ``beam_search``."""
    if method.tokenizer is None:
        raise ValueError(f"{method.key}.generate needs the text tokenizer (tokenizer= override)")
    with method.nvtx("encoder"):
        enc = encode(method.mbart, x, mask)
    with method.nvtx("beam_search"):
        ids = beam_search(method.mbart, mask, encoder_states=enc, num_beams=num_beams,
                          length_penalty=length_penalty, max_new_tokens=max_new_tokens)
    return [method.tokenizer.decode(row.tolist()) for row in ids]


def count(module: nn.Module) -> int:
    """Number of parameters (works on ``meta``)."""
    return sum(p.numel() for p in module.parameters())


__all__ = ["CC25_VOCAB", "PROFILES", "MBartSize", "beam_search", "build_mbart", "count", "decode",
           "encode", "mbart_config", "mbart_param_count", "translate"]
