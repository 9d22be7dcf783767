"""``keypoint-gru``: an example SignBench method plug-in (keypoints → text).

A keypoint encoder (per-frame MLP, two stride-2 temporal convolutions, a bidirectional GRU) and
a GRU decoder with Luong et al.'s (2015) global (here scaled) dot attention over them: the RNN
seq2seq of Camgöz et al. (2018, "Neural Sign Language Translation") on keypoints instead of CNN
features, with the gloss CTC loss on the encoder states that Camgöz et al. (2020, "Sign Language
Transformers") train jointly with translation. Greedy decoding. ``pyproject.toml`` declares
it in the ``signbench.methods`` entry-point group, which is all the registration SignBench needs
(README, "Add your own method"). It imports the method contract (``harness.method``), a
SignBench building block (``baselines.common.encoders.KeypointEncoder``) and torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from baselines.common.encoders import KeypointEncoder
from harness.method import SLTMethod, Stage, TrainState, check_bounds


@dataclass(frozen=True)
class KeypointGRUConfig:
    """Every field is a ``signbench run --set`` option."""

    joints: int = 75  # SignBench's keypoint layout: 75 joints × (x, y, confidence)
    d_model: int = 128
    dropout: float = 0.1
    epochs: int = 30
    lr: float = 3e-3
    label_smoothing: float = 0.1
    ctc_weight: float = 1.0  # gloss CTC on the encoder states (0: translation loss only)
    max_len: int = 40

    def validate(self) -> None:
        check_bounds(self, positive=("joints", "d_model", "epochs", "lr", "max_len"),
                     non_negative=("dropout", "label_smoothing", "ctc_weight"))


# no paper fixes a size: "paper" is a larger configuration for a GPU
PROFILES = {"tiny": KeypointGRUConfig(),
            "paper": KeypointGRUConfig(d_model=512, dropout=0.2, epochs=40, lr=1e-3)}


class Encoder(nn.Module):
    """(B, T, J, 3) keypoints → (B, ≈T/4, d) states: SignBench's keypoint frontend (signer-centred
    body and hand-local coordinates, a frame MLP, two stride-2 convolutions), then a BiGRU."""

    def __init__(self, cfg: KeypointGRUConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.frontend = KeypointEncoder(d, joints=cfg.joints, hidden=2 * d, dropout=cfg.dropout)
        self.rnn = nn.GRU(d, d // 2, batch_first=True, bidirectional=True)

    def forward(self, keypoints: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        x, valid = self.frontend(keypoints, mask)
        packed = nn.utils.rnn.pack_padded_sequence(x, valid.sum(1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        states, _ = self.rnn(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True,
                                                     total_length=x.shape[1])
        return states, valid


class AttentionDecoder(nn.Module):
    """GRU over the previous tokens, then scaled dot attention and the output layer."""

    def __init__(self, cfg: KeypointGRUConfig, vocab_size: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.embed = nn.Embedding(vocab_size, d)
        self.init = nn.Linear(d, d)
        self.rnn = nn.GRU(d, d, batch_first=True)
        self.combine = nn.Linear(2 * d, d)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(d, vocab_size)

    def initial_state(self, memory: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        mean = (memory * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        return torch.tanh(self.init(mean))[None]  # (1, B, d)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor, memory: torch.Tensor,
                valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, hidden = self.rnn(self.dropout(self.embed(tokens)), hidden)  # (B, L, d)
        scores = h @ memory.transpose(1, 2) / h.shape[-1] ** 0.5  # (B, L, T'), scaled
        scores = scores.masked_fill(~valid[:, None], float("-inf"))
        context = scores.softmax(-1) @ memory
        attended = torch.tanh(self.combine(torch.cat([h, context], -1)))
        return self.out(self.dropout(attended)), hidden


class KeypointGRU(SLTMethod):
    """The plug-in method: translation from keypoints (glosses supervise the encoder)."""

    key = "keypoint-gru"  # must equal the entry-point name
    task = "translation"
    inputs = ("keypoints",)
    needs_text = True
    needs_gloss = True  # the runner builds a gloss vocabulary and passes gloss_vocab=
    data_defaults: ClassVar[dict[str, dict[str, Any]]] = {"tiny": {"train_size": 512}}
    config_class = KeypointGRUConfig
    beam_size = 1  # greedy

    def __init__(self, profile: str = "tiny", tokenizer: Any = None, gloss_vocab: Any = None,
                 **overrides: Any) -> None:
        super().__init__(profile)
        if tokenizer is None or gloss_vocab is None:
            raise ValueError("keypoint-gru needs tokenizer= and gloss_vocab= (the runner "
                             "builds both from the training split)")
        self.config = self.build_config(PROFILES[profile], overrides)
        self.tokenizer, self.gloss_vocab = tokenizer, gloss_vocab
        self.max_len = self.config.max_len
        self.encoder = Encoder(self.config)
        self.gloss_head = nn.Linear(self.config.d_model, len(gloss_vocab))
        self.decoder = AttentionDecoder(self.config, tokenizer.vocab_size)

    def stages(self) -> list[Stage]:
        return [Stage(name="translation", epochs=self.config.epochs, lr=self.config.lr,
                      warmup_steps=10, losses=("translation", "ctc"), monitor="bleu4")]

    def encode(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        with self.nvtx("encoder"):
            return self.encoder(batch["keypoints"], batch.masks["keypoints"])

    def training_step(self, batch: Any, state: TrainState) -> dict[str, torch.Tensor]:
        memory, valid = self.encode(batch)
        ids = batch.text_ids  # <s> ... </s> <pad> ...
        with self.nvtx("decoder"):
            logits, _ = self.decoder(ids[:, :-1], self.decoder.initial_state(memory, valid),
                                     memory, valid)
        translation = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:],
                                      ignore_index=self.tokenizer.pad_id,
                                      label_smoothing=self.config.label_smoothing)
        log_probs = self.gloss_head(memory).log_softmax(-1).transpose(0, 1)  # (T', B, G)
        ctc = F.ctc_loss(log_probs, batch.gloss_ids, valid.sum(1), batch.gloss_lengths,
                         blank=self.gloss_vocab.blank_id, zero_infinity=True)
        loss = translation + self.config.ctc_weight * ctc
        return {"loss": loss, "translation": translation.detach(), "ctc": ctc.detach()}

    @torch.no_grad()
    def generate(self, batch: Any, beam_size: int = 1, length_penalty: float = 1.0,
                 max_len: int = 60) -> list[str]:
        memory, valid = self.encode(batch)
        tok = self.tokenizer
        token = torch.full((memory.shape[0], 1), tok.bos_id, dtype=torch.long,
                           device=memory.device)
        hidden = self.decoder.initial_state(memory, valid)
        out: list[torch.Tensor] = []
        done = torch.zeros(memory.shape[0], dtype=torch.bool, device=memory.device)
        with self.nvtx("greedy_search"):
            for _ in range(min(max_len, self.max_len)):
                logits, hidden = self.decoder(token, hidden, memory, valid)
                token = logits[:, -1].argmax(-1, keepdim=True)
                out.append(token)
                done |= token[:, 0] == tok.eos_id
                if done.all():
                    break
        texts = []
        for row in torch.cat(out, 1).tolist():
            texts.append(tok.decode(row[: row.index(tok.eos_id)] if tok.eos_id in row else row))
        return texts
