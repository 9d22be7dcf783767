"""SignBind-LLM's configuration: every knob, the tiny defaults, the paper profile, validation.

``SignBindConfig()`` is the tiny (CPU) profile, ``PAPER_CONFIG`` the paper profile (ViT-S/14
DINOv2 for frames and lips, experts and fusion 512 wide, LLaMA-2-7B dimensions with LoRA on
q/v); ``TINY_DATA`` / ``PAPER_DATA`` are the runner's data defaults per profile. Why each default
is what it is (the choices where the paper is vague, and the measurements behind them):
``docs/methods/signbind.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baselines.signbind.fusion import FUSIONS
from harness.method import SCHEDULERS, ConfigError, check_bounds, check_choices

FRAME_POOLINGS = ("cls_mean", "patches")
LLM_MONITORS = ("loss", "bleu4")
FS_CTC_VIDEOS = ("fingerspelled", "all")
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: tiny LoRA targets: every linear layer plus the token embedding and the LM head
TINY_LORA_TARGETS = (*ALL_LINEAR, "embed_tokens", "lm_head")
#: the runner's tiny data defaults for SignBind (``data_defaults``)
TINY_DATA: dict[str, Any] = {"lang": "en", "train_size": 640, "eval_size": 128,
                             "resolution": 32, "batch_size": 16}
PAPER_DATA: dict[str, Any] = {"lang": "en"}


@dataclass
class SignBindConfig:
    """Every knob of SignBind-LLM (``docs/methods/signbind.md``); the defaults are the tiny
    profile."""

    # frame / lip encoders (DINOv2-architecture ViTs)
    frame_img_size: int = 32
    frame_patch: int = 8
    frame_dim: int = 64
    frame_depth: int = 2
    frame_heads: int = 2
    lip_img_size: int = 8
    lip_patch: int = 4
    lip_dim: int = 32
    lip_depth: int = 1
    lip_heads: int = 2
    vit_init_values: float = 0.1
    frame_encoder_init: str | None = None
    lip_encoder_init: str | None = None
    imagenet_norm: bool = False
    frame_pooling: str = "patches"
    frame_stride: int = 2
    train_encoders: bool = False
    feature_centering: bool = False  # ablation (random-ViT aid; docs: issue 20 section)
    # router and experts
    router_dim: int = 64
    expert_dim: int = 64
    expert_layers: int = 2
    fs_expert_layers: int = 2
    expert_heads: int = 4
    dropout: float = 0.1
    expert_input_dropout: float = 0.0
    fs_ctc_videos: str = "all"
    fs_blank_bias: float = 3.0
    # fusion
    fusion: str = "gate"
    use_fingerspelling: bool = True
    use_lipreading: bool = True
    fusion_dim: int = 64
    fusion_layers: int = 6
    fusion_heads: int = 4
    tau_start: float = 1.0
    tau_end: float = 0.1
    router_weight: float = 1.0
    # LLM
    llm_init: str | None = None
    llm_overrides: dict[str, Any] = field(default_factory=dict)  # LlamaConfig fields
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = TINY_LORA_TARGETS
    vocab_size: int = 1000  # only without a tokenizer (parameter counts)
    pseudo_gloss_vocab_size: int = 300  # only without a pseudo-gloss extractor
    # schedule
    expert_epochs: int = 9
    expert_lr: float = 3e-3
    lip_epochs: int = 2
    lip_lr: float = 3e-3
    fusion_epochs: int = 4
    fusion_lr: float = 2e-3
    fusion_warm_start: bool = True
    llm_epochs: int = 10
    llm_lr: float = 3e-3
    llm_monitor: str = "loss"
    warmup_steps: int = 20
    scheduler: str = "constant"
    weight_decay: float = 0.01
    batch_size: int = 16
    beam_size: int = 5
    amp: bool = False

    def validate(self) -> None:
        """Raise :class:`harness.method.ConfigError` for the first unusable value."""
        check_choices("SignBindConfig", {
            "frame_pooling": (self.frame_pooling, FRAME_POOLINGS),
            "fusion": (self.fusion, FUSIONS), "scheduler": (self.scheduler, SCHEDULERS),
            "fs_ctc_videos": (self.fs_ctc_videos, FS_CTC_VIDEOS),
            "llm_monitor": (self.llm_monitor, LLM_MONITORS)})
        for name in ("use_fingerspelling", "use_lipreading", "imagenet_norm", "amp",
                     "train_encoders", "fusion_warm_start", "feature_centering"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"SignBindConfig.{name} must be true or false, got "
                                  f"{getattr(self, name)!r}")
        check_bounds(self, positive=(
            "frame_img_size", "frame_patch", "frame_dim", "frame_depth", "frame_heads",
            "lip_img_size", "lip_patch", "lip_dim", "lip_depth", "lip_heads", "frame_stride",
            "router_dim", "expert_dim", "expert_heads", "fusion_dim", "fusion_layers",
            "fusion_heads", "tau_start", "tau_end", "lora_r", "batch_size", "beam_size"))
        if not 0.0 <= self.expert_input_dropout < 1.0:
            raise ConfigError(f"SignBindConfig.expert_input_dropout must be in [0, 1), got "
                              f"{self.expert_input_dropout}")
        check_bounds(self, non_negative=("expert_epochs", "lip_epochs", "fusion_epochs",
                                         "llm_epochs", "router_weight", "expert_layers",
                                         "fs_expert_layers"))
        for d, h, what in ((self.expert_dim, self.expert_heads, "expert"),
                           (self.fusion_dim, self.fusion_heads, "fusion"),
                           (self.frame_dim, self.frame_heads, "frame"),
                           (self.lip_dim, self.lip_heads, "lip")):
            if d % h:
                raise ConfigError(f"SignBindConfig.{what}_dim {d} is not divisible by "
                                  f"{what}_heads {h}")
        if self.llm_epochs < 1:
            raise ConfigError("SignBindConfig.llm_epochs must be >= 1 (the LLM stage produces "
                              "the translations)")


PAPER_CONFIG = SignBindConfig(
    frame_img_size=224, frame_patch=14, frame_dim=384, frame_depth=12, frame_heads=6,
    lip_img_size=56, lip_patch=14, lip_dim=384, lip_depth=12, lip_heads=6,
    vit_init_values=1e-5, imagenet_norm=True, frame_pooling="cls_mean", frame_stride=1,
    train_encoders=True, scheduler="cosine", llm_monitor="bleu4",
    router_dim=256, expert_dim=512, expert_layers=4, fs_expert_layers=4, expert_heads=8,
    fusion_dim=512, fusion_layers=6, fusion_heads=8, lora_targets=("q_proj", "v_proj"),
    vocab_size=32000, pseudo_gloss_vocab_size=3000,
    expert_epochs=40, expert_lr=1e-4, lip_epochs=40, lip_lr=1e-4, fusion_epochs=40,
    fusion_lr=1e-4, llm_epochs=5, llm_lr=2e-4, warmup_steps=500, batch_size=8, amp=True,
)

__all__ = ["ALL_LINEAR", "FRAME_POOLINGS", "FS_CTC_VIDEOS", "LLM_MONITORS", "PAPER_CONFIG",
           "PAPER_DATA", "TINY_DATA", "TINY_LORA_TARGETS", "SignBindConfig"]
