"""Spoken-language text tokenizers, trained on a training split with the ``tokenizers`` library.

A translation model needs the same token ids at training, evaluation and deployment, so a
tokenizer is trained once on the training texts, saved next to the run and reloaded from there.

Kinds (``train_tokenizer(..., kind=...)``; ``kind=None`` picks ``"char"`` for Chinese and
Japanese, ``"bpe"`` otherwise):

* ``"bpe"`` -- byte-pair encoding over *Metaspace* pre-tokens: every word gets a ``▁`` prefix
  marking the preceding space, so decoding restores spaces exactly and punctuation stays attached
  the way it was written ("Grad." decodes as "Grad.", not "Grad .").
* ``"wordpiece"`` -- WordPiece over whitespace-separated words (continuations prefixed ``##``).
  Caveat: the library's WordPiece trainer breaks ties differently from one process to the next
  (observed with tokenizers 0.23), so retraining can give other ids; BPE and char training are
  deterministic. Either way, reuse the tokenizer saved next to the run rather than retraining.
* ``"char"`` -- one token per character (CSL-Daily style, Chinese text is scored per character).
  For ``zh``/``ja`` all whitespace is removed first, so ``decode`` returns text without spaces;
  for other languages a space becomes the token ``▁``.

Normalisation (all kinds): Unicode NFC, runs of whitespace collapsed to one space, leading and
trailing whitespace stripped (zh/ja: whitespace removed). ``decode(encode(x)) == x`` holds for any
``x`` that is already normalised and whose characters all occurred in the training texts;
characters never seen in training become ``<unk>``, which ``decode`` drops (BPE/char) -- there is
no byte fallback.

Special tokens of trained tokenizers have fixed ids: ``<pad>`` = 0, ``<s>`` = 1 (BOS), ``</s>`` = 2
(EOS), ``<unk>`` = 3. ``encode(text, add_special=True)`` returns ``<s> ... </s>``.

``TextTokenizer.from_pretrained_dir(path)`` wraps a user's *local* pretrained tokenizer folder
(Hugging Face "fast" format: ``tokenizer.json``, optionally ``tokenizer_config.json`` /
``special_tokens_map.json`` naming the special tokens); no network is ever used. Such a tokenizer
keeps its own special tokens, ids and post-processor; a special it lacks has id ``None``. Its
``save(dir)`` / ``load(dir)`` work like a trained one's (``kind`` = ``"pretrained"``).

Saved layout (``save(dir)``): ``tokenizer.json`` (the ``tokenizers`` serialisation) and
``signbench_tokenizer.json`` (``{"format": 1, "lang", "kind", "specials": {...}}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers.processors import TemplateProcessing

from harness.files import atomic_write_text

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
#: Special tokens of trained tokenizers, in id order (ids 0..3).
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
KINDS: tuple[str, ...] = ("bpe", "wordpiece", "char")
#: Languages written without spaces between words: char-level, whitespace removed.
NO_SPACE_LANGS: frozenset[str] = frozenset({"zh", "ja"})
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "signbench_tokenizer.json"
META_FORMAT = 1
_SPACE = "▁"

# Names a pretrained tokenizer may use for each role, tried in order when its config is silent.
_PRETRAINED_CANDIDATES: dict[str, tuple[str, ...]] = {
    "pad": ("<pad>", "[PAD]", "<|pad|>"),
    "bos": ("<s>", "[CLS]", "<|begin_of_text|>", "<bos>"),
    "eos": ("</s>", "[SEP]", "<|end_of_text|>", "<|endoftext|>", "<eos>"),
    "unk": ("<unk>", "[UNK]", "<|unk|>"),
}


class TokenizerError(ValueError):
    """A tokenizer directory or file is missing or unusable (the message names it)."""


def default_kind(lang: str) -> str:
    """``"char"`` for languages written without spaces (zh, ja), else ``"bpe"``."""
    return "char" if lang in NO_SPACE_LANGS else "bpe"


def _normalizer(lang: str) -> normalizers.Normalizer:
    steps: list[normalizers.Normalizer] = [normalizers.NFC()]
    if lang in NO_SPACE_LANGS:
        steps.append(normalizers.Replace(Regex(r"\s+"), ""))
    else:
        steps += [normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    return normalizers.Sequence(steps)


def _build(kind: str, lang: str, vocab_size: int, min_frequency: int) -> tuple[Tokenizer, Any]:
    """An untrained tokenizer of ``kind`` and its trainer."""
    specials = list(SPECIAL_TOKENS)
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement=_SPACE, prepend_scheme="always")
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=specials, show_progress=False)
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=UNK, continuing_subword_prefix="##"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=specials, show_progress=False,
                                            continuing_subword_prefix="##")
    elif kind == "char":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        # Each character is its own pre-token; a space (non-zh) becomes the visible token "▁".
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"."), behavior="isolated")
        tok.decoder = decoders.Sequence([decoders.Replace(_SPACE, " "), decoders.Fuse()])
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=specials, show_progress=False)
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {KINDS}")
    norm = _normalizer(lang)
    if kind == "char" and lang not in NO_SPACE_LANGS:
        norm = normalizers.Sequence([norm, normalizers.Replace(" ", _SPACE)])
    tok.normalizer = norm
    return tok, trainer


def _template(tok: Tokenizer) -> None:
    tok.post_processor = TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, tok.token_to_id(BOS)), (EOS, tok.token_to_id(EOS))],
    )


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` with SignBench's metadata (language, kind, special ids)."""

    def __init__(self, tokenizer: Tokenizer, lang: str, kind: str,
                 specials: dict[str, str | None] | None = None) -> None:
        self.tokenizer = tokenizer
        self.lang = lang
        self.kind = kind
        self.specials: dict[str, str | None] = dict(
            specials or {"pad": PAD, "bos": BOS, "eos": EOS, "unk": UNK})

    # ---------------------------------------------------------------- ids of special tokens
    def _special_id(self, role: str) -> int | None:
        token = self.specials.get(role)
        return None if token is None else self.tokenizer.token_to_id(token)

    @property
    def pad_id(self) -> int | None:
        return self._special_id("pad")

    @property
    def bos_id(self) -> int | None:
        return self._special_id("bos")

    @property
    def eos_id(self) -> int | None:
        return self._special_id("eos")

    @property
    def unk_id(self) -> int | None:
        return self._special_id("unk")

    @property
    def vocab_size(self) -> int:
        """Number of ids (special tokens included)."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    # ---------------------------------------------------------------- encode / decode
    def encode(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids of ``text`` (``<s> ... </s>`` around them when ``add_special``)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        if self.kind == "pretrained":
            # a pretrained tokenizer's own template varies (LLaMA adds <s> only, mBART
            # appends </s> and a language code): the methods' contract is <s> text </s>
            ids = list(self.tokenizer.encode(text, add_special_tokens=False).ids)
            if add_special:
                ids = [i for i in (self.bos_id,) if i is not None] + ids + [
                    i for i in (self.eos_id,) if i is not None]
            return ids
        return list(self.tokenizer.encode(text, add_special_tokens=add_special).ids)

    def encode_batch(self, texts: list[str], add_special: bool = True) -> list[list[int]]:
        if self.kind == "pretrained":
            return [self.encode(t, add_special) for t in texts]
        return [list(e.ids) for e in
                self.tokenizer.encode_batch(list(texts), add_special_tokens=add_special)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; special tokens (padding, BOS/EOS, ``<unk>``) are dropped."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def tokens(self, text: str) -> list[str]:
        """The token strings of ``text`` without specials (for inspection)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).tokens)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"TextTokenizer(lang={self.lang!r}, kind={self.kind!r}, vocab={self.vocab_size})"

    # ---------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``tokenizer.json`` and ``signbench_tokenizer.json`` into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / TOKENIZER_FILE, self.tokenizer.to_str(pretty=True))
        meta = {"format": META_FORMAT, "lang": self.lang, "kind": self.kind,
                "specials": self.specials}
        atomic_write_text(d / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False,
                                                    sort_keys=True) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> TextTokenizer:
        """Reload a tokenizer written by :meth:`save` (same ids for the same text)."""
        d = Path(directory)
        meta_path, tok_path = d / META_FILE, d / TOKENIZER_FILE
        for p in (tok_path, meta_path):
            if not p.is_file():
                raise TokenizerError(f"{p}: missing; not a SignBench tokenizer directory "
                                     f"(use TextTokenizer.from_pretrained_dir for a HF folder)")
        meta = _read_json(meta_path)
        if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
            raise TokenizerError(f"{meta_path}: field 'format' must be {META_FORMAT}")
        for key in ("lang", "kind", "specials"):
            if key not in meta:
                raise TokenizerError(f"{meta_path}: missing field {key!r}")
        if meta["kind"] not in (*KINDS, "pretrained"):
            raise TokenizerError(f"{meta_path}: field 'kind' is {meta['kind']!r}, "
                                 f"expected one of {(*KINDS, 'pretrained')}")
        return cls(_read_tokenizer(tok_path), meta["lang"], meta["kind"], meta["specials"])

    @classmethod
    def from_pretrained_dir(cls, path: str | Path, lang: str = "und") -> TextTokenizer:
        """Wrap a local pretrained tokenizer folder (``tokenizer.json``; never the network).

        Special tokens come from ``tokenizer_config.json`` / ``special_tokens_map.json``
        (``pad_token``, ``bos_token``, ``eos_token``, ``unk_token``) when present, else from
        the usual names (``<pad>``/``[PAD]``, ``<s>``/``[CLS]``, ``</s>``/``[SEP]``,
        ``<unk>``/``[UNK]``) found in the vocabulary; without a pad token (LLaMA) padding uses
        ``<unk>`` (else ``</s>``). ``encode`` frames the text as ``<s> text </s>`` with these
        ids whatever the folder's own template (the methods' contract).
        """
        d = Path(path)
        if not d.is_dir():
            raise TokenizerError(f"{d}: pretrained tokenizer directory does not exist")
        tok_path = d / TOKENIZER_FILE
        if not tok_path.is_file():
            present = sorted(p.name for p in d.iterdir())[:10]
            raise TokenizerError(
                f"{tok_path}: missing. A pretrained tokenizer folder must hold a Hugging Face "
                f"'fast' tokenizer.json (slow-only formats such as a lone sentencepiece .model "
                f"are not supported; convert with transformers' save_pretrained); found: "
                f"{present}")
        tok = _read_tokenizer(tok_path)
        declared: dict[str, str] = {}
        for fname in ("special_tokens_map.json", "tokenizer_config.json"):
            p = d / fname
            if p.is_file():
                cfg = _read_json(p)
                if not isinstance(cfg, dict):
                    raise TokenizerError(f"{p}: expected a JSON object")
                for role in _PRETRAINED_CANDIDATES:
                    value = cfg.get(f"{role}_token")
                    if isinstance(value, dict):
                        value = value.get("content")
                    if isinstance(value, str) and value:
                        declared[role] = value
        specials: dict[str, str | None] = {}
        for role, candidates in _PRETRAINED_CANDIDATES.items():
            if role in declared:
                if tok.token_to_id(declared[role]) is None:
                    raise TokenizerError(f"{d}: {role}_token {declared[role]!r} is declared but "
                                         f"not in the vocabulary of {tok_path.name}")
                specials[role] = declared[role]
            else:
                specials[role] = next((c for c in candidates if tok.token_to_id(c) is not None),
                                      None)
        if specials["pad"] is None:  # LLaMA has no pad token: pad with <unk> (or </s>)
            specials["pad"] = specials["unk"] or specials["eos"]
        return cls(tok, lang, "pretrained", specials)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise TokenizerError(f"{path}: not UTF-8 text ({e})") from None
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: "
                             f"{e.msg}") from None


def _read_tokenizer(path: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the library raises plain Exception subclasses from Rust
        raise TokenizerError(f"{path}: not a readable tokenizers file: {e}") from None


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1000, lang: str = "de",
                    kind: str | None = None, min_frequency: int = 1) -> TextTokenizer:
    """Train a tokenizer on ``texts`` (the training split's spoken-language sentences).

    ``vocab_size`` is an upper bound including the four specials (BPE/WordPiece stop merging
    there; char keeps the most frequent characters). ``kind=None`` -> :func:`default_kind`.
    """
    kind = kind or default_kind(lang)
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {KINDS}")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} leaves no room beside the "
                         f"{len(SPECIAL_TOKENS)} special tokens")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"training text #{i} is {type(t).__name__}, expected str")
    if not any(t.strip() for t in texts):
        raise ValueError("cannot train a tokenizer on no text (all training texts are empty)")
    tok, trainer = _build(kind, lang, vocab_size, min_frequency)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    for i, s in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(s) != i:  # the trainers put specials first; guard the contract
            raise RuntimeError(f"special token {s!r} got id {tok.token_to_id(s)}, expected {i}")
    _template(tok)
    return TextTokenizer(tok, lang, kind)
