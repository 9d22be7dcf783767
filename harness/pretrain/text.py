"""The language-model stand-ins: a LLaMA causal LM and an mBART denoising autoencoder.

Both train a tokenizer on the training texts (``harness.text.train_tokenizer``), build the model
the method builds (``baselines.common.llm.build_llama`` / ``baselines.common.mbart.build_mbart``)
and save a Hugging Face folder with the tokenizer beside it (``tokenizer.json``, readable by
``TextTokenizer.from_pretrained_dir``), so ``llm_init=`` / ``init=`` load it like a real
checkpoint. ``llama``: next-token prediction on ``<s> text </s>`` (the framing SignFuse and
SignBind train and decode with); with a ``prefix`` config, behind a noisy soft prefix made of the
sentence's own embeddings (a real LLaMA reads content placed in its embedding space; a stand-in
trained on text alone never looks before ``<s>``). ``mbart``: mBART's denoising (Liu et al.
2020) — sentence permutation, then text infilling of Poisson(3.5) word spans covering 35 % of the
words, each span one ``<mask>``; the decoder reconstructs ``<s> text </s>``.
Details: docs/pretrain.md.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.files import atomic_write_text
from harness.method import StandIn
from harness.pretrain.loop import count_parameters, fit, threads
from harness.pretrain.types import PretrainData, Recipe, TrainReport
from harness.text import TextTokenizer, train_tokenizer
from harness.text.tokenizer import NO_SPACE_LANGS

#: the default recipes (small: seconds on 2 CPU cores at the methods' tiny sizes)
LLAMA_RECIPE = Recipe(epochs=6, lr=5e-3, batch_size=32, options={"max_len": 128})
MBART_RECIPE = Recipe(epochs=5, lr=3e-3, batch_size=32,
                      options={"max_len": 128, "mask_ratio": 0.35, "poisson_lambda": 3.5,
                               "permute_sentences": True})
#: the infilling token the mBART stand-in's tokenizer adds after its trained vocabulary
MASK = "<mask>"
LLAMA_KEYS = ("vocab_size", "tokenizer_kind", "profile", "overrides", "prefix")
#: the ``llama`` kind's ``prefix`` keys: positions, how they are made from the sentence
#: (``baselines.common.llm.text_prefix``), noise std relative to the prefix's std, and the text
#: the method puts between the prefix and ``<s>`` (its prompt; "" for none)
PREFIX_KEYS = ("tokens", "target", "noise", "prompt")
MBART_KEYS = ("vocab_size", "tokenizer_kind", "size")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
#: intra-op threads of the LM trainers (tiny models: one is fastest on a shared CPU)
THREADS = 1


def _check_keys(standin: StandIn, known: Sequence[str]) -> dict[str, Any]:
    config = dict(standin.config)
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(f"stand-in {standin.field!r} ({standin.kind}): unknown config key(s) "
                         f"{unknown}; known: {list(known)}")
    return config


def _tokenizer(config: Mapping[str, Any], data: PretrainData) -> TextTokenizer:
    if not data.texts:
        raise ValueError("a language-model stand-in needs text, but the training split has none")
    return train_tokenizer(data.texts, vocab_size=int(config.get("vocab_size", 1000)),
                           lang=data.lang, kind=config.get("tokenizer_kind"))


def save_tokenizer(tokenizer: TextTokenizer, out_dir: Path) -> None:
    """``tokenizer.json`` (+ SignBench's metadata) and the Hugging Face files naming the special
    tokens, so both ``TextTokenizer.from_pretrained_dir`` and ``transformers`` read it."""
    tokenizer.save(out_dir)
    roles = {role: tokenizer.specials.get(role) for role in ("pad", "bos", "eos", "unk")}
    specials = {f"{role}_token": token for role, token in roles.items() if token is not None}
    if tokenizer.tokenizer.token_to_id(MASK) is not None:
        specials["mask_token"] = MASK
    atomic_write_text(out_dir / "special_tokens_map.json", json.dumps(specials, indent=2) + "\n")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
              "model_max_length": 1024, **specials}
    atomic_write_text(out_dir / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")


@contextlib.contextmanager
def _quiet_saving(progress: bool) -> Iterator[None]:
    """transformers' "Writing model shards" bar only when ``progress``."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _save(model: Any, tokenizer: TextTokenizer, out_dir: Path, progress: bool) -> None:
    with _quiet_saving(progress):
        model.save_pretrained(out_dir)
    save_tokenizer(tokenizer, out_dir)


def _pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = True
    return ids, mask


# ------------------------------------------------------------------------------------- LLaMA


def llama_batch(tokenizer: TextTokenizer, texts: Sequence[str], max_len: int = 128
                ) -> dict[str, torch.Tensor]:
    """``<s> text </s>`` ids, attention mask and labels (padding: -100) of ``texts``."""
    rows = [tokenizer.encode(t, add_special=True)[:max_len] for t in texts]
    ids, mask = _pad(rows, int(tokenizer.pad_id or 0))
    return {"input_ids": ids, "attention_mask": mask.long(),
            "labels": ids.masked_fill(~mask, -100)}


def llama_loss(model: Any, tokenizer: TextTokenizer, texts: Sequence[str],
               batch_size: int = 64) -> float:
    """Token-mean causal-LM cross-entropy of ``model`` on ``texts`` (eval mode, no grad)."""
    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = llama_batch(tokenizer, texts[i:i + batch_size])
            n = float((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    return total / max(count, 1.0)


def train_llama(standin: StandIn, data: PretrainData, out_dir: Path, *, recipe: Recipe,
                progress: bool) -> TrainReport:
    """The ``llama`` trainer (module docstring; config keys :data:`LLAMA_KEYS`)."""
    with threads(THREADS):
        return _train_llama(standin, data, out_dir, recipe, progress)


@dataclass(frozen=True)
class SoftPrefix:
    """The ``llama`` stand-in's soft prefix (config ``prefix``; :data:`PREFIX_KEYS`)."""

    tokens: int
    target: str = "interp"
    noise: float = 0.5
    prompt: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, field: str) -> SoftPrefix | None:
        if config is None:
            return None
        from baselines.common.llm import TEXT_PREFIXES

        unknown = sorted(set(config) - set(PREFIX_KEYS))
        if unknown or "tokens" not in config:
            raise ValueError(f"stand-in {field!r} (llama): prefix needs 'tokens' and only "
                             f"{list(PREFIX_KEYS)}; got {sorted(config)}")
        out = cls(int(config["tokens"]), str(config.get("target", "interp")),
                  float(config.get("noise", 0.5)), str(config.get("prompt", "")))
        if out.tokens < 1 or out.noise < 0 or out.target not in TEXT_PREFIXES:
            raise ValueError(f"stand-in {field!r} (llama): prefix tokens must be >= 1, noise "
                             f">= 0 and target one of {TEXT_PREFIXES}; got {dict(config)}")
        return out


def prefix_loss(model: Any, tokenizer: TextTokenizer, batch: Mapping[str, torch.Tensor],
                prefix: SoftPrefix, generator: torch.Generator | None = None,
                shuffle: bool = False) -> torch.Tensor:
    """Causal-LM loss on ``batch``'s ``<s> text </s>`` behind [soft prefix; prompt]: the
    sentence's embeddings matched to ``prefix.tokens`` positions plus Gaussian noise (std
    ``noise`` × the prefix's std; none without ``generator``). ``shuffle`` gives each row the
    next row's prefix (the control: how much the loss owes to the prefix)."""
    from baselines.common.llm import embed_tokens, prefix_lm_loss, text_prefix

    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    soft = text_prefix(model, ids, mask, prefix.tokens, prefix.target)
    if generator is not None and prefix.noise > 0:
        noise = torch.randn(soft.shape, generator=generator, dtype=soft.dtype)
        soft = soft + noise * (prefix.noise * soft.std())
    if shuffle:
        soft = soft.roll(1, dims=0)
    parts = [soft]
    if prefix.prompt:
        prompt = torch.tensor(tokenizer.encode(prefix.prompt, add_special=False))
        parts.append(embed_tokens(model, prompt[None].expand(ids.shape[0], -1)).float())
    x = torch.cat(parts, dim=1)
    return prefix_lm_loss(model, x, torch.ones(x.shape[:2], dtype=torch.bool), ids, mask)


def prefix_eval(model: Any, tokenizer: TextTokenizer, texts: Sequence[str], prefix: SoftPrefix,
                batch_size: int = 64) -> dict[str, float]:
    """Token-mean loss behind the noise-free prefix of each text (``own``) and of another
    text (``shuffled``): eval mode, no grad, batches of one skipped for ``shuffled``."""
    model.eval()
    sums = {"own": 0.0, "shuffled": 0.0}
    counts = {"own": 0.0, "shuffled": 0.0}
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = llama_batch(tokenizer, texts[i:i + batch_size])
            n = float(batch["attention_mask"].sum())
            for key in ("own", "shuffled") if len(batch["input_ids"]) > 1 else ("own",):
                loss = prefix_loss(model, tokenizer, batch, prefix, shuffle=key == "shuffled")
                sums[key] += float(loss) * n
                counts[key] += n
    return {k: sums[k] / max(counts[k], 1.0) for k in sums}


def _train_llama(standin: StandIn, data: PretrainData, out_dir: Path, recipe: Recipe,
                 progress: bool) -> TrainReport:
    from baselines.common.llm import build_llama

    config = _check_keys(standin, LLAMA_KEYS)
    prefix = SoftPrefix.from_config(config.get("prefix"), standin.field)
    overrides = dict(config.get("overrides") or {})
    tokenizer = _tokenizer(config, data)
    torch.manual_seed(recipe.seed)
    model = build_llama(len(tokenizer), profile=str(config.get("profile", "tiny")), **overrides)
    for name in ("pad", "bos", "eos"):
        setattr(model.config, f"{name}_token_id", getattr(tokenizer, f"{name}_id"))
        setattr(model.generation_config, f"{name}_token_id", getattr(tokenizer, f"{name}_id"))
    texts = list(data.texts)
    max_len = int(recipe.options.get("max_len", 128))
    generator = torch.Generator().manual_seed(recipe.seed)

    def evaluate() -> dict[str, float]:
        if prefix is None:
            return {"text": llama_loss(model, tokenizer, texts)}
        return prefix_eval(model, tokenizer, texts, prefix)

    def loss_fn(idx: list[int], epoch: int) -> torch.Tensor:
        batch = llama_batch(tokenizer, [texts[i] for i in idx], max_len)
        if prefix is None:
            return model(**batch).loss
        return prefix_loss(model, tokenizer, batch, prefix, generator)

    initial = evaluate()
    steps, epochs = fit(model, len(texts), loss_fn, recipe, progress=progress,
                        desc=f"pretrain {standin.field} (llama)")
    final = evaluate()
    _save(model, tokenizer, out_dir, progress)
    key = "text" if prefix is None else "own"
    extra: dict[str, Any] = {"vocab_size": len(tokenizer), "tokenizer_kind": tokenizer.kind,
                             "eval_loss": {"initial": initial[key], "final": final[key]}}
    if prefix is not None:
        extra["prefix_loss"] = {"initial": initial, "final": final}
    return TrainReport(step_losses=steps, epoch_losses=epochs,
                       parameters=count_parameters(model), extra=extra)


# ------------------------------------------------------------------------------------- mBART


def mbart_size(config: Mapping[str, Any]) -> Any:
    """The ``MBartSize`` of a stand-in's ``size`` dict (unknown fields: ``ValueError``)."""
    from baselines.common.mbart import PROFILES, MBartSize

    size = config.get("size")
    if size is None:
        return PROFILES["tiny"]
    known = [f.name for f in fields(MBartSize)]
    unknown = sorted(set(size) - set(known))
    if unknown:
        raise ValueError(f"mbart stand-in: unknown size field(s) {unknown}; known: {known}")
    return MBartSize(**size)


def _words(text: str, lang: str) -> list[str]:
    return list(text.replace(" ", "")) if lang in NO_SPACE_LANGS else text.split()


def noise_text(text: str, lang: str, rng: np.random.Generator, *, mask_ratio: float = 0.35,
               poisson_lambda: float = 3.5, permute_sentences: bool = True) -> list[str | None]:
    """mBART's noise on one text: its sentences shuffled (when it has several), then word spans
    of Poisson(``poisson_lambda``) length masked until ``mask_ratio`` of the words are; a span
    of length 0 inserts a mask. Returns the words with ``None`` for each (collapsed) mask."""
    sentences = [s for s in _SENTENCE_END.split(text) if s.strip()]
    if permute_sentences and len(sentences) > 1:
        sentences = [sentences[i] for i in rng.permutation(len(sentences))]
    joiner = "" if lang in NO_SPACE_LANGS else " "
    words = _words(joiner.join(sentences), lang)
    n = len(words)
    target = round(n * mask_ratio)
    masked = np.zeros(n, dtype=bool)
    inserts: set[int] = set()
    tries = 0
    while masked.sum() < target and tries < 10 * max(n, 1):
        tries += 1
        length = int(rng.poisson(poisson_lambda))
        start = int(rng.integers(0, n))
        if length == 0:
            inserts.add(start)
            continue
        masked[start:start + min(length, target - int(masked.sum()))] = True
    out: list[str | None] = []
    for i, word in enumerate(words):
        if i in inserts and not masked[i] and (not out or out[-1] is not None):
            out.append(None)
        if masked[i]:
            if not out or out[-1] is not None:
                out.append(None)
        else:
            out.append(word)
    return out


def _encode_noised(tokenizer: TextTokenizer, pieces: Sequence[str | None], lang: str,
                   mask_id: int) -> list[int]:
    joiner = "" if lang in NO_SPACE_LANGS else " "
    ids: list[int] = []
    run: list[str] = []
    for piece in [*pieces, None]:
        if piece is not None:
            run.append(piece)
            continue
        if run:
            ids += tokenizer.encode(joiner.join(run), add_special=False)
            run = []
        ids.append(mask_id)
    return ids[:-1]  # the sentinel's mask


def mbart_batch(tokenizer: TextTokenizer, texts: Sequence[str], lang: str,
                rng: np.random.Generator, options: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Encoder input ``noise(text) </s>``, decoder input ``<s> text`` and labels ``text </s>``
    (padding: -100) for ``texts``."""
    mask_id = tokenizer.tokenizer.token_to_id(MASK)
    max_len = int(options.get("max_len", 128))
    src, tgt = [], []
    for text in texts:
        pieces = noise_text(text, lang, rng, mask_ratio=float(options.get("mask_ratio", 0.35)),
                            poisson_lambda=float(options.get("poisson_lambda", 3.5)),
                            permute_sentences=bool(options.get("permute_sentences", True)))
        noised = _encode_noised(tokenizer, pieces, lang, mask_id)[:max_len - 1]
        src.append([*noised, tokenizer.eos_id])
        tgt.append(tokenizer.encode(text, add_special=True)[:max_len + 1])
    pad = int(tokenizer.pad_id or 0)
    enc, enc_mask = _pad(src, pad)
    full, full_mask = _pad(tgt, pad)
    return {"input_ids": enc, "attention_mask": enc_mask.long(),
            "decoder_input_ids": full[:, :-1], "decoder_attention_mask": full_mask[:, :-1].long(),
            "labels": full[:, 1:].masked_fill(~full_mask[:, 1:], -100)}


def mbart_loss(model: Any, tokenizer: TextTokenizer, texts: Sequence[str], lang: str, *,
               seed: int = 0, options: Mapping[str, Any] | None = None,
               batch_size: int = 64) -> float:
    """Token-mean denoising cross-entropy of ``model`` on ``texts`` noised with ``seed``
    (eval mode, no grad; the same noise for every model given the same seed)."""
    rng = np.random.default_rng(seed)
    opts = {**MBART_RECIPE.options, **(options or {})}
    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = mbart_batch(tokenizer, texts[i:i + batch_size], lang, rng, opts)
            n = float((batch["labels"] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    return total / max(count, 1.0)


def mbart_tokenizer(config: Mapping[str, Any], data: PretrainData) -> TextTokenizer:
    """The corpus tokenizer with ``<mask>`` added after its trained vocabulary."""
    tokenizer = _tokenizer(config, data)
    tokenizer.tokenizer.add_special_tokens([MASK])
    return tokenizer


def train_mbart(standin: StandIn, data: PretrainData, out_dir: Path, *, recipe: Recipe,
                progress: bool) -> TrainReport:
    """The ``mbart`` trainer (module docstring; config keys :data:`MBART_KEYS`)."""
    with threads(THREADS):
        return _train_mbart(standin, data, out_dir, recipe, progress)


def _train_mbart(standin: StandIn, data: PretrainData, out_dir: Path, recipe: Recipe,
                 progress: bool) -> TrainReport:
    from baselines.common.mbart import build_mbart

    config = _check_keys(standin, MBART_KEYS)
    size = mbart_size(config)
    tokenizer = mbart_tokenizer(config, data)
    torch.manual_seed(recipe.seed)
    model = build_mbart(size, tokenizer.vocab_size, tokenizer)
    texts = list(data.texts)
    options = {**MBART_RECIPE.options, **recipe.options}
    eval_seed = recipe.seed + 1
    initial = mbart_loss(model, tokenizer, texts, data.lang, seed=eval_seed, options=options)
    rngs: dict[int, np.random.Generator] = {}

    def loss_fn(idx: list[int], epoch: int) -> torch.Tensor:
        rng = rngs.setdefault(epoch, np.random.default_rng([recipe.seed, epoch]))
        batch = mbart_batch(tokenizer, [texts[i] for i in idx], data.lang, rng, options)
        return model(**batch).loss

    steps, epochs = fit(model, len(texts), loss_fn, recipe, progress=progress,
                        desc=f"pretrain {standin.field} (mbart)")
    final = mbart_loss(model, tokenizer, texts, data.lang, seed=eval_seed, options=options)
    _save(model, tokenizer, out_dir, progress)
    return TrainReport(step_losses=steps, epoch_losses=epochs,
                       parameters=count_parameters(model),
                       extra={"vocab_size": tokenizer.vocab_size, "tokenizer_kind": tokenizer.kind,
                              "mask_token": MASK,
                              "eval_loss": {"initial": initial, "final": final}})


TRAINERS = {"llama": train_llama, "mbart": train_mbart}
RECIPES = {"llama": LLAMA_RECIPE, "mbart": MBART_RECIPE}

__all__ = ["LLAMA_KEYS", "LLAMA_RECIPE", "MASK", "MBART_KEYS", "MBART_RECIPE", "RECIPES",
           "TRAINERS", "llama_batch", "llama_loss", "mbart_batch", "mbart_loss", "mbart_size",
           "mbart_tokenizer", "noise_text", "save_tokenizer", "train_llama", "train_mbart"]
