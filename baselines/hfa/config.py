"""HFA's configuration: :class:`HFAConfig` (the tiny profile's defaults), ``PAPER_CONFIG``.

Every field is an option ``--set`` may override; ``HFAConfig.validate`` checks them (a bad value
raises :class:`harness.method.ConfigError`). The paper profile follows Sec. 4.2 of Asasi, Lakhal
& Bowden (IVA 2025) with Sign2GPT's public config where the paper is silent; the tiny profile and
its aids (``align_text_norm``, ``decoder_token_dropout``, ``psp_weight`` 30; ablations, off:
frame / text pretraining, ``finetune_psp_weight``) are explained, with the measurements, in
``docs/methods/hfa.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baselines.common import mbart as mb
from harness.method import ConfigError, check_bounds, check_choices

#: how the ViT / mBART train: LoRA adapters over frozen weights, or every weight
TRAIN_MODES = ("lora", "full")
#: Table 3 (trainable, total) per phase, and the mBART vocabulary both totals imply
PAPER_TABLE3 = {"pretraining": (15_200_325, 346_123_973), "fine_tuning": (16_819_712, 395_924_608)}
PAPER_VOCAB = 2172
#: the runner's data settings per profile (``SLTMethod.data_defaults``)
TINY_DATA: dict[str, Any] = {"train_size": 512, "eval_size": 128, "resolution": 28,
                             "batch_size": 16}
PAPER_DATA: dict[str, Any] = {"resolution": 224, "batch_size": 16}


@dataclass
class HFAConfig:
    """Every knob of HFA (``docs/methods/hfa.md``); the defaults are the tiny profile."""

    # frame level
    img_size: int = 28  # frames are resized to img_size × img_size
    vit_img_size: int | None = None  # the ViT's position grid (None: img_size); DINOv2: 518
    patch_size: int = 14
    vit_dim: int = 64
    vit_depth: int = 3
    vit_heads: int = 2
    vit_init: str | None = None
    vit_init_values: float | None = 1.0  # LayerScale init (DINOv2 / paper: 1e-5)
    vit_train: str = "full"
    vit_lora_blocks: int = 3
    vit_lora_r: int = 4
    vit_lora_alpha: float = 4.0
    vit_lora_dropout: float = 0.1
    frame_dim: int = 64
    frame_stride: int = 2  # the paper profile's (Sign2GPT's stride 2); tiny was 4 until r19 (docs)
    # frame-encoder warm-up inside the method (ablation, off: the vit_init stand-in replaces it)
    frame_pretrain_epochs: int = 0
    frame_pretrain_lr: float = 3e-3
    # segment level
    temporal_dim: int = 64
    temporal_layers: int = 4
    temporal_heads: int = 4
    temporal_ffn: int = 128
    window: int = 7
    downsample_after: int = 2
    dropout: float = 0.1
    temporal_layer_scale: float = 1.0  # LayerScale init of the temporal blocks (paper: 1e-5)
    # video level / language model
    d_model: int = 128
    mbart_layers: tuple[int, int] = (2, 2)
    mbart_heads: int = 4
    mbart_ffn: int = 256
    mbart_dropout: float = 0.1
    mbart_attention_dropout: float = 0.0
    mbart_max_positions: int = 512
    vocab_size: int = 1000  # only without a tokenizer
    init: str | None = None  # local mBART checkpoint directory
    mbart_train: str = "full"
    mbart_lora_r: int = 16
    mbart_lora_alpha: float = 32.0
    mbart_lora_dropout: float = 0.1
    # text pretraining inside the method (ablation, off: the init= mBART stand-in replaces it)
    text_pretrain_epochs: int = 0
    text_pretrain_lr: float = 3e-3
    text_mask_prob: float = 0.35
    # pretraining
    psp_weight: float = 30.0  # λ of eq. (5); Table 2: 0, 0.5, 1 (paper profile: 1)
    fasttext: str | None = None  # local fastText model (.vec / .bin) for the prototypes
    prototype_temperature: float = 0.1
    psp_dropout: float = 0.2
    align_temperature: float = 0.07
    align_text_norm: bool = True  # centre / scale ψ_te's pooled outputs (tiny only)
    pretrain_epochs: int = 7
    pretrain_lr: float = 1e-3
    pretrain_warmup_steps: int = 16
    # fine-tuning
    finetune_decoder_epochs: int = 2
    finetune_all_epochs: int = 9
    lr: float = 1e-3
    weight_decay: float = 1e-3
    warmup_steps: int = 16
    label_smoothing: float = 0.2
    decoder_token_dropout: float = 0.3  # tiny-only aid: decoder inputs → <unk>
    finetune_psp_weight: float = 0.0  # ablation (tiny was 30): L_psp kept in finetune_all
    batch_size: int = 16

    def validate(self) -> None:
        """Raise :class:`ConfigError` for the first field whose value cannot be used."""
        check_choices("HFAConfig", {name: (getattr(self, name), TRAIN_MODES)
                                    for name in ("vit_train", "mbart_train")})
        if self.img_size % self.patch_size:
            raise ConfigError(f"HFAConfig.img_size {self.img_size} is not a multiple of "
                              f"patch_size {self.patch_size}")
        if not 0 <= self.vit_lora_blocks <= self.vit_depth:
            raise ConfigError(f"HFAConfig.vit_lora_blocks {self.vit_lora_blocks} must be in "
                              f"[0, vit_depth={self.vit_depth}]")
        for name in ("text_mask_prob", "decoder_token_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"HFAConfig.{name} must be in [0, 1), got "
                                  f"{getattr(self, name)}")
        check_bounds(self, non_negative=("psp_weight", "finetune_psp_weight",
                                         "frame_pretrain_epochs", "text_pretrain_epochs",
                                         "pretrain_epochs", "finetune_decoder_epochs",
                                         "finetune_all_epochs", "label_smoothing"))
        check_bounds(self, positive=("frame_stride", "batch_size", "prototype_temperature",
                                     "align_temperature", "window"))
        if self.finetune_decoder_epochs + self.finetune_all_epochs == 0:
            raise ConfigError("HFAConfig: at least one fine-tuning epoch is needed")


#: the paper profile (Sec. 4.2; Sign2GPT's config where the paper is silent)
PAPER_CONFIG = HFAConfig(
    img_size=224, vit_img_size=518, vit_init_values=1e-5, temporal_layer_scale=1e-5,
    text_pretrain_epochs=0, frame_pretrain_epochs=0, align_text_norm=False, vit_dim=384,
    vit_depth=12, vit_heads=6, vit_train="lora", frame_dim=512,
    temporal_dim=512, temporal_heads=8, temporal_ffn=2048, d_model=1024, mbart_layers=(12, 12),
    frame_stride=2, mbart_heads=16, mbart_ffn=4096, mbart_attention_dropout=0.1,
    mbart_max_positions=mb.MAX_POSITIONS, vocab_size=PAPER_VOCAB, mbart_train="lora",
    label_smoothing=0.0, psp_weight=1.0, decoder_token_dropout=0.0, finetune_psp_weight=0.0,
    pretrain_epochs=100, pretrain_lr=3e-4, pretrain_warmup_steps=2220,
    finetune_decoder_epochs=100, finetune_all_epochs=200, lr=3e-4, warmup_steps=2220,
)


__all__ = ["PAPER_CONFIG", "PAPER_DATA", "PAPER_TABLE3", "PAPER_VOCAB", "TINY_DATA",
           "TRAIN_MODES", "HFAConfig"]
