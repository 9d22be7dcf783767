"""SignX's configuration: :class:`SignXConfig` (the tiny profile's defaults), the paper profile's
values (:data:`PAPER_CONFIG`, Table 8 and Appendix 0.B-0.C) and their validation.

Every field is an option ``--set`` may override. Where each value comes from (paper, our choice
or a tiny-profile measurement) is listed in ``docs/methods/signx.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.data.synthetic.poses import POSE_FORMATS
from harness.method import ConfigError, check_choices

PIPELINES = ("latent", "pixel", "transformer")
RECOGNIZER_INPUTS = ("vid2pose", "poses")
GLOSS_OUTPUTS = ("decoder", "ctc")
#: the training stages, in schedule order (the teacher only with ``use_distillation``)
TEACHER_STAGE, P2G_STAGE, V2P_STAGE, REC_STAGE = "teacher", "pose2gloss", "vid2pose", "recognizer"


@dataclass
class SignXConfig:
    """Every SignX setting; the defaults are the tiny profile (see docs/methods/signx.md)."""

    pipeline: str = "latent"
    formats: tuple[tuple[str, int], ...] = tuple(POSE_FORMATS.items())
    zero_formats: tuple[str, ...] = ()  # Table 5: formats zeroed before the pose encoder
    recognizer_input: str = "vid2pose"  # "poses": train/infer on ground-truth pose latents
    frame_stride: int = 2  # every s-th frame (and pose frame) is read; 1 = all (paper)
    # Pose2Gloss
    format_dim: int = 32
    fusion_heads: int = 4
    latent_dim: int = 64
    vit_layers: int = 1
    vit_heads: int = 4
    p2g_dec_dim: int = 64
    p2g_dec_layers: int = 1
    p2g_dec_heads: int = 4
    contrast_dim: int = 32
    contrast_tau: float = 0.3
    lambda_text: float = 1.0
    lambda_word: float = 1.0
    lambda_contrast: float = 1.0
    p2g_label_smoothing: float = 0.1
    tf_start: float = 0.5
    tf_end: float = 0.0
    p2g_dropout: float = 0.1
    padmatch_norm: bool = False  # LayerNorm after PadMatch (docs: "Tiny-profile learning")
    # Vid2Pose
    image_size: int = 32
    patch_size: int = 8
    v2p_dim: int = 64
    v2p_depth: int = 1
    v2p_heads: int = 4
    v2p_temporal_layers: int = 1
    latent_match_weight: float = 0.0
    # pretrained parts (docs: "Pretrained stand-ins (issue 20)"): a checkpoint path each, the
    # runner passes a stand-in's when the user gives none; None = random start
    vid2pose_init: str | None = None  # the pose-estimator stand-in: the whole Vid2Pose
    teacher_init: str | None = None  # the teacher's ResNet-34 backbone (ImageNet in practice)
    visual_init: str | None = None  # the pixel / transformer pipelines' ResNet-34
    # teacher / visual encoders (ResNet-34)
    use_distillation: bool = False  # tiny: off (CPU budget); paper: on
    teacher_width: int = 8
    teacher_hidden: int = 64
    teacher_image_size: int | None = 16  # frames resized for the teacher CNN; None = as given
    visual_width: int = 8
    lambda_kd: float = 1.0
    lambda_student_ctc: float = 1.0
    kd_temperature: float = 1.0
    # recogniser
    tconv_dim: int = 64
    kernels: tuple[int, ...] = (3, 5, 7)
    lstm_hidden: int = 64
    lstm_layers: int = 1
    d_model: int = 64
    enc_layers: int = 1
    dec_layers: int = 1
    heads: int = 4
    ffn: int = 128
    p_attn: float = 0.1
    p_relu: float = 0.1
    p_res: float = 0.1
    gamma: float = 0.1
    rho: float = 0.1
    keep_ratio: float = 0.75  # tiny; paper 0.5 (2048 -> ~1024)
    prune_every: int = 3
    student_hidden: int = 64
    ce_weight: float = 1.0
    ctc_weight: float = 1.0
    smooth_weight: float = 0.1
    smooth_radius: float = 1.0
    label_smoothing: float = 0.1
    use_translation: bool = True
    translation_weight: float = 1.0
    # decoding / averaging
    beam_size: int = 8
    entropy_alpha: float = 0.2
    length_penalty: float = 0.0
    max_len: int = 40
    gloss_output: str = "decoder"  # "decoder": refinement decoder (paper); "ctc": CTC head
    ctc_length_slack: int | None = 2  # gloss hypotheses <= |CTC greedy| + slack; None = off
    average_top_k: int = 5
    cache_latents: bool = True
    # tiny: the pose encoder (E_i + fusion + PadMatch + ViT) fine-tunes with the recogniser on
    # the frozen Vid2Pose output (docs: "Tiny-profile learning")
    finetune_pose_encoder: bool = True
    # tiny: Vid2Pose fine-tunes with the recogniser too (gloss losses + its own eq.-14 MSE kept
    # as an auxiliary term weighted ``v2p_aux_weight``); docs: "Tiny-profile learning"
    finetune_vid2pose: bool = False
    v2p_aux_weight: float = 1.0
    # schedule
    teacher_epochs: int = 1
    p2g_epochs: int = 4
    v2p_epochs: int = 7  # from a random Vid2Pose (no vid2pose_init)
    v2p_finetune_epochs: int = 0  # the vid2pose stage from a pretrained Vid2Pose (vid2pose_init)
    rec_epochs: int = 24
    teacher_lr: float = 3e-3
    p2g_lr: float = 2e-3
    v2p_lr: float = 1e-3
    # Vid2Pose stage batch; None = the run's. 4 (more steps) was the tiny aid of a random start
    # (docs: round 2), now an ablation: --no-standins --set v2p_batch_size=4
    v2p_batch_size: int | None = None
    rec_lr: float = 3e-3
    rec_warmup: int = 800  # Noam warm-up (tiny: 800 of 1,536 steps; docs: round 6)
    p2g_warmup: int = 10
    v2p_warmup: int = 10
    p2g_grad_clip: float = 7.0

    def __post_init__(self) -> None:
        # coercion of JSON / ``--set`` values that ``SLTMethod.build_config`` does not cover
        self.formats = tuple((str(n), int(w)) for n, w in self.formats)
        if isinstance(self.zero_formats, str):
            self.zero_formats = tuple(f for f in self.zero_formats.split(",") if f)
        self.zero_formats = tuple(self.zero_formats)
        self.kernels = tuple(int(k) for k in self.kernels)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a value SignX cannot use."""
        check_choices("SignXConfig", {
            "pipeline": (self.pipeline, PIPELINES),
            "recognizer_input": (self.recognizer_input, RECOGNIZER_INPUTS),
            "gloss_output": (self.gloss_output, GLOSS_OUTPUTS)})
        unknown = sorted(set(self.zero_formats) - {n for n, _ in self.formats})
        if unknown:
            raise ConfigError(f"signx: zero_formats {unknown} are not pose formats "
                              f"{[n for n, _ in self.formats]}")
        if self.average_top_k < 1:
            raise ConfigError(f"signx: average_top_k must be >= 1, got {self.average_top_k}")
        if self.frame_stride < 1:
            raise ConfigError(f"signx: frame_stride must be >= 1, got {self.frame_stride}")
        if self.prune_every < 1:
            raise ConfigError(f"signx: prune_every must be >= 1, got {self.prune_every}")


#: The paper profile (Table 8, Appendix 0.B-0.C; recogniser epochs are not given: 80, ours).
PAPER_CONFIG: dict[str, Any] = dict(
    format_dim=512, fusion_heads=8, latent_dim=2048, vit_layers=6, vit_heads=16, p2g_dec_dim=512,
    p2g_dec_layers=3, p2g_dec_heads=8, contrast_dim=256, p2g_dropout=0.1, image_size=224,
    patch_size=16, v2p_dim=384, v2p_depth=12, v2p_heads=6, v2p_temporal_layers=2,
    teacher_width=64, teacher_hidden=512, visual_width=64, tconv_dim=1024, lstm_hidden=512,
    lstm_layers=2, d_model=256, enc_layers=6, dec_layers=6, heads=4, ffn=1024, p_attn=0.3,
    p_relu=0.5, p_res=0.4, prune_every=5, student_hidden=1024, teacher_epochs=40,
    p2g_epochs=500, v2p_epochs=300, rec_epochs=80, teacher_lr=1e-3, p2g_lr=1e-3, v2p_lr=1e-3,
    rec_lr=256 ** -0.5 * 4000 ** -0.5, rec_warmup=4000, p2g_warmup=500,
    v2p_warmup=500,
    max_len=64, cache_latents=False, frame_stride=1, teacher_image_size=None,
    use_distillation=True, finetune_pose_encoder=False, finetune_vid2pose=False,
)


#: The tiny profile's data defaults (``SignX.data_defaults["tiny"]``): dev / test of 128 videos
#: each (issue 20, item 5), 1,024 training videos (docs: round 6).
TINY_DATA: dict[str, Any] = {"train_size": 1024, "eval_size": 128, "resolution": 32,
                             "batch_size": 16, "eval_batch_size": 32, "measure_iters": 5}


def base_config(profile: str) -> SignXConfig:
    """The config of ``profile`` before overrides (``"paper"``: :data:`PAPER_CONFIG`)."""
    return SignXConfig(**PAPER_CONFIG) if profile == "paper" else SignXConfig()


__all__ = ["GLOSS_OUTPUTS", "P2G_STAGE", "PAPER_CONFIG", "PIPELINES", "RECOGNIZER_INPUTS",
           "REC_STAGE", "TEACHER_STAGE", "TINY_DATA", "V2P_STAGE", "SignXConfig", "base_config"]
