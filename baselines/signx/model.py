"""SignX — continuous sign recognition (and translation) in a pose latent space (Fang et al.).

What the model does (paper Sec. 3-4, Appendix 0.B-0.C; modules named after the paper)
-------------------------------------------------------------------------------------
1. **Pose2Gloss** (stage ``pose2gloss``; :mod:`baselines.signx_latent`): five pose formats
   (DWPose 384, MediaPipe 258, SMPLer-X 165, PrimeDepth 576, Sapiens 576 = 1959 per frame; the
   synthetic corpus renders them as the ``poses`` stream) → per-format encoders E_i → multi-head
   attention fusion → PadMatch → ViT layers → latent z (``latent_dim`` per frame, 2048 in the
   paper), trained through a codebook decoder with L_text + L_word + L_contrast (Table 8).
2. **Vid2Pose** (stage ``vid2pose``): a frame ViT + temporal attention + per-format heads,
   trained with MSE to the five formats while Pose2Gloss is frozen. Inference reads RGB only:
   z = PoseEncoder(Vid2Pose(frames)).
3. **Teacher** (stage ``teacher``, when ``use_distillation``): a ResNet-34
   (``baselines.common.resnet``) frame CNN + temporal conv + gloss classifier trained with CTC,
   then frozen; its logits drive the gloss-aware latent distillation.
4. **Recogniser** (stage ``recognizer``; :mod:`baselines.signx_recognizer`): pose-aware feature
   compilation, adaptive feature pruning, multi-scale TemporalConv, BiLSTM, a CTC-constrained
   Transformer encoder-decoder; loss = CE + CTC + smoothness (+ λ_KD·KD + λ_CTC·student CTC of
   Algorithm 2) (+ the translation decoder's CE). Vid2Pose, Pose2Gloss and the teacher are frozen
   (run in eval mode, no autograd; their outputs are cached per sample for the stage when
   ``cache_latents``), so the recogniser learns on the latents it will see at inference —
   except the pose encoder with ``finetune_pose_encoder`` (tiny), which then trains with the
   recogniser on the cached Vid2Pose output (see "Tiny-profile learning").
5. **Decoding** (:mod:`baselines.signx_decode`): beam 8 with the α × attention-entropy penalty
   (Algorithm 3), gloss decoder → glosses; the same search over the translation decoder → text.
6. **Checkpoint averaging** of the best ``average_top_k`` (5) recogniser epochs by dev WER
   (:mod:`baselines.signx_averaging`), through the optional method hooks
   ``on_epoch_end(record)`` / ``on_fit_end()`` (the trainer calls them when it supports them; see
   ``average_best_checkpoints``).

Task split (our decision)
-------------------------
``task = "recognition"``: SignX is a continuous *recognition* method (its Tables 1, 4-6 are gloss
WER), so the run's main score is gloss WER (``harness.metrics.recognition_scores``; the runner
applies the PHOENIX cleanup on ``phoenix14t``), which the leaderboard shows in its WER column.
Translation (SignX "outputs glosses or text"; Table 3) is a second decoder on the same encoder,
trained jointly on the sentence; ``extra_metrics`` decodes it with the same entropy-penalised beam
and stores ``translation`` = ``translation_scores`` (BLEU-1..4, ROUGE-L, signature) under the run
JSON's ``extra``, next to the CTC-head WER and the pruning / averaging state.

Pipelines (Table 6; ``pipeline``)
---------------------------------
* ``latent`` (default): Vid2Pose + pose encoder + recogniser (the SignX method).
* ``pixel``: the same recogniser on visual features without the pose latent: a ResNet-34 frame
  encoder (``visual``) projected to ``latent_dim``, trained jointly with the recogniser.
* ``transformer``: "Transformer + visual encoder" baseline: ResNet-34 features at frame rate into
  the Transformer encoder-decoder (+CTC head); no compilation, pruning, TemporalConv or BiLSTM.

Choices where the paper is vague (all ``SignXConfig`` fields)
------------------------------------------------------------
See the docstrings of :mod:`baselines.signx_latent` (E_i, fusion pooling, PadMatch, L_word
over tokens, τ = 0.3, scheduled sampling), :mod:`baselines.signx_recognizer` (CrossCov,
frame drop keeps time, GlossAlign, pruning threshold, KD weighting, smoothness hinge),
:mod:`baselines.signx_decode` (entropy of the last layer's head-averaged cross-attention).
Further: γ = 0.1, ρ = 0.1 (not given); pruning every ``prune_every`` epochs; the entropy weight
α = ``entropy_alpha`` = 0.2 (not given); the Vid2Pose loss is eq. (14) alone
(``latent_match_weight`` = 0; > 0 adds an MSE between the pose encoder's latents of predicted and
true poses); Table 8's gradient accumulation (4) is not implemented (the trainer has none).
Recogniser optimisation: Noam (d_model 256, warm-up 4000 → peak 256^-½·4000^-½ ≈ 9.9e-4).
Dropout p_attn/p_relu/p_res = 0.3/0.5/0.4 (paper); the tiny profile uses 0.1 everywhere
(its few epochs do not learn under 0.5 dropout: our choice).

Tiny-profile learning (measured; synthetic ``de``, 256 train / 32 dev, CPU time, 1 thread)
-----------------------------------------------------------------------------------------
* Cost is not the problem: the whole tiny ``signbench run`` took 41 s user+sys CPU with the
  8-epoch schedule (the 803 s reported before were wall time on a machine loaded ~4×).
  Per step: Pose2Gloss 0.09 s, Vid2Pose 0.22 s, recogniser 0.06 s with cached frozen outputs
  (0.15 s in its first epoch, which runs Vid2Pose); loading 256+64 samples ~14 s.
* Best checkpoint by *decoder greedy* dev WER was the main failure: the untrained attention
  decoder loops (greedy dev WER 100 → 350 % → 95 from epoch to epoch), so the trainer kept an
  early epoch. Fix (``ctc_length_slack`` = 2; :mod:`baselines.signx_decode`): every gloss
  hypothesis is capped at |CTC-head greedy path| + 2 tokens — the "CTC-constrained" refinement
  read as a length bound; the dev WER is then ≤ ~100 and monotone enough to select on.
  ``gloss_output="ctc"`` makes ``generate`` return the CTC head's best path instead (tests,
  diagnostics; not the paper's output).
* A frozen pose encoder is a bottleneck at tiny size: a *random* frozen PoseEncoder (format
  width 32) under the recogniser, CTC only, reached dev CTC WER 87 after 20 epochs; the same
  encoder trained jointly 72; a plain trainable Linear over the 1959 pose values 60. The tiny
  Pose2Gloss stage (4 epochs) does not learn much (L_text 5.5 → 4.1). Hence
  ``finetune_pose_encoder`` (tiny: on, paper: off): the pose encoder trains with the recogniser
  on the frozen, cached Vid2Pose output (the recogniser still reads PoseEncoder(Vid2Pose(RGB))
  exactly as at inference). ``keep_ratio`` 0.75 at tiny width 64 (pruning half of 64 dims hurt:
  no-pruning CTC-head WER 87.5 vs 97 with 0.5), recogniser lr 3e-3 (Noam peak), 16 epochs.
* Remaining gap: the RGB → Vid2Pose → latent chain at 32×32 px loses most of what separates
  glosses: on ground-truth poses the recogniser's CTC head falls to train loss ~2 in 20 epochs,
  on Vid2Pose predictions it stays near 3.7; dev WER of the latent pipeline stays ~90.
* Root cause (second round, probes on the 256/32 split, 1 thread): Vid2Pose learned *nothing*:
  dev R² of its 1959 pose values was −0.01 after the 3-epoch stage (it predicts the mean pose;
  loss ≈ 5 × per-dim variance 0.78), also with patch 4, a flattened patch-token readout instead
  of CLS, no temporal layer, 10 epochs or lr 5e-4…3e-3 (best R² 0.03). Pose regression from
  these frames is learnable but slow: closed-form ridge on raw pixels reaches R² 0.23, a
  3072-256-1959 MLP 0.12 in 6 epochs. Two fixes: (1) the ViT read raw [0, 1] pixels — it now
  standardises each channel (ImageNet mean/std, as every ViT; ``signx_latent.IMAGENET_MEAN``);
  (2) the ViT needs ~130+ optimiser steps before its attention localises the hands (a phase
  change, seen when overfitting 8 videos), which 16-sample batches × 3 epochs (48 steps) never
  reach: the stage now runs at batch 4 (``v2p_batch_size``, per-stage ``batch_size`` option;
  same CPU per epoch) for 10 epochs at lr 1e-3 → dev R² 0.18 in the probe, stage dev loss
  4.14 → 3.31 in the full run (6 epochs: 3.49; it plateaus after ~7).
* Tried, not kept on: ``finetune_vid2pose`` (the recogniser stage also trains Vid2Pose, with its
  eq.-14 MSE as an auxiliary term ``v2p_aux_weight``): before the fixes above, 10 recogniser
  epochs stayed at dev WER 95/97 (CTC loss 3.97) and the uncached Vid2Pose pass makes each
  recogniser step ~5× dearer; available as ``--set finetune_vid2pose=true``.
* Measured after the fixes (``signbench run --methods signx``, tiny defaults, 1 core): 105 s
  user+sys CPU; dev / test gloss WER 88.9 / 90.6 (was 98.1 / 98.8), CTC-head WER 89.9 / 88.1;
  translation BLEU-4 0.0 / 5.4 (the translation decoder is still near the sentence prior).
  With 6 Vid2Pose epochs: 95 s, dev WER 90.9. The recogniser's train CTC loss falls to ~3.1
  while dev WER stays ~89-91: the Vid2Pose predictions (R² ~0.15-0.2) still carry too little
  handshape to separate glosses; the target (dev WER ≤ 70) is NOT reached. Not yet tried: a
  larger / longer Vid2Pose within the CPU budget (64-px frames, patch 4 with batch 4), or
  ``finetune_vid2pose`` on top of the fixed Vid2Pose (the GT-pose recogniser reaches ~60).
* Third round (probes on *ground-truth* poses, 256 train / 32 dev, CTC loss only, AdamW,
  CTC-head dev WER after 10 epochs; script-level probes, 1 thread): the recogniser does not
  learn fast even without Vid2Pose, so Vid2Pose is not the only bottleneck. Full runs with
  ``recognizer_input=poses``, no Pose2Gloss / Vid2Pose epochs, 16 recogniser epochs: dev WER
  92.3 (stride 2, 52 s CPU) / 98.1 (stride 1, 71 s), CTC-head 97.1 / 97.6 — the ~60 quoted
  above needed the Pose2Gloss-pretrained encoder and 20 epochs. Frame budget is *not* the
  cause: stride 2 + the two TemporalConv poolings leave T/8 ≈ 2.1 encoder steps per gloss
  (min 1.5; videos 35-227 frames, 2-14 glosses), but stride 1 was no better. Neither are step
  count / lr / signer offsets / Algorithm 1: batch 16 → 88.5, batch 8 → 91.3, batch 4 → 96
  (loss stuck ~4.0), lr 1e-2 → 98, per-video mean-centred poses → 88.5, γ = ρ = 0 and
  keep_ratio 1 → 97.6 (all 10 epochs, ~2-4 s CPU per epoch). The **pose encoder** is:
  replacing E_i + fusion + PadMatch + ViT by one trainable Linear(1959 → 64) over the
  concatenated formats, same recogniser, reaches dev CTC WER 72.1 at epoch 10 (train CTC 2.79,
  still falling fast) vs 91.3 with the PoseEncoder (train CTC 3.37). Within the PoseEncoder:
  dropping its ViT layer (and the sinusoidal positions added before it; E_i + fusion + PadMatch
  only) → 83.2 (train CTC 3.05); removing E_i's LayerNorm or widening E_i to 64
  (``format_dim``) tracked the baseline loss curve over the 4 epochs they ran (not finished).
  Scaling the ViT's input positions by 0.1 did not help (97.6, train CTC 3.89). So the ViT
  layer itself and the fusion cost learning speed. Next step (not done for lack of time): probe
  the ViT layer (dropout 0.1, attention over padded frames, init) and the five-token mean, or
  pre-train the encoder longer in Pose2Gloss, until the PoseEncoder matches the Linear's
  speed; then re-measure on Vid2Pose outputs. ``finetune_vid2pose=true`` on the fixed
  Vid2Pose was started but not finished. Defaults unchanged this round.
* Fourth round (pose encoder read line by line; same GT-pose probe, CTC only, 10 epochs):
  masks are right (the ViT gets the key padding mask, padded outputs are zeroed) and the
  residuals are pre-LN. The concrete defect found is *scale*: PadMatch's output varies by
  only ~0.02 per dim across frames at init (the five-token mean of small E_i outputs through a
  default-initialised Linear over a half-zero input), while the sinusoidal positions added
  before the ViT have amplitude ~0.7 per dim, so the encoder output at init is ~99.6 %
  position (two unrelated pose batches give nearly the same z; content share 0.0037). A
  LayerNorm after PadMatch (``padmatch_norm``) raises the content share to ~0.7 and the probe
  to dev CTC WER 86.5 (train CTC 3.28) vs 91.3 (3.37) — still behind the Linear(1959 → 64)
  (72.1, 2.79). On top of it, positions × 0.1 → 95.2 (train 3.68) and ViT dropout 0 → 92.3
  (3.48): neither helps; run-to-run spread of this probe is several WER points. The full tiny
  run with ``padmatch_norm=true`` (Vid2Pose input): 113 s user+sys CPU, dev / test gloss WER
  92.3 / 94.4, BLEU-4 2.7 / 5.3 — *not* better than the defaults (88.9 / 90.6), so the flag
  stays off (tiny and paper; defaults re-run: 104 s CPU, dev / test WER 88.9 / 90.6, BLEU-4
  0.0 / 5.4, identical to before); on RGB the Vid2Pose predictions (R² ~0.2) remain the binding
  limit. Not yet tried: ``padmatch_norm`` together with more Pose2Gloss epochs or
  ``finetune_vid2pose``; the remaining GT-pose gap to the Linear (format fusion width 32 →
  rank-32 latent, ViT depth) is unexplained.
* Fifth round (full tiny runs, ``signbench run --methods signx``, 1 core; dev / test gloss WER,
  CTC-head WER, BLEU-4; runs are deterministic, CPU s vary ~±15 with machine load). On the
  old defaults (v2p 10 / rec 16: 104 s, 88.9 / 90.6): ``finetune_vid2pose=true`` with v2p 8 /
  recogniser 8 epochs: 105 s, 95.7 / 95.0 (CTC head
  100 / 100; recogniser train CTC 3.65, aux MSE 3.52 → 3.14): the 5×-dearer steps leave too
  few recogniser epochs. ``padmatch_norm=true`` + Pose2Gloss 16 epochs (L_text 4.06 → 3.66,
  L_contrast 2.59 → 1.65; 12 extra Pose2Gloss epochs cost only ~10 s): 100 s, 92.3 / 93.8,
  BLEU-4 3.9 / 4.3 (recogniser train CTC ends at 3.79 vs 2.96 without the norm); Pose2Gloss 16
  alone: 109 s, 91.3 / 93.8 — a longer Pose2Gloss on *ground-truth* poses does not transfer to
  the recogniser on Vid2Pose predictions. Rebalancing towards the recogniser (which also
  fine-tunes the pose encoder): v2p 7 / rec 24: 88.5 s (re-run: 99 s), 87.5 / 88.8, CTC
  head 87.5 / 83.8, BLEU-4 5.1 / 9.6; v2p 10 / rec 24: 117 s, 86.5 / 89.4, CTC head 85.6 /
  86.2, BLEU-4 0.0 / 6.5; v2p 7 / rec 32: 128 s, 86.1 / 88.1, CTC head 83.7 / 91.2, BLEU-4
  3.5 / 0.0. Extra recogniser epochs buy ~1-3 WER points (train CTC 2.96 → 2.44 at 24 epochs,
  but the per-epoch dev WER stays 89-93: the recogniser fits the training videos' Vid2Pose
  predictions without generalising). New tiny defaults v2p 7 / rec 24 (small, consistent gain
  on dev, test and the CTC head; within the budget). Target dev WER ≤ 70 still NOT reached;
  the binding limit remains the Vid2Pose output (R² ~0.2) plus the slow pose-encoder
  recogniser (GT-pose probe: 86.5-91 vs 72 for a Linear). On top of the new defaults, none
  helped: ``latent_match_weight=1`` + Pose2Gloss 12 epochs: 118 s, 87.5 / 89.4; recogniser
  dropout 0.3 (p_attn = p_relu = p_res): 102 s, 88.5 / 90.6 (CTC head 83.2 / 84.4);
  ``v2p_lr=2e-3``: 102 s, 87.5 / 88.8 (Vid2Pose dev loss 3.31, as with 10 epochs at 1e-3);
  ``--train-size 384`` with v2p 5 / rec 16 (same sample-epochs): 115 s, 88.0 / 92.5.
  Which pose components are predictable (numpy probe, 256 train / 64 dev+test videos): the five
  formats are random linear maps of the 225 keypoint values, so per-dimension weights in eq.
  (14) cannot single out hands; in the pose PCA basis 91.6 % of the variance lies in 5
  components (ridge from 32-px pixels: dev R² 0.44), the next 35 hold 5 % (R² 0.01-0.11) and
  the rest ~0 (R² ≤ 0). A per-video bag-of-glosses ridge probe on ground-truth pose statistics
  (mean / std / |Δ| per component) gives dev+test mAP 0.26 from PCs 0-5, 0.29 from PCs 5-225,
  0.33 from all (chance 0.15): about half the gloss evidence sits in components that are not
  linearly predictable from the frames, and the eq.-14 MSE gives them ~8 % of its weight —
  but re-weighting them (e.g. whitened-PCA MSE) would mostly fit noise as long as they are not
  predictable at all at 32 px (not tried).

Profiles
--------
``tiny``: latent 64, format width 32, 1 ViT layer, Vid2Pose 32×32 patch 8 width 64, teacher
ResNet-34 at base width 8, TemporalConv 64, BiLSTM 1×64, Transformer 1+1 layers width 64;
epochs pose2gloss 4 / vid2pose 7 (batch 4) / recogniser 24, every 2nd frame (``frame_stride``); the
ResNet-34 teacher and its distillation are *off* in the tiny profile (``use_distillation``;
a width-8 ResNet-34 over every frame cost ~0.5-1 s per step on 2 CPU cores, which alone
exceeded the 2-minute budget) — ``--set use_distillation=true`` turns them on (1 teacher
epoch on 16×16 frames); the paper profile has them on. ``paper``: latent 2048, format
width 512, 6 ViT layers (16 heads), Vid2Pose ViT-S/16 at 224 (384 wide, 12 layers), ResNet-34
(64), TemporalConv 1024, BiLSTM 2×512, Transformer 6+6 width 256 (4 heads, FFN 1024), Table-8
epochs (Pose2Gloss 500, Vid2Pose 300), recogniser 80 epochs (not given).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines import register
from baselines.base import SLTMethod, Stage, TrainState, check_choices
from baselines.common.sample_cache import SampleCache, repad
from baselines.signx_averaging import TopKAverager
from baselines.signx_decode import entropy_beam_search
from baselines.signx_latent import Pose2Gloss, PoseEncoder, Vid2Pose, vid2pose_loss
from baselines.signx_recognizer import (
    LatentRecognizer,
    ResNetTeacher,
    ctc_greedy,
    ctc_loss_checked,
    distillation_kl,
    frame_features,
    gloss_prior_weights,
    smoothness_loss,
)
from harness.data.synthetic.poses import POSE_FORMATS

PIPELINES = ("latent", "pixel", "transformer")
RECOGNIZER_INPUTS = ("vid2pose", "poses")
TEACHER_STAGE, P2G_STAGE, V2P_STAGE, REC_STAGE = "teacher", "pose2gloss", "vid2pose", "recognizer"


@dataclass
class SignXConfig:
    """Every SignX setting (see the module docstring for the paper mapping)."""

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
    padmatch_norm: bool = False  # LayerNorm after PadMatch (see "Tiny-profile learning")
    # Vid2Pose
    image_size: int = 32
    patch_size: int = 8
    v2p_dim: int = 64
    v2p_depth: int = 1
    v2p_heads: int = 4
    v2p_temporal_layers: int = 1
    latent_match_weight: float = 0.0
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
    # the frozen Vid2Pose output (see "Tiny-profile learning" in the module docstring)
    finetune_pose_encoder: bool = True
    # tiny: Vid2Pose fine-tunes with the recogniser too (gloss losses + its own eq.-14 MSE kept
    # as an auxiliary term weighted ``v2p_aux_weight``); see "Tiny-profile learning"
    finetune_vid2pose: bool = False
    v2p_aux_weight: float = 1.0
    # schedule
    teacher_epochs: int = 1
    p2g_epochs: int = 4
    v2p_epochs: int = 7
    rec_epochs: int = 24
    teacher_lr: float = 3e-3
    p2g_lr: float = 2e-3
    v2p_lr: float = 1e-3
    v2p_batch_size: int | None = 4  # Vid2Pose stage batch (tiny: more steps); None = the run's
    rec_lr: float = 3e-3
    rec_warmup: int = 30
    p2g_warmup: int = 10
    v2p_warmup: int = 10
    p2g_grad_clip: float = 7.0

    def __post_init__(self) -> None:
        check_choices("SignXConfig", {
            "pipeline": (self.pipeline, PIPELINES),
            "recognizer_input": (self.recognizer_input, RECOGNIZER_INPUTS),
            "gloss_output": (self.gloss_output, ("decoder", "ctc"))})
        self.formats = tuple((str(n), int(w)) for n, w in self.formats)
        if isinstance(self.zero_formats, str):
            self.zero_formats = tuple(f for f in self.zero_formats.split(",") if f)
        self.zero_formats = tuple(self.zero_formats)
        unknown = sorted(set(self.zero_formats) - {n for n, _ in self.formats})
        if unknown:
            raise ValueError(f"signx: zero_formats {unknown} are not pose formats "
                             f"{[n for n, _ in self.formats]}")
        self.kernels = tuple(int(k) for k in self.kernels)
        if self.average_top_k < 1:
            raise ValueError(f"signx: average_top_k must be >= 1, got {self.average_top_k}")
        if self.frame_stride < 1:
            raise ValueError(f"signx: frame_stride must be >= 1, got {self.frame_stride}")
        if self.prune_every < 1:
            raise ValueError(f"signx: prune_every must be >= 1, got {self.prune_every}")


PAPER_CONFIG = dict(
    format_dim=512, fusion_heads=8, latent_dim=2048, vit_layers=6, vit_heads=16, p2g_dec_dim=512,
    p2g_dec_layers=3, p2g_dec_heads=8, contrast_dim=256, p2g_dropout=0.1, image_size=224,
    patch_size=16, v2p_dim=384, v2p_depth=12, v2p_heads=6, v2p_temporal_layers=2,
    teacher_width=64, teacher_hidden=512, visual_width=64, tconv_dim=1024, lstm_hidden=512,
    lstm_layers=2, d_model=256, enc_layers=6, dec_layers=6, heads=4, ffn=1024, p_attn=0.3,
    p_relu=0.5, p_res=0.4, prune_every=5, student_hidden=1024, teacher_epochs=40,
    p2g_epochs=500, v2p_epochs=300, rec_epochs=80, teacher_lr=1e-3, p2g_lr=1e-3, v2p_lr=1e-3,
    rec_lr=256 ** -0.5 * 4000 ** -0.5, v2p_batch_size=None, rec_warmup=4000, p2g_warmup=500,
    v2p_warmup=500,
    max_len=64, cache_latents=False, frame_stride=1, teacher_image_size=None,
    use_distillation=True, finetune_pose_encoder=False, finetune_vid2pose=False,
)


@contextlib.contextmanager
def _eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Frozen parts run deterministically (no dropout / BN updates) and without autograd."""
    states = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, s in zip(modules, states, strict=True):
            m.train(s)


@register("signx")
class SignX(SLTMethod):
    """SignX (see the module docstring)."""

    key: ClassVar[str] = "signx"
    task: ClassVar[str] = "recognition"
    inputs: ClassVar[tuple[str, ...]] = ("frames", "poses")
    needs_text: ClassVar[bool] = True
    needs_gloss: ClassVar[bool] = True
    data_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"train_size": 256, "eval_size": 32, "resolution": 32, "batch_size": 16,
                 "eval_batch_size": 32, "measure_iters": 5},
        "paper": {"resolution": 224, "batch_size": 32},
    }

    def __init__(self, profile: str = "tiny", *, tokenizer: Any = None, gloss_vocab: Any = None,
                 **overrides: Any) -> None:
        super().__init__(profile)
        names = {f.name for f in fields(SignXConfig)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"signx: unknown config field(s) {unknown}; known: {sorted(names)}")
        base = SignXConfig(**PAPER_CONFIG) if profile == "paper" else SignXConfig()
        self.config = cfg = replace(base, **overrides)
        if gloss_vocab is None:
            raise ValueError("signx needs a gloss vocabulary (gloss_vocab= override); the runner "
                             "builds one from the training glosses")
        self.tokenizer, self.gloss_vocab = tokenizer, gloss_vocab
        self.inputs = ("frames", "poses") if cfg.pipeline == "latent" else ("frames",)
        self.beam_size, self.length_penalty, self.max_len = (cfg.beam_size, cfg.length_penalty,
                                                             cfg.max_len)
        num_glosses = len(gloss_vocab.itos)
        formats = dict(cfg.formats)
        text_vocab = tokenizer.vocab_size if (tokenizer is not None and cfg.use_translation) \
            else None
        if cfg.pipeline == "latent":
            encoder = PoseEncoder(formats, cfg.format_dim, cfg.fusion_heads, cfg.latent_dim,
                                  cfg.vit_layers, cfg.vit_heads, cfg.p2g_dropout,
                                  padmatch_norm=cfg.padmatch_norm)
            self.pose2gloss = Pose2Gloss(encoder, num_glosses + 2, cfg.p2g_dec_dim,
                                         cfg.p2g_dec_layers, cfg.p2g_dec_heads, cfg.contrast_dim,
                                         cfg.p2g_dropout)
            self.vid2pose = Vid2Pose(formats, cfg.image_size, cfg.patch_size, cfg.v2p_dim,
                                     cfg.v2p_depth, cfg.v2p_heads, cfg.v2p_temporal_layers,
                                     cfg.p2g_dropout)
            in_dim = cfg.latent_dim
        else:
            from baselines.common.resnet import resnet34

            self.visual = resnet34(base_width=cfg.visual_width)
            self.visual_proj = nn.Linear(self.visual.num_features, cfg.latent_dim)
            in_dim = cfg.latent_dim
        hybrid = cfg.pipeline != "transformer"
        if cfg.use_distillation and hybrid:
            self.teacher = ResNetTeacher(num_glosses, cfg.teacher_width, cfg.teacher_hidden,
                                         cfg.teacher_image_size)
        self.recognizer = LatentRecognizer(
            in_dim, num_glosses, text_vocab, tconv_dim=cfg.tconv_dim, lstm_hidden=cfg.lstm_hidden,
            lstm_layers=cfg.lstm_layers, d_model=cfg.d_model, enc_layers=cfg.enc_layers,
            dec_layers=cfg.dec_layers, heads=cfg.heads, ffn=cfg.ffn, p_attn=cfg.p_attn,
            p_relu=cfg.p_relu, p_res=cfg.p_res, kernels=cfg.kernels, gamma=cfg.gamma,
            rho=cfg.rho, keep_ratio=cfg.keep_ratio, student_hidden=cfg.student_hidden,
            hybrid=hybrid)
        self.register_buffer("gloss_prior", gloss_prior_weights(
            getattr(gloss_vocab, "counts", []), num_glosses, gloss_vocab.blank_id),
            persistent=False)
        self.averager = TopKAverager(cfg.average_top_k, mode="min")
        self.averaging: dict[str, Any] | None = None
        self._cache = SampleCache()  # frozen parts' outputs within one recogniser stage
        self._cache_key: tuple[Any, ...] | None = None
        self._pruned_at: set[int] = set()
        self.prune_log: list[dict[str, float]] = []

    # ------------------------------------------------------------------------------ schedule

    @property
    def uses_teacher(self) -> bool:
        return hasattr(self, "teacher")

    def stages(self) -> list[Stage]:
        cfg = self.config
        out = []
        if self.uses_teacher:
            out.append(Stage(TEACHER_STAGE, cfg.teacher_epochs, lr=cfg.teacher_lr,
                             trainable=("teacher.",), scheduler="cosine", warmup_steps=10,
                             monitor="loss", losses=("loss_teacher",)))
        if cfg.pipeline == "latent":
            out.append(Stage(P2G_STAGE, cfg.p2g_epochs, lr=cfg.p2g_lr, trainable=("pose2gloss.",),
                             scheduler="cosine", warmup_steps=cfg.p2g_warmup,
                             grad_clip=cfg.p2g_grad_clip, monitor="loss",
                             losses=("loss_text", "loss_word", "loss_contrast"),
                             options={"min_lr_ratio": 0.05}))
            out.append(Stage(V2P_STAGE, cfg.v2p_epochs, lr=cfg.v2p_lr, trainable=("vid2pose.",),
                             scheduler="cosine", warmup_steps=cfg.v2p_warmup, grad_clip=1.0,
                             monitor="loss", losses=("loss_v2p",),
                             options={"min_lr_ratio": 0.01,
                                      **({"batch_size": cfg.v2p_batch_size}
                                         if cfg.v2p_batch_size else {})}))
            rec_trainable: tuple[str, ...] = ("recognizer.",)
            if cfg.finetune_pose_encoder or cfg.finetune_vid2pose:
                rec_trainable += ("pose2gloss.encoder.",)
            if cfg.finetune_vid2pose:
                rec_trainable += ("vid2pose.",)
        else:
            rec_trainable = ("recognizer.", "visual.", "visual_proj.")
        out.append(Stage(REC_STAGE, cfg.rec_epochs, lr=cfg.rec_lr, trainable=rec_trainable,
                         scheduler="noam", warmup_steps=cfg.rec_warmup, monitor="wer",
                         losses=("loss_ce", "loss_ctc")))
        return out

    # ------------------------------------------------------------------------------ features

    def _poses(self, batch: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The (strided, ablation-zeroed) pose formats and their frame mask."""
        poses = batch.inputs.get("poses")
        if poses is None:
            raise ValueError("signx: the batch has no 'poses' stream; collate it with "
                             "streams=('frames', 'poses')")
        s = self.config.frame_stride
        return (self._zeroed({n: p[:, ::s] for n, p in poses.items()}),
                batch.masks["poses"][:, ::s])

    def _zeroed(self, poses: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        zero = set(self.config.zero_formats)
        return {n: (torch.zeros_like(p) if n in zero else p) for n, p in poses.items()}

    def _frames(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        frames = batch.inputs.get("frames")
        if frames is None:
            raise ValueError("signx: the batch has no 'frames' stream (RGB video is SignX's "
                             "inference input)")
        s = self.config.frame_stride
        return frames[:, ::s], batch.masks["frames"][:, ::s]

    def latent_from_frames(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """z = PoseEncoder(Vid2Pose(frames)) (latent pipeline) or projected ResNet features."""
        if self.config.pipeline == "latent":
            with self.nvtx("vid2pose"):
                pred, _ = self.vid2pose(frames, mask)
            with self.nvtx("pose_encoder"):
                return self.pose2gloss.encoder(self._zeroed(pred), mask)
        with self.nvtx("frontend"):
            return self.visual_proj(frame_features(self.visual, frames, mask))

    def recognizer_latent(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent the recogniser reads for ``batch`` (and its frame mask)."""
        if self.config.pipeline == "latent" and self.config.recognizer_input == "poses":
            poses, mask = self._poses(batch)
            with self.nvtx("pose_encoder"):
                return self.pose2gloss.encoder(poses, mask), mask
        frames, mask = self._frames(batch)
        return self.latent_from_frames(frames, mask), mask

    def _frozen_outputs(self, batch: Any, state: TrainState | None
                        ) -> tuple[torch.Tensor | dict[str, torch.Tensor] | None,
                                   torch.Tensor | None, torch.Tensor]:
        """(latent, teacher logits or None, frame mask) from the frozen parts, cached per sample
        within a recogniser stage when ``cache_latents``. With ``finetune_pose_encoder`` the
        frozen part ends before the pose encoder: the first entry is then the pose formats it
        reads (Vid2Pose's prediction, or the ground truth for ``recognizer_input="poses"``), a
        dict of (B, T, D_i); in the pixel / transformer pipelines it is None (the visual
        encoder trains)."""
        cfg = self.config
        latent = cfg.pipeline == "latent"
        gt_poses = latent and cfg.recognizer_input == "poses"
        poses_out = latent and cfg.finetune_pose_encoder
        frames, mask = self._frames(batch) if "frames" in batch.inputs else (None, None)
        if mask is None or gt_poses:
            mask = self._poses(batch)[1]
        key = (state.stage_index if state is not None else None, cfg.zero_formats)
        use_cache = cfg.cache_latents and state is not None
        if use_cache and key != self._cache_key:
            self._cache.clear()
            self._cache_key = key
        names = list(batch.names)
        hit = self._cache.lookup(names, mask.device) if use_cache else None
        if hit is not None:
            rows = hit[0]
        else:
            modules = [m for m in (getattr(self, "pose2gloss", None),
                                   getattr(self, "vid2pose", None),
                                   getattr(self, "teacher", None)) if m is not None]
            z: Any = None
            with _eval_mode(*modules):
                if poses_out and gt_poses:
                    z = self._poses(batch)[0]
                elif poses_out:
                    with self.nvtx("vid2pose"):
                        z = self._zeroed(self.vid2pose(frames, mask)[0])
                elif latent:
                    z = self.recognizer_latent(batch)[0]
                t = self.teacher(frames, mask) if self.uses_teacher else None
            # detached and zero-padded like a cache hit, so both hand on the same tensors
            rows = repad({"z": z, "t": t}, mask.sum(1))
            if use_cache:
                self._cache.store(names, rows, mask.sum(1))

        return rows["z"], rows["t"], mask

    # ------------------------------------------------------------------------------ training

    def _gloss_targets(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.gloss_ids is None or batch.gloss_lengths is None:
            raise ValueError("signx: the batch has no gloss_ids; collate it with gloss_vocab=")
        return batch.gloss_ids, batch.gloss_lengths

    def _decoder_io(self, ids: torch.Tensor, lengths: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gloss decoder input (BOS g…), target (g… EOS) and mask from padded gloss ids."""
        rec = self.recognizer
        b, g = ids.shape
        pos = torch.arange(g + 1, device=ids.device)[None]
        body = F.pad(ids, (0, 1), value=self.gloss_vocab.pad_id)
        inputs = torch.cat([torch.full((b, 1), rec.bos_id, device=ids.device), ids], dim=1)
        targets = torch.where(pos == lengths[:, None], torch.full_like(body, rec.eos_id), body)
        mask = pos <= lengths[:, None]
        inputs = torch.where(mask, inputs, torch.full_like(inputs, self.gloss_vocab.pad_id))
        return inputs, targets, mask

    def teacher_step(self, batch: Any) -> dict[str, torch.Tensor]:
        frames, mask = self._frames(batch)
        ids, lengths = self._gloss_targets(batch)
        with self.nvtx("teacher"):
            logits = self.teacher(frames, mask)
        loss = ctc_loss_checked(logits, mask.sum(1), ids, lengths, self.gloss_vocab.blank_id,
                                where="signx teacher CTC")
        return {"loss": loss, "loss_teacher": loss.detach()}

    def pose2gloss_step(self, batch: Any, state: TrainState | None) -> dict[str, torch.Tensor]:
        cfg = self.config
        poses, mask = self._poses(batch)
        ids, lengths = self._gloss_targets(batch)
        inputs, targets, tmask = self._decoder_io(ids, lengths)
        progress = state.progress if state is not None else 1.0
        ratio = cfg.tf_start + (cfg.tf_end - cfg.tf_start) * progress if self.training else 1.0
        with self.nvtx("pose_encoder"):
            z = self.pose2gloss.encoder(poses, mask)
        with self.nvtx("decoder"):
            out = self.pose2gloss.losses(z, mask, inputs, targets, tmask,
                                         label_smoothing=cfg.p2g_label_smoothing,
                                         tau=cfg.contrast_tau, tf_ratio=ratio)
        total = (cfg.lambda_text * out["loss_text"] + cfg.lambda_word * out["loss_word"]
                 + cfg.lambda_contrast * out["loss_contrast"])
        return {"loss": total, **{k: v.detach() for k, v in out.items()},
                "tf_ratio": torch.tensor(ratio)}

    def vid2pose_step(self, batch: Any) -> dict[str, torch.Tensor]:
        frames, mask = self._frames(batch)
        target, _ = self._poses(batch)
        with self.nvtx("vid2pose"):
            pred, _ = self.vid2pose(frames, mask)
        loss = vid2pose_loss(pred, target, mask)
        out = {"loss_v2p": loss.detach()}
        if self.config.latent_match_weight > 0:
            enc = self.pose2gloss.encoder
            with _eval_mode(enc):
                z_true = enc(target, mask)
            was = enc.training
            enc.eval()
            try:
                z_pred = enc(self._zeroed(pred), mask)
            finally:
                enc.train(was)
            match = F.mse_loss(z_pred[mask], z_true[mask])
            loss = loss + self.config.latent_match_weight * match
            out["loss_latent_match"] = match.detach()
        return {"loss": loss, **out}

    def _maybe_prune(self, state: TrainState | None) -> None:
        """Adaptive feature pruning at the start of every ``prune_every``-th recogniser epoch."""
        if state is None or not self.recognizer.hybrid or not self.training:
            return
        epoch = state.epoch
        if epoch > 0 and epoch % self.config.prune_every == 0 and epoch not in self._pruned_at:
            self._pruned_at.add(epoch)
            self.prune_log.append({"epoch": float(epoch), **self.recognizer.pruning.prune()})

    def _trains_vid2pose(self) -> bool:
        cfg = self.config
        return (cfg.pipeline == "latent" and cfg.finetune_vid2pose
                and cfg.recognizer_input == "vid2pose")

    def recognizer_step(self, batch: Any, state: TrainState | None) -> dict[str, torch.Tensor]:
        cfg = self.config
        rec = self.recognizer
        blank = self.gloss_vocab.blank_id
        ids, lengths = self._gloss_targets(batch)
        self._maybe_prune(state)
        out: dict[str, torch.Tensor] = {}
        if self._trains_vid2pose():  # tiny: RGB -> Vid2Pose -> pose encoder, all training
            frames, mask = self._frames(batch)
            teacher_logits = (self._frozen_outputs(batch, state)[1] if self.uses_teacher
                              else None)
            with self.nvtx("vid2pose"):
                pred, _ = self.vid2pose(frames, mask)
            if self.config.v2p_aux_weight > 0:
                out["loss_v2p"] = vid2pose_loss(pred, self._poses(batch)[0], mask)
            z: Any = self._zeroed(pred)
        else:
            z, teacher_logits, mask = self._frozen_outputs(batch, state)
        if isinstance(z, dict):  # finetune_pose_encoder: the pose encoder trains here
            with self.nvtx("pose_encoder"):
                z = self.pose2gloss.encoder(z, mask)
        if z is None:  # pixel / transformer: the visual encoder trains with the recogniser
            frames, mask = self._frames(batch)
            z = self.latent_from_frames(frames, mask)
        with self.nvtx("encoder"):
            enc = rec.encode(z, mask)
        out["loss_ctc"] = ctc_loss_checked(enc["ctc"], enc["lengths"], ids, lengths, blank,
                                           where="signx encoder CTC head")
        inputs, targets, tmask = self._decoder_io(ids, lengths)
        with self.nvtx("decoder"):
            logits, _, _ = rec.gloss_decoder(inputs, tmask, enc["states"], enc["mask"])
        out["loss_ce"] = F.cross_entropy(logits[tmask].float(), targets[tmask],
                                         label_smoothing=cfg.label_smoothing)
        out["loss_smooth"] = smoothness_loss(enc["states"], enc["mask"], cfg.smooth_radius)
        total = (cfg.ce_weight * out["loss_ce"] + cfg.ctc_weight * out["loss_ctc"]
                 + cfg.smooth_weight * out["loss_smooth"])
        if "loss_v2p" in out:
            total = total + cfg.v2p_aux_weight * out["loss_v2p"]
        if rec.hybrid:
            student = rec.student(enc["compiled"])
            out["loss_student_ctc"] = ctc_loss_checked(student, mask.sum(1), ids, lengths, blank,
                                                       where="signx student CTC")
            total = total + cfg.lambda_student_ctc * out["loss_student_ctc"]
            if teacher_logits is not None:
                out["loss_kd"] = distillation_kl(student, teacher_logits, enc["frame_mask"],
                                                 self.gloss_prior, cfg.kd_temperature)
                total = total + cfg.lambda_kd * out["loss_kd"]
        if rec.text_decoder is not None and batch.text_ids is not None:
            t_ids, t_mask = batch.text_ids, batch.text_mask
            with self.nvtx("translation_decoder"):
                t_logits, _, _ = rec.text_decoder(t_ids[:, :-1], t_mask[:, :-1], enc["states"],
                                                  enc["mask"])
            valid = t_mask[:, 1:]
            out["loss_translation"] = F.cross_entropy(
                t_logits[valid].float(), t_ids[:, 1:][valid], label_smoothing=cfg.label_smoothing)
            total = total + cfg.translation_weight * out["loss_translation"]
        return {"loss": total, **{k: v.detach() for k, v in out.items()}}

    def training_step(self, batch: Any, state: TrainState | None = None
                      ) -> dict[str, torch.Tensor]:
        name = state.stage.name if state is not None else REC_STAGE
        if name == TEACHER_STAGE:
            return self.teacher_step(batch)
        if name == P2G_STAGE:
            return self.pose2gloss_step(batch, state)
        if name == V2P_STAGE:
            return self.vid2pose_step(batch)
        if name == REC_STAGE:
            return self.recognizer_step(batch, state)
        raise ValueError(f"signx: unknown stage {name!r}; expected one of "
                         f"{[s.name for s in self.stages()]}")

    # ------------------------------------------------------------------------------ averaging

    def on_epoch_end(self, record: Mapping[str, Any]) -> None:
        """Trainer hook after each epoch: snapshot the recogniser when its dev WER ranks among
        the best ``average_top_k`` of the recogniser stage."""
        wer = (record.get("dev") or {}).get("wer")
        if record.get("stage") == REC_STAGE and wer is not None:
            self.averager.consider(float(wer), self._averaged_modules())

    def on_fit_end(self) -> None:
        """Trainer hook after training: average the kept snapshots (see ``average_top_k``)."""
        self.average_best_checkpoints()

    def _averaged_modules(self) -> nn.Module:
        parts = {"recognizer": self.recognizer}
        if self.config.pipeline == "latent" and (self.config.finetune_pose_encoder
                                                 or self._trains_vid2pose()):
            parts["pose_encoder"] = self.pose2gloss.encoder
        if self._trains_vid2pose():
            parts["vid2pose"] = self.vid2pose
        for name in ("visual", "visual_proj"):
            if hasattr(self, name):
                parts[name] = getattr(self, name)
        return nn.ModuleDict(parts)

    def average_best_checkpoints(self) -> dict[str, Any] | None:
        """Load the mean of the best ``average_top_k`` recogniser snapshots (by dev WER)."""
        if not self.averager.entries or self.config.average_top_k < 2:
            return None
        self.averaging = self.averager.apply(self._averaged_modules())
        self.averager.clear()
        return self.averaging

    # ------------------------------------------------------------------------------ inference

    def _decode(self, enc: dict[str, torch.Tensor], decoder: nn.Module, *, bos: int, eos: int,
                beam_size: int, max_len: int, length_penalty: float,
                max_lengths: torch.Tensor | None = None) -> list[list[int]]:
        # every hypothesis of sample b reads memory row b: expand once, cache keys/values
        memory = enc["states"].repeat_interleave(beam_size, dim=0)
        memory_mask = enc["mask"].repeat_interleave(beam_size, dim=0)
        cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def step(prefix: torch.Tensor, rows: torch.Tensor):
            logits, attn, _ = decoder(prefix, None, memory, memory_mask, cache=cache)
            return torch.log_softmax(logits[:, -1].float(), -1), attn[:, -1]

        return entropy_beam_search(step, enc["states"].shape[0], bos_id=bos, eos_id=eos,
                                   beam_size=beam_size, max_len=max_len,
                                   alpha=self.config.entropy_alpha,
                                   length_penalty=length_penalty, device=memory.device,
                                   max_lengths=max_lengths)

    def encode_batch(self, batch: Any) -> dict[str, torch.Tensor]:
        z, mask = self.recognizer_latent(batch)
        with self.nvtx("encoder"):
            return self.recognizer.encode(z, mask)

    def _gloss_strings(self, seqs: Sequence[Sequence[int]]) -> list[str]:
        itos, n = self.gloss_vocab.itos, len(self.gloss_vocab.itos)
        special = {self.gloss_vocab.blank_id, self.gloss_vocab.pad_id}
        return [" ".join(itos[i] for i in s if i < n and i not in special) for s in seqs]

    @torch.no_grad()
    def generate(self, batch: Any, beam_size: int = 8, length_penalty: float = 0.0,
                 max_len: int = 40) -> list[str]:
        """Gloss sequences by the entropy-penalised beam search over the gloss decoder."""
        enc = self.encode_batch(batch)
        rec = self.recognizer
        # a gloss sequence is never longer than the encoder sequence (the CTC constraint)
        if self.config.gloss_output == "ctc":  # best path of the encoder's CTC head
            return self._gloss_strings(ctc_greedy(enc["ctc"], enc["lengths"],
                                                  self.gloss_vocab.blank_id))
        max_len = max(1, min(max_len, int(enc["lengths"].max()) + 1))
        caps = None
        if self.config.ctc_length_slack is not None:  # CTC-constrained length (signx_decode)
            greedy = ctc_greedy(enc["ctc"], enc["lengths"], self.gloss_vocab.blank_id)
            caps = torch.tensor([len(g) + self.config.ctc_length_slack for g in greedy],
                                device=enc["states"].device)
        with self.nvtx("beam_search"):
            seqs = self._decode(enc, rec.gloss_decoder, bos=rec.bos_id, eos=rec.eos_id,
                                beam_size=beam_size, max_len=max_len,
                                length_penalty=length_penalty, max_lengths=caps)
        return self._gloss_strings(seqs)

    @torch.no_grad()
    def translate(self, batch: Any, beam_size: int | None = None, max_len: int = 60) -> list[str]:
        """Spoken-language text from the translation decoder (same beam search)."""
        rec = self.recognizer
        if rec.text_decoder is None or self.tokenizer is None:
            raise ValueError("signx.translate needs use_translation=True and a text tokenizer")
        enc = self.encode_batch(batch)
        with self.nvtx("beam_search"):
            seqs = self._decode(enc, rec.text_decoder, bos=self.tokenizer.bos_id,
                                eos=self.tokenizer.eos_id, beam_size=beam_size or self.beam_size,
                                max_len=max_len, length_penalty=self.length_penalty)
        return [self.tokenizer.decode(s) for s in seqs]

    @torch.no_grad()
    def extra_metrics(self, split: str, samples: Sequence[Any], *, device: torch.device,
                      batch_size: int) -> dict[str, Any]:
        """Translation BLEU/ROUGE (text decoder), CTC-head WER, pruning and averaging state."""
        from harness.evaluate import collate_for, eval_batches
        from harness.metrics import recognition_scores, translation_scores

        was = self.training
        self.eval()
        texts: list[str | None] = [None] * len(samples)
        ctc: list[str | None] = [None] * len(samples)
        try:
            for idx in eval_batches(samples, batch_size):
                batch = collate_for(self, [samples[i] for i in idx]).to(device)
                enc = self.encode_batch(batch)
                for i, s in zip(idx, self._gloss_strings(
                        ctc_greedy(enc["ctc"], enc["lengths"], self.gloss_vocab.blank_id)),
                        strict=True):
                    ctc[i] = s
                if self.recognizer.text_decoder is not None and self.tokenizer is not None:
                    for i, t in zip(idx, self.translate(batch), strict=True):
                        texts[i] = t
        finally:
            self.train(was)
        out: dict[str, Any] = {"main_task": "recognition"}
        glosses = [s.gloss or "" for s in samples]
        if any(glosses):
            out["ctc_head"] = recognition_scores([c or "" for c in ctc], glosses)
        refs = [s.text for s in samples]
        if all(t is not None for t in texts) and all(r for r in refs):
            lang = getattr(self.tokenizer, "lang", "de")
            out["translation"] = translation_scores(texts, refs, lang=lang)
            out["translation_examples"] = [{"name": s.name, "reference": s.text, "hypothesis": t}
                                           for s, t in list(zip(samples, texts, strict=True))[:3]]
        if self.recognizer.hybrid:
            out["pruning"] = {"kept_dims": int(self.recognizer.pruning.mask.sum()),
                              "dims": int(self.recognizer.pruning.mask.numel()),
                              "events": self.prune_log}
        out["checkpoint_averaging"] = self.averaging
        return out

    # ------------------------------------------------------------------------------ reports

    def frames_per_batch(self, batch: Any) -> int:
        return int(batch.masks["frames"].sum().item()) if "frames" in batch.masks else \
            int(batch.lengths.sum().item())

    def param_report(self) -> dict[str, Any]:
        """Total / trainable parameters and a per-component breakdown (works on ``meta``)."""
        groups = {"pose_encoder": ("pose2gloss.encoder.",), "codebook_decoder": ("pose2gloss.",),
                  "vid2pose": ("vid2pose.",), "teacher": ("teacher.",),
                  "visual_encoder": ("visual.", "visual_proj."),
                  "recognizer_translation_decoder": ("recognizer.text_decoder.",),
                  "recognizer": ("recognizer.",)}
        total, trainable, components = self.count_parameters_by_group(groups)
        inference = total - components["teacher"] - components["codebook_decoder"]
        return {"total": total, "trainable": trainable, "inference": inference,
                "components": components}


# experiments (Table 5, Table 6) register on import
from baselines import signx_experiments as _signx_experiments  # noqa: E402,F401

__all__ = ["PAPER_CONFIG", "PIPELINES", "SignX", "SignXConfig"]

