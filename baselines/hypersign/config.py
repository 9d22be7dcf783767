"""HyperSign's configuration: :class:`HyperSignConfig`, the paper profile and the tiny constants.

Every knob of the method is a field (``--set`` may override any of them); the defaults are the
tiny profile, :data:`PAPER_CONFIG` the paper's (Sec. 3.2: 40 epochs, lr 1e-5, SST 128 × 128,
λ1 = 1, λ2 = 5, KL annealing over 4K steps, batch 16, AMP). How each field reads the paper, and
the measurements behind the tiny values: ``docs/methods/hypersign.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baselines.common import mbart as mb
from baselines.common.encoders import KEYPOINT_NORMALIZATIONS
from harness.method import ConfigError, check_bounds, check_choices
from harness.ops.hyper import VARIANTS

FUSIONS = ("hypernetwork", "mixup", "gated", "linear_relu")
ALPHA_STRATEGIES = ("progressive", "fixed", "rdrop", "uniform")
STREAMS = ("both", "rgb", "keypoints")
KL_ENC_MODES = ("position", "pooled")
BRIDGES = ("none", "gloss")
BRIDGE_FUSIONS = ("joint", "average")
SST_POOLS = ("max", "mean")
PRETRAIN_STAGE = "stream_pretrain"
G2T_STAGE = "gloss2text"
#: parameter-name prefixes of the stream feature extractors (pre-trained in stage 1)
EXTRACTOR_PREFIXES = ("rgb_encoder.", "keypoint_encoder.")
CTC_PREFIXES = ("rgb_ctc.", "keypoint_ctc.", "fused_ctc.")
GLOSS_EMBEDDING_PREFIX = "gloss_embedding."
TINY_EPOCHS = 20
TINY_PRETRAIN_EPOCHS = 20
TINY_G2T_EPOCHS = 10
#: the runner's tiny data defaults for HyperSign (``data_defaults``; docs/methods/hypersign.md)
TINY_DATA: dict[str, Any] = {"train_size": 512, "eval_size": 128, "resolution": 32,
                             "batch_size": 16}


@dataclass
class HyperSignConfig:
    """Every knob of HyperSign (the reading of each: ``docs/methods/hypersign.md``)."""

    # sizes
    d_model: int = 128
    rgb_channels: tuple[int, ...] = (8, 16, 32)
    rgb_pool: int = 4
    frame_stride: int = 2
    keypoint_joints: int = 75
    keypoint_hidden: int = 256
    keypoint_normalize: str = "body"
    encoder_dropout: float = 0.1
    mbart_layers: tuple[int, int] = (2, 2)
    mbart_heads: int = 4
    mbart_ffn: int = 256
    mbart_dropout: float = 0.1
    mbart_attention_dropout: float = 0.0
    mbart_max_positions: int = 512
    vocab_size: int = 1000  # used only without a tokenizer (parameter counts)
    init: str | None = None  # local mBART checkpoint directory
    # streams and fusion
    stream: str = "both"
    fusion: str = "hypernetwork"
    hyper_variant: str = "dsg"
    fusion_dropout: float = 0.5
    fusion_activation: str | None = "relu"
    # partial shortcut
    alpha_strategy: str = "progressive"
    alpha_T_epochs: float | None = None
    alpha_T_fraction: float = 0.375  # tiny: CSL's 15/40, chosen on dev (paper profile: 1.0)
    alpha_eps: float = 1e-3
    # self-distillation
    use_kl_enc: bool = True
    use_kl_dec: bool = True
    kl_enc_mode: str = "position"
    lambda_enc: float = 1.0
    lambda_dec: float = 5.0
    kl_anneal_steps: int | None = None
    kl_anneal_fraction: float = 0.225
    # SST contrastive learning
    use_contrastive: bool = True
    use_sst: bool = True
    use_cross_pairs: bool = True
    sst_tokens: int = 64
    sst_dim: int = 64
    sst_pool: str = "max"
    sst_scale: float | None = None  # None: 1/sqrt(sst_dim)
    temperature: float = 0.07
    # stage 1: per-stream sign-to-gloss pre-training (CTC), TS-SLT's S2G
    pretrain_epochs: int = TINY_PRETRAIN_EPOCHS
    pretrain_lr: float = 3e-3
    pretrain_warmup_steps: int = 30
    pretrain_scheduler: str = "constant"
    freeze_extractors: bool = True
    # stage 2: gloss-to-text pre-training of mBART (+ a gloss embedding table), TS-SLT's G2T
    g2t_epochs: int = TINY_G2T_EPOCHS
    g2t_lr: float = 3e-3
    g2t_warmup_steps: int = 30
    # stage 3 (translation): gloss-embedding bridge and auxiliary CTC (our choices)
    bridge: str = "gloss"
    bridge_fusion: str = "joint"
    ctc_weight: float = 0.0
    label_smoothing: float = 0.2
    epochs: int = TINY_EPOCHS
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 30
    batch_size: int = 16
    amp: bool = False
    cache_features: bool = True  # frozen extractors: extract once per training sample

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a value outside its choices or range."""
        choices = {"stream": (self.stream, STREAMS), "fusion": (self.fusion, FUSIONS),
                   "hyper_variant": (self.hyper_variant, VARIANTS),
                   "alpha_strategy": (self.alpha_strategy, ALPHA_STRATEGIES),
                   "kl_enc_mode": (self.kl_enc_mode, KL_ENC_MODES),
                   "sst_pool": (self.sst_pool, SST_POOLS),
                   "keypoint_normalize": (self.keypoint_normalize, KEYPOINT_NORMALIZATIONS),
                   "bridge": (self.bridge, BRIDGES),
                   "bridge_fusion": (self.bridge_fusion, BRIDGE_FUSIONS)}
        check_choices("HyperSignConfig", choices)
        check_bounds(self, positive=("d_model", "sst_tokens", "sst_dim", "temperature",
                                     "alpha_eps", "alpha_T_fraction", "epochs", "batch_size"),
                     non_negative=("pretrain_epochs", "g2t_epochs", "ctc_weight"))
        if self.d_model % self.mbart_heads:
            raise ConfigError(f"HyperSignConfig.d_model {self.d_model} is not divisible by "
                              f"mbart_heads {self.mbart_heads}")


PAPER_CONFIG = HyperSignConfig(
    d_model=1024, rgb_channels=(64, 128, 256, 512), rgb_pool=2, frame_stride=1,
    keypoint_hidden=1024,
    mbart_layers=(12, 12), mbart_heads=16, mbart_ffn=4096, mbart_dropout=0.1,
    mbart_attention_dropout=0.1, mbart_max_positions=mb.MAX_POSITIONS, vocab_size=3000,
    sst_tokens=128, sst_dim=128, kl_anneal_steps=4000, epochs=40, alpha_T_fraction=1.0, lr=1e-5,
    weight_decay=0.001,
    warmup_steps=0, batch_size=16, amp=True,
    pretrain_epochs=40, pretrain_lr=1e-3, pretrain_warmup_steps=0, pretrain_scheduler="cosine",
    g2t_epochs=40, g2t_lr=1e-5, g2t_warmup_steps=0,
    # the paper's model: no gloss-embedding bridge, no joint CTC head (ablations: bridge="gloss",
    # bridge_fusion="joint"; docs/methods/hypersign.md, "Profiles")
    bridge="none", bridge_fusion="average",
)
