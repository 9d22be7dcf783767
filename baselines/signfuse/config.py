"""SignFuse's configuration: ``SignFuseConfig`` (defaults = the tiny profile), ``PAPER_CONFIG``
(Tables 1–2) and the tiny-profile constants.

Every field is an option ``signbench run --methods signfuse --set key=value`` may override
(``SignFuse.build_config``); ``validate()`` raises ``ConfigError``. What each tiny value departs
from and why: ``docs/methods/signfuse.md`` ("Profiles", "Measurements").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baselines.signfuse.cmfa import FUSIONS
from harness.method import ConfigError, check_bounds, check_choices

PROMPT = "Translate the following sign language video into a spoken language sentence:"
STREAMS = ("both", "visual", "skeletal")
TRAININGS = ("progressive", "single")
ALIGN_TARGETS = ("interp", "mean")
PRETRAIN_PREFIXES = ("text", "none")
STAGE_NAMES = ("stream_pretrain", "llm_pretrain", "contrastive", "alignment", "finetune")
#: which stream encoders the ``stream_pretrain`` aid trains
PRETRAIN_STREAMS = ("skeletal", "visual", "both")
#: the paper's trainable parameters excluding the frozen LLM (Sec. 4.1), in millions
PAPER_TRAINABLE_M = 65.9
#: tiny-profile epochs per stage (llm_pretrain, contrastive, alignment, finetune)
TINY_EPOCHS: tuple[int, int, int, int] = (5, 1, 10, 1)
#: tiny-profile epochs of the ``stream_pretrain`` aid (docs: probe round 6)
TINY_STREAM_PRETRAIN_EPOCHS = 8
TINY_DATA: dict[str, Any] = {"train_size": 1024, "eval_size": 128, "resolution": 32,
                             "batch_size": 16}
#: the frame side the runner feeds at the paper profile (its ``PROFILE_DATA``; 224 in the
#: paper itself): the ResNet stand-in's input at ``paper``
PAPER_RESOLUTION = 64
STEPS_PER_EPOCH_PAPER = 222  # PHOENIX-2014T: 7096 training videos / batch 32


@dataclass
class SignFuseConfig:
    """Every knob of SignFuse (``docs/methods/signfuse.md``); defaults = the tiny profile."""

    # sizes
    d_model: int = 64
    frame_stride: int = 4  # tiny: every 4th frame of both streams (docs: "Profiles")
    resnet_base_width: int = 4
    resnet_layers: tuple[int, int, int, int] = (3, 4, 6, 3)  # ResNet-50's blocks per stage
    stgcn_channels: tuple[int, ...] = (2, 8, 16, 32, 64)
    stgcn_kernel: int = 5  # tiny (round 6); paper 9
    stgcn_strides: tuple[int, ...] = (2, 1, 1, 1)  # per block; tiny (round 6); paper (1, 1, 2, 1)
    stgcn_dropout: float = 0.2  # tiny (round 6); paper 0
    #: stream encoders' BatchNorm momentum; None (tiny): cumulative average, reset at the start
    #: of every stage — and every epoch of it — that trains the encoders (docs: "BN
    #: statistics" and round 6 (c))
    bn_momentum: float | None = None
    skeleton_hand_gain: float = 3.0  # 0: body frame only (stgcn.normalize_skeleton)
    cmfa_layers: int = 2
    heads: int = 4
    ffn_mult: int = 4
    dropout: float = 0.1
    hta_len: int = 16
    hta_scales: tuple[int, ...] = (1, 5, 11)
    sign_tokens: int = 8
    sla_hidden: int | None = None  # None: d_LLM
    # LLM
    llm_profile: str = "tiny"
    llm_overrides: dict[str, Any] = field(default_factory=dict)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    prompt: str = PROMPT
    vocab_size: int = 1000  # only without a tokenizer (parameter counts)
    # weights
    resnet_init: str | None = None
    llm_init: str | None = None
    #: ST-GCN weights (``baselines.common.weights.load_weights``, strict); the paper starts it
    #: random. ``stgcn_standin``: declare a ``keypoint`` stand-in for it (an ablation; docs:
    #: "Pretrained stand-ins")
    stgcn_init: str | None = None
    stgcn_standin: bool = False
    #: the ``llama`` stand-in learns to read a soft prefix too (the sentence's own embeddings as
    #: ``align_target`` gives them, N_s tokens, noise ``llm_pretrain_noise``, then the prompt):
    #: what a real LLaMA-2 can and a text-only stand-in cannot (docs: "Pretrained stand-ins")
    llm_standin_prefix: bool = True
    # ablations
    streams: str = "both"
    fusion: str = "cmfa"
    use_hta: bool = True
    training: str = "progressive"
    # losses
    temperature: float = 0.07
    lambda_contra: float = 0.1
    lambda_align: float = 0.05
    align_target: str = "mean"  # tiny (round 6); paper "interp"
    # schedule (Table 2); warm-up in steps
    #: the word-presence aid for the stream encoders (docs: "Stream pre-training"); off (0)
    #: since the ResNet stand-in (issue 20); ablation: ``stream_pretrain_epochs=8``
    stream_pretrain_epochs: int = 0
    stream_pretrain_lr: float = 5e-3
    stream_pretrain_streams: str = "skeletal"
    #: the LLM pre-training aid (docs: "LLM pre-training"); off (0) since the llama stand-in
    #: (``llm_init``, issue 20); ablation: ``llm_pretrain_epochs=5`` (with ``--no-standins``)
    llm_pretrain_epochs: int = 0
    epochs: tuple[int, int, int] = TINY_EPOCHS[1:]
    lrs: tuple[float, float, float] = (5e-4, 3e-3, 1e-3)
    llm_pretrain_lr: float = 3e-3
    llm_pretrain_prefix: str = "text"  # "text": sg(E_text) resampled to N_s + noise; "none"
    llm_pretrain_noise: float = 0.5  # noise std relative to the prefix's std
    warmup_steps: tuple[int, int, int] = (10, 10, 10)
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    batch_size: int = 16

    def validate(self) -> None:
        """Raise ``ConfigError`` for a value SignFuse cannot use."""
        choices = {"streams": (self.streams, STREAMS), "fusion": (self.fusion, FUSIONS),
                   "training": (self.training, TRAININGS),
                   "align_target": (self.align_target, ALIGN_TARGETS),
                   "llm_pretrain_prefix": (self.llm_pretrain_prefix, PRETRAIN_PREFIXES),
                   "stream_pretrain_streams": (self.stream_pretrain_streams, PRETRAIN_STREAMS),
                   "llm_profile": (self.llm_profile, ("tiny", "paper"))}
        check_choices("SignFuseConfig", choices)
        check_bounds(self, positive=("d_model", "frame_stride", "resnet_base_width",
                                     "cmfa_layers", "heads", "ffn_mult", "hta_len",
                                     "sign_tokens", "lora_r", "batch_size"))
        if len(self.resnet_layers) != 4 or min(self.resnet_layers) < 1:
            raise ConfigError(f"SignFuseConfig.resnet_layers must be 4 block counts >= 1, got "
                              f"{self.resnet_layers}")
        if self.d_model % self.heads:
            raise ConfigError(f"SignFuseConfig.d_model {self.d_model} is not divisible by "
                              f"heads {self.heads}")
        if self.stgcn_channels[-1] != self.d_model or len(self.stgcn_channels) != 5:
            raise ConfigError(f"SignFuseConfig.stgcn_channels must be 5 values (input + 4 "
                              f"blocks) ending in d_model = {self.d_model}, got "
                              f"{self.stgcn_channels}")
        for name, n in (("epochs", 3), ("lrs", 3), ("warmup_steps", 3)):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"SignFuseConfig.{name} needs {n} values (one per stage), "
                                  f"got {getattr(self, name)}")
        if len(self.stgcn_strides) != len(self.stgcn_channels) - 1 or min(self.stgcn_strides) < 1:
            raise ConfigError(f"SignFuseConfig.stgcn_strides needs one stride >= 1 per ST-GCN "
                              f"block ({len(self.stgcn_channels) - 1}), got "
                              f"{self.stgcn_strides}")
        if min(self.epochs) < 0 or self.llm_pretrain_epochs < 0 or self.stream_pretrain_epochs < 0:
            raise ConfigError("SignFuseConfig: epochs must be >= 0")
        check_bounds(self, positive=("temperature",))


PAPER_CONFIG = SignFuseConfig(
    d_model=512, resnet_base_width=64, stgcn_channels=(2, 64, 128, 256, 512), cmfa_layers=3,
    stgcn_kernel=9, stgcn_strides=(1, 1, 2, 1), stgcn_dropout=0.0, align_target="interp",
    stream_pretrain_epochs=0,
    heads=8, hta_len=64, sign_tokens=32, frame_stride=1, llm_profile="paper", vocab_size=3000,
    llm_pretrain_epochs=0, epochs=(30, 20, 15), lrs=(1e-4, 5e-5, 2e-5), bn_momentum=0.1,
    warmup_steps=(3 * STEPS_PER_EPOCH_PAPER, 2 * STEPS_PER_EPOCH_PAPER, STEPS_PER_EPOCH_PAPER),
    batch_size=32,
)


def base_config(profile: str) -> SignFuseConfig:
    """The profile's config before overrides: ``PAPER_CONFIG`` or the tiny defaults."""
    return PAPER_CONFIG if profile == "paper" else SignFuseConfig()


__all__ = ["ALIGN_TARGETS", "PAPER_CONFIG", "PAPER_RESOLUTION", "PAPER_TRAINABLE_M",
           "PRETRAIN_PREFIXES",
           "PRETRAIN_STREAMS", "PROMPT", "STAGE_NAMES", "STEPS_PER_EPOCH_PAPER", "STREAMS",
           "TINY_DATA", "TINY_EPOCHS", "TINY_STREAM_PRETRAIN_EPOCHS", "TRAININGS",
           "SignFuseConfig", "base_config"]
