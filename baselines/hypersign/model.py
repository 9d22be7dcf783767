"""HyperSign — dynamic feature fusion for SLT using hypernetworks (Zhang et al., 2025).

What the model does (paper Sec. 2, Fig. 2)
-------------------------------------------
* Two streams, each with its own light encoder and VL-mapper (``baselines.common.encoders``):
  RGB frames → F_v, keypoints → F_k, both (B, T/4, d) with masks.
* Early fusion: F_f = HyperFusion(F_v, F_k) (``harness.ops.HyperFusion``, eq. 1–3, DSG by default).
* One shared mBART (``baselines.common.mbart``) translates.
* Training — partial shortcut (eq. 4): P_i = α_i F_i + (1 − α_i) F_f for i ∈ {v, k}; both P_v and
  P_k go through the *same* mBART (one batched call of 2B, so dropout differs between the passes
  as in R-Drop) giving encoder states E_v, E_k and decoder states/logits D_v, D_k.
  L = L_Tv + L_Tk + w_t·λ1·KL_enc(E_v‖E_k) + w_t·λ2·KL_dec(D_v‖D_k) + L_SST   (eq. 9)
* Inference uses only the fused stream F_f (no P_i, no KL, no SST): beam 5, length penalty 1.

Choices where the paper is vague (all are ``HyperSignConfig`` fields)
---------------------------------------------------------------------
* **α sampling.** α ~ N_[0,1](0, σ_t²) is sampled *exactly* from the normal truncated to [0, 1]
  (inverse CDF: u ~ U(Φ(0), Φ(1/σ_t)), α = σ_t Φ⁻¹(u)) — no clipping and no rejection loop; its
  mean is σ_t·(φ(0) − φ(1/σ_t)) / (Φ(1/σ_t) − ½), which falls with σ_t. One α per sample and per
  stream (α_v and α_k independent). σ_t = max(1 − t/T, ε), ε = ``alpha_eps`` = 1e-3.
  t is counted in (fractional) epochs of the stage: t = progress · epochs. The paper states T in
  epochs (40 for PHOENIX-2014T = its whole 40-epoch run; 15 for CSL-Daily). We store it as a
  fraction of the stage (``alpha_T_fraction``: 1.0 = PHOENIX, 0.375 = CSL's 15/40) so it scales
  with ``signbench run --epochs``; ``alpha_T_epochs`` fixes it in epochs instead. Strategies
  (Table 2): ``progressive`` (the paper), ``fixed`` (α = 0.5), ``rdrop`` (α = 0: P_v = P_k = F_f,
  R-Drop), ``uniform`` (α ~ U(0, 1), "Random MixUp").
* **KL_enc** is over the feature dimension per position: p = softmax(E[b, n, :]) for each valid
  position n, KL(p_v ‖ p_k) summed over d, averaged over valid positions
  (``kl_enc_mode="position"``).
  ``kl_enc_mode="pooled"`` uses softmax of the masked-mean encoder state instead.
  **KL_dec** is between the two passes' next-token distributions: KL(softmax D_v ‖ softmax D_k)
  summed over the vocabulary, averaged over valid target tokens. Gradients flow into both passes
  (the paper's self-distillation does not stop any gradient; both passes share all weights).
* **KL annealing** (Bowman et al.): the KL terms are multiplied by w_t = min(1, s / S), s the
  optimiser step *within the translation stage* (``TrainState.step``: the pre-training stages do
  not use up the ramp; they did before, which left w_t = 1 from the first translation step).
  Paper: S = 4000 steps (≈ 22.5 % of a 40-epoch PHOENIX run at batch 16: 7096/16 ≈ 444
  steps/epoch). ``kl_anneal_steps=None`` (tiny) sets S = ``kl_anneal_fraction``
  (0.225) × the stage's total steps. Without a ``TrainState`` w_t = 1.
* **SST** (Sec. 2.3.2, Algorithm 1): one query MLP (LayerNorm → Linear(d, d) → GELU → LayerNorm
  → Linear(d, sst_dim)) shared by all four inputs E_v, E_k, D_v, D_k (the paper speaks of "an MLP"
  for any of them), C = ``sst_tokens`` learnable tokens c_i (init N(0, 1/sst_dim)), and
  ``harness.ops.sst_convert`` with pool ``max`` (the paper's r_i = max_j ⟨F_j, c_i⟩; ``mean`` is the
  public code's) and converter scale ``sst_scale`` = 1/√sst_dim (a scaled dot product, as in
  attention). Algorithm 1 has no scale, but with scale 1 sparsemax collapsed to one token shared
  by every sample within a few hundred tiny-profile steps (measured: L_SST stuck at log B, where
  sparsemax's gradient vanishes); 1/√d keeps several tokens in the support. Padded encoder
  positions and padded target tokens are masked out. InfoNCE (eq. 7) over the batch: logits =
  min(exp(s), 100) · cos(f_i^E, f_m^D) with the learnable logit scale s (init log(1/0.07), i.e.
  τ = 0.07), cross-entropy towards the matching pair, in the paper's direction E → D only.
  L_SST = mean over the pairs (E_v,D_v), (E_k,D_k), (E_v,D_k), (E_k,D_v) (eq. 8).
  Ablations (Table 2): ``use_contrastive=False`` drops L_SST (No. 10), ``use_sst=False``
  replaces the SST converter by masked average pooling of the MLP features (No. 11),
  ``use_cross_pairs=False`` keeps only the two intra-stream pairs (No. 12); ``use_kl_enc`` /
  ``use_kl_dec`` (No. 8, 9).
* **σ of eq. (3)** is ReLU (``fusion_activation``): the paper's static counterpart is
  "Linear + ReLU" (Table 2, No. 4) and the dynamic MLP replaces that Linear by generated weights.
  The generators use dropout 0.5 (Sec. 3.2).
* **Fusion ablations** (Table 2): ``hypernetwork`` (HyperFusion, ``hyper_variant`` dsg / dshg /
  pig / cig, Table 3); ``mixup`` — sample-level mixup F_f = λ F_v + (1 − λ) F_k with λ ~ U(0, 1)
  per sample in training and λ = ½ at inference; ``gated`` — two static learnable weight vectors,
  F_f = w_v ⊙ F_v + w_k ⊙ F_k (init ½); ``linear_relu`` — F_f = ReLU(W [F_v; F_k] + b).
* **Single-stream baselines** (``stream="rgb"`` / ``"keypoints"``; MMTLB / MMTLB-KP of Table 1)
  run the same frontend and mBART with no fusion, no partial shortcut, no self-distillation and
  one translation loss ``loss_t`` (they have nothing to distil or contrast across streams).
* Streams of unequal length (e.g. features cached at another rate) are cut to the shorter one per
  sample after the encoders (their masks are AND-ed); the synthetic corpus has equal lengths.
* Training targets: ``text_ids`` = ``<s> … </s>``; the decoder reads ``<s> …`` and predicts
  ``… </s>``; cross-entropy averaged over valid target tokens (``label_smoothing`` 0: the paper
  names none).

Training recipe (three stages; TS-SLT's, which HyperSign Sec. 3.2 follows)
-------------------------------------------------------------------------
HyperSign "employ[s] the same configurations [as TS-SLT] for independently pre-training the RGB
encoder, keypoint encoder": in TS-SLT (public SLRT configs ``phoenix-2014t_s2g.yaml`` /
``…_g2t.yaml`` / ``…_s2t_keypoint.yaml``) the stream networks are first trained on sign-to-gloss
recognition with CTC (S2G), the translation network (mBART) is pre-trained on gloss-to-text (G2T),
and the sign-to-text stage reads the *extracted* features (``input_data: feature``: the
extractors are fixed) and trains the VL-mapper and the G2T-initialised mBART.

1. ``stream_pretrain`` (needs a ``gloss_vocab``; the runner passes one because ``needs_gloss``):
   per stream a CTC head (``rgb_ctc`` / ``keypoint_ctc``, Linear d → |glosses|) on the extractor
   output (before the VL-mapper, where TS-SLT's recognition head sits); L = CTC_v + CTC_k. Only
   the extractors and the CTC heads train; dev monitor = loss. Why before the mapper: measured
   (keypoints, 300 steps) CTC dev WER 0.68 with the head on the extractor vs 0.99 through the
   random mapper. Tiny: constant lr 3e-3 after 30 warm-up steps (a cosine decay hit the CTC
   "all blank" plateau while it was still there: dev CTC 3.5 vs 2.6 after 256 steps).
2. ``gloss2text`` (G2T, needs a ``gloss_vocab``; ``g2t_epochs``): a gloss embedding table
   (``gloss_embedding``, |glosses| × d) feeds mBART's encoder (``inputs_embeds``; padded glosses
   masked) and mBART learns the train split's gloss → text pairs with the translation loss
   (``loss_g2t``). Only ``gloss_embedding`` and ``mbart`` train; dev monitor = loss. SLRT's G2T
   starts from the real mBART-cc25 vocabulary's gloss pieces; we have no checkpoint, hence the
   learned gloss table (our choice).
3. translation (``hypersign`` / ``single-<stream>``): eq. (9) as above on the G2T-initialised
   mBART; the extractors stay frozen (``freeze_extractors``; run in eval mode without autograd =
   TS-SLT's feature extraction, and cheaper), VL-mappers, fusion, mBART and SST train.
   ``freeze_extractors=False`` fine-tunes them too. Frozen extractors are a fixed function of
   the sample, so their outputs are computed once per training sample and cached for the later
   epochs (``cache_features``; cleared when a stage starts or weights are loaded; never used in
   evaluation, whose latency must include the extractors): ~35 % of a tiny dual-stream step.
   * **Gloss-embedding bridge** (``bridge="gloss"``, the default; our choice, not in the paper):
     a single stream's mBART input is VL-mapper(x) + B, B = softmax(CTC head(x)) · E_gloss, x
     the extractor output and E_gloss the G2T gloss table — the recognised gloss posteriors land
     in the very embedding space the G2T mBART was trained on (the frozen CTC heads stay as
     stage 1 left them; E_gloss keeps training). Dual stream: B_v, B_k per stream and
     B_f = ½(p_v + p_k) · E_gloss (the streams' posteriors averaged); the hypernetwork fuses the
     mapper outputs as in the paper and the bridge is added after it: F_i + B_i and F_f + B_f
     enter eq. (4), inference reads F_f + B_f. ``bridge="none"``: the VL-mapper alone (the paper).
     Without a gloss vocabulary the bridge is off.
   * **Auxiliary CTC** (``ctc_weight`` > 0, default 0): adds ``ctc_weight`` × the streams' CTC
     losses (``ctc_v`` / ``ctc_k``) and then fine-tunes the extractors and heads (on frozen ones
     it would have nothing to train). Implemented, not measured in the tiny profile (time).
   * **Label smoothing 0.2** (TS-SLT's translation configs; also used by G2T).
Without glosses only stage 3 runs; ``pretrain_epochs=0`` / ``g2t_epochs=0`` drop stage 1 / 2.

What we found while making the tiny profile learn (all measured on the synthetic corpus, de):
the original single stage never made the decoder use the encoder — dev cross-entropy with the
real encoder states equalled that with the states zeroed or shuffled across samples (1.78 vs
1.78), i.e. the model learned the sentence prior and gave every input the same sentence. The
mBART plumbing is right (masks, ``inputs_embeds``, teacher forcing, generation): fed *oracle*
gloss embeddings, the same helpers learn G2T within 100 steps (dev 1.3 vs 2.3 zeroed). Causes
found: (a) the from-scratch two-layer VL-mapper blocked the signal even for oracle inputs (fixed
with a skip path, ``baselines.common.encoders.VLMapper``); (b) untrained visual features carry
too little per-sample information for cross-attention to pick up before the sentence prior wins
— hence stage 1; (c) even on CTC-pretrained frozen features (dev CTC ~0.7) a randomly
initialised mBART still learnt the prior only (keypoints-only test BLEU-4 ≈ 0–2) — hence stage 2.
Keypoints are normalised per signer (``baselines.common.encoders.normalize_keypoints``).

Measured (``signbench run --methods hypersign --set stream=keypoints``, tiny, train 512, dev/test
32, beam 5; one pinned core, single thread; dev BLEU-4 of the final (best-epoch) model):

========================================  ===========  ============  =========
keypoints-only                            dev BLEU-4   test BLEU-4   wall (s)
========================================  ===========  ============  =========
S2G + translation (before)                ≈ 0–2        ≈ 0–2         —
+ G2T (mapper → G2T mBART, the paper)     32.0         40.4          86
+ G2T + gloss bridge                      32.4         38.1          82
+ G2T + gloss bridge + label smoothing .2 39.5         46.6          87
========================================  ===========  ============  =========

With the bridge the first translation epoch already reaches dev greedy BLEU-4 23 (vs 8 without).
Chosen on dev: bridge + label smoothing 0.2 (the defaults). Dropout was not lowered (no time to
measure it). In the dual-stream model the bridge is added *after* the fusion (F_f + B_f with B_f
from the averaged posteriors; each P_i mixes F_i + B_i with F_f + B_f): adding each stream's
bridge before the hypernetwork (its random ReLU MLP with 0.5-dropout generators then had to learn
to pass the gloss embeddings through) gave fused dev BLEU-4 24.2 vs 35.3 after (that change
came together with the KL-annealing fix above, which had left w_t = 1 from the first step).

Earlier defaults (12 translation epochs, bridge B_f = ½(p_v + p_k) · E_gloss, σ_t over the whole
stage), one pinned core: fused dev / test BLEU-4 35.3 / 39.5 (276 s), RGB-only 28.3 / 31.0,
keypoints-only 39.5 / 46.6. Why the fused model lost to keypoints-only, measured on the stage-1
recognisers (dev greedy CTC WER, 64 dev videos): keypoints 17.7, RGB 45.6, and the averaged
posteriors 39.5 — the weak RGB recogniser is often confidently wrong, so averaging (or a product
of experts, 42.3, or entropy / max-confidence weighting, 37.7 / 38.5) ruined the bridge the
fused stream reads. A joint recogniser over both extractors ([x_v; x_k] → CTC head) reaches
12.9 (linear) / 10.1 (MLP): the streams *are* complementary (the corpus corrupts them in
different segments), the recognisers just have to be fused before the posterior. Hence
``bridge_fusion="joint"`` (default; ``fused_ctc``, an MLP, trained in stage 1 with
L = CTC_v + CTC_k + CTC_f) with ``"average"`` kept as the ablation.

Then the translation stage (user CPU seconds, one thread; dev / test BLEU-4 on 32 videos each):

=============================================  ==========  ===========  =========
fused, joint bridge                            dev BLEU-4  test BLEU-4  CPU (s)
=============================================  ==========  ===========  =========
12 epochs, σ_t over the stage (T = 1.0)        32.9        39.9         201
20 epochs, T = 1.0 (+ feature cache)           33.0        45.4         189
20 epochs, T = 1.0, fusion dropout 0.1         34.7        42.5         200
20 epochs, α = 0 (R-Drop, Table 2 ablation)    36.6        50.5         199
20 epochs, T = 0.375 (CSL's 15/40)             39.5        46.1         200
keypoints-only, 20 epochs                      34.1        50.2         66
=============================================  ==========  ===========  =========

Chosen on dev: 20 translation epochs and ``alpha_T_fraction`` 0.375 for tiny (the paper profile
keeps PHOENIX's T = whole run): with 20 epochs the partial shortcut σ_t = 1 − t/T otherwise
leaves the fused path F_f, the only one inference reads, little direct training until the last
epochs. Caution: 32-sentence dev / test sets move BLEU-4 by several points between runs of
equal quality (keypoints-only: dev 39.5 / test 46.6 at 12 epochs, 34.1 / 50.2 at 20); the
final fused / keypoints / RGB runs are in ``results/leaderboard.md``.

Profiles
--------
``tiny``: d = 128, mBART 2 + 2 layers (4 heads, FFN 256), frame pairs stacked (``frame_stride``
2: with T/4 downsampling a 6–16-frame sign keeps 1.5–4 encoder steps, enough for CTC), RGB CNN
(8, 16, 32) channels pooled 4×4, keypoint MLP 256, SST 64 tokens × 64 dims;
``TINY_PRETRAIN_EPOCHS`` (20) of stage 1, ``TINY_G2T_EPOCHS`` (10) of G2T (lr 3e-3, cosine) then
``TINY_EPOCHS`` (20) of translation (AdamW lr 3e-3, 30 warm-up steps, cosine); runner data
defaults ``TINY_DATA`` (train 512: keypoint sequences are cheap to generate and more samples
per step cut the overfitting of CTC measured at 256). Measured on this
project's 2-core machine (single thread, batch 16, 32×32 frames): ~0.2 s per training step for
the dual-stream model, ~0.035–0.05 s keypoints-only, ~0.15 s RGB-only.
``paper``: d = 1024 (T/4 × 1024 features), mBART-large-cc25 dimensions over the trimmed corpus
vocabulary (``baselines.common.mbart``), SST 128 × 128; stage 1 as TS-SLT's S2G (40 epochs,
lr 1e-3, cosine), G2T 40 epochs at lr 1e-5 (not checked against SLRT's G2T config),
translation 40 epochs at lr 1e-5 (Sec. 3.2; ``init=PATH`` loads a local mBART
checkpoint), batch 16, AMP. Paper-size encoders are light CNN/MLP stand-ins for the S3D
extractors (see ``baselines.common.encoders``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines import register
from baselines.base import SLTMethod, Stage, TrainState, check_choices
from baselines.common import mbart as mb
from baselines.common.encoders import (
    KEYPOINT_NORMALIZATIONS,
    KeypointEncoder,
    RGBEncoder,
    VLMapper,
)
from baselines.common.sample_cache import SampleCache
from harness.ops import HyperFusion, sst_convert
from harness.ops.hyper import VARIANTS

FUSIONS = ("hypernetwork", "mixup", "gated", "linear_relu")
ALPHA_STRATEGIES = ("progressive", "fixed", "rdrop", "uniform")
STREAMS = ("both", "rgb", "keypoints")
KL_ENC_MODES = ("position", "pooled")
PRETRAIN_STAGE = "stream_pretrain"
G2T_STAGE = "gloss2text"
BRIDGES = ("none", "gloss")
#: parameter-name prefixes of the stream feature extractors (pre-trained in stage 1)
EXTRACTOR_PREFIXES = ("rgb_encoder.", "keypoint_encoder.")
CTC_PREFIXES = ("rgb_ctc.", "keypoint_ctc.", "fused_ctc.")
BRIDGE_FUSIONS = ("joint", "average")
GLOSS_EMBEDDING_PREFIX = "gloss_embedding."
SST_POOLS = ("max", "mean")
TINY_EPOCHS = 20
TINY_PRETRAIN_EPOCHS = 20
TINY_G2T_EPOCHS = 10
LOGIT_SCALE_MAX = 100.0
#: the runner's tiny data defaults for HyperSign (``data_defaults``; module docstring)
TINY_DATA: dict[str, Any] = {"train_size": 512, "eval_size": 32, "resolution": 32,
                             "batch_size": 16}


@dataclass
class HyperSignConfig:
    """Every knob of HyperSign (see the module docstring for the reading of each)."""

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
        choices = {"stream": (self.stream, STREAMS), "fusion": (self.fusion, FUSIONS),
                   "hyper_variant": (self.hyper_variant, VARIANTS),
                   "alpha_strategy": (self.alpha_strategy, ALPHA_STRATEGIES),
                   "kl_enc_mode": (self.kl_enc_mode, KL_ENC_MODES),
                   "sst_pool": (self.sst_pool, SST_POOLS),
                   "keypoint_normalize": (self.keypoint_normalize, KEYPOINT_NORMALIZATIONS),
                   "bridge": (self.bridge, BRIDGES),
                   "bridge_fusion": (self.bridge_fusion, BRIDGE_FUSIONS)}
        check_choices("HyperSignConfig", choices)
        positive = {"d_model": self.d_model, "sst_tokens": self.sst_tokens,
                    "sst_dim": self.sst_dim, "temperature": self.temperature,
                    "alpha_eps": self.alpha_eps, "alpha_T_fraction": self.alpha_T_fraction,
                    "epochs": self.epochs, "batch_size": self.batch_size}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"HyperSignConfig.{name} must be > 0, got {value}")
        for name in ("pretrain_epochs", "g2t_epochs", "ctc_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"HyperSignConfig.{name} must be >= 0, got "
                                 f"{getattr(self, name)}")
        if self.d_model % self.mbart_heads:
            raise ValueError(f"HyperSignConfig.d_model {self.d_model} is not divisible by "
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
)


def truncated_normal_alpha(shape: tuple[int, ...], sigma: float, *,
                           device: torch.device | str = "cpu",
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """α ~ N(0, σ²) truncated to [0, 1], sampled exactly by the inverse CDF (module docstring)."""
    if sigma <= 0:
        raise ValueError(f"truncated_normal_alpha: sigma must be > 0, got {sigma}")
    hi = 0.5 * (1.0 + math.erf(1.0 / (sigma * math.sqrt(2.0))))  # Φ(1/σ)
    u = torch.rand(shape, device=device, generator=generator, dtype=torch.float64)
    u = 0.5 + u * (hi - 0.5)
    alpha = sigma * torch.special.ndtri(u)
    return alpha.clamp_(0.0, 1.0).float()  # clamp only guards float round-off at the ends


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


@register("hypersign")
class HyperSign(SLTMethod):
    """HyperSign (see the module docstring); ``get_method("hypersign", profile, **overrides)``."""

    key = "hypersign"
    task = "translation"
    inputs = ("frames", "keypoints")
    needs_text = True
    needs_gloss = True  # stage 1's CTC targets; without a gloss_vocab stage 1 is skipped
    data_defaults: ClassVar[dict[str, dict[str, Any]]] = {"tiny": TINY_DATA}

    def __init__(self, profile: str = "tiny", tokenizer: Any = None,
                 config: HyperSignConfig | None = None, gloss_vocab: Any = None,
                 **overrides: Any) -> None:
        super().__init__(profile)
        base = config or (PAPER_CONFIG if profile == "paper" else HyperSignConfig())
        known = {f.name for f in fields(HyperSignConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"hypersign: unknown override(s) {unknown}; known: {sorted(known)}")
        cfg = replace(base, **overrides)
        cfg.validate()
        self.config = cfg
        # frozen-extractor outputs by (stream, sample name, input length); training steps only
        self._feature_cache = SampleCache()
        # loading weights (a resumed or best checkpoint) invalidates cached extractor outputs
        self.register_load_state_dict_post_hook(lambda module, _keys: module.clear_feature_cache())
        self.tokenizer = tokenizer
        self.gloss_vocab = gloss_vocab
        self.use_rgb = cfg.stream in ("both", "rgb")
        self.use_keypoints = cfg.stream in ("both", "keypoints")
        self.inputs = tuple(s for s, on in (("frames", self.use_rgb),
                                            ("keypoints", self.use_keypoints)) if on)
        d = cfg.d_model
        if self.use_rgb:
            self.rgb_encoder = RGBEncoder(d, cfg.rgb_channels, cfg.rgb_pool, cfg.encoder_dropout,
                                          cfg.frame_stride)
            self.rgb_mapper = VLMapper(d, d)
            if gloss_vocab is not None:
                self.rgb_ctc = nn.Linear(d, len(gloss_vocab))
        if self.use_keypoints:
            self.keypoint_encoder = KeypointEncoder(d, cfg.keypoint_joints, cfg.keypoint_hidden,
                                                    cfg.encoder_dropout, cfg.frame_stride,
                                                    cfg.keypoint_normalize)
            self.keypoint_mapper = VLMapper(d, d)
            if gloss_vocab is not None:
                self.keypoint_ctc = nn.Linear(d, len(gloss_vocab))
        if cfg.stream == "both":
            if gloss_vocab is not None and cfg.bridge_fusion == "joint":
                # the joint recogniser over both extractors (stage 1; the fused bridge reads it)
                self.fused_ctc = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(),
                                               nn.Dropout(cfg.encoder_dropout),
                                               nn.Linear(d, len(gloss_vocab)))
            if cfg.fusion == "hypernetwork":
                self.fusion = HyperFusion(d, cfg.fusion_dropout, cfg.fusion_activation,
                                          cfg.hyper_variant)
            elif cfg.fusion == "gated":
                self.gate_v = nn.Parameter(torch.full((d,), 0.5))
                self.gate_k = nn.Parameter(torch.full((d,), 0.5))
            elif cfg.fusion == "linear_relu":
                self.fusion = nn.Linear(2 * d, d)
        size = mb.MBartSize(d_model=d, encoder_layers=cfg.mbart_layers[0],
                            decoder_layers=cfg.mbart_layers[1], heads=cfg.mbart_heads,
                            ffn=cfg.mbart_ffn, dropout=cfg.mbart_dropout,
                            attention_dropout=cfg.mbart_attention_dropout,
                            max_positions=cfg.mbart_max_positions)
        self.mbart = mb.build_mbart(size, cfg.vocab_size, tokenizer, cfg.init)
        if gloss_vocab is not None:
            # G2T's gloss embedding table (stage gloss2text) and the bridge's gloss embeddings
            self.gloss_embedding = nn.Embedding(len(gloss_vocab), d,
                                                padding_idx=gloss_vocab.pad_id)
        if self.contrastive_on:
            self.query_mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(),
                                           nn.LayerNorm(d), nn.Linear(d, cfg.sst_dim))
            self.sst_tokens = nn.Parameter(torch.randn(cfg.sst_tokens, cfg.sst_dim)
                                           * cfg.sst_dim ** -0.5)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature)))

    # ------------------------------------------------------------------------------ config

    @property
    def dual(self) -> bool:
        return self.config.stream == "both"

    @property
    def sst_scale(self) -> float:
        """Scale of the SST converter's relevances (``sst_scale``, default 1/sqrt(sst_dim))."""
        scale = self.config.sst_scale
        return self.config.sst_dim ** -0.5 if scale is None else float(scale)

    @property
    def contrastive_on(self) -> bool:
        return self.dual and self.config.use_contrastive

    def loss_names(self) -> tuple[str, ...]:
        """The loss terms ``training_step`` returns (and sums into ``loss``) for this config."""
        ctc = self.pretrain_loss_names() if self.aux_ctc else ()
        if not self.dual:
            return ("loss_t", *ctc)
        names = ["loss_tv", "loss_tk", *ctc]
        if self.config.use_kl_enc:
            names.append("kl_enc")
        if self.config.use_kl_dec:
            names.append("kl_dec")
        if self.contrastive_on:
            names.append("sst")
        return tuple(names)

    @property
    def pretrains(self) -> bool:
        """Whether stage 1 (``stream_pretrain``) runs: it needs gloss targets."""
        return self.gloss_vocab is not None and self.config.pretrain_epochs > 0

    @property
    def g2t_on(self) -> bool:
        """Whether stage ``gloss2text`` (G2T pre-training of mBART) runs."""
        return self.gloss_vocab is not None and self.config.g2t_epochs > 0

    @property
    def bridge_on(self) -> bool:
        """The gloss-embedding bridge runs with ``bridge="gloss"`` *and* a gloss vocabulary
        (without glosses there are no CTC heads or gloss embeddings: plain VL-mapper)."""
        return self.config.bridge == "gloss" and self.gloss_vocab is not None

    @property
    def aux_ctc(self) -> bool:
        """Whether the translation stage adds ``ctc_weight`` × the streams' CTC losses."""
        return self.gloss_vocab is not None and self.config.ctc_weight > 0

    @property
    def freezes_extractors(self) -> bool:
        """Frozen extractors in the translation stage: after stage 1, unless the auxiliary CTC
        loss asks for them to be fine-tuned (on frozen ones it would have nothing to train)."""
        return self.pretrains and self.config.freeze_extractors and not self.aux_ctc

    @property
    def joint_ctc(self) -> bool:
        """Whether the joint CTC head over both extractors exists (dual stream, glosses,
        ``bridge_fusion="joint"``)."""
        return hasattr(self, "fused_ctc")

    def pretrain_loss_names(self) -> tuple[str, ...]:
        return tuple(name for name, on in (("ctc_v", self.use_rgb), ("ctc_k", self.use_keypoints),
                                           ("ctc_f", self.joint_ctc)) if on)

    def translation_stage_name(self) -> str:
        return "hypersign" if self.dual else f"single-{self.config.stream}"

    def stages(self) -> list[Stage]:
        """With a gloss vocabulary: ``stream_pretrain`` (S2G CTC) and ``gloss2text`` (G2T),
        then the translation stage."""
        cfg = self.config
        options = {"batch_size": cfg.batch_size, "amp": cfg.amp}
        stages = []
        if self.pretrains:
            stages.append(Stage(
                name=PRETRAIN_STAGE, epochs=cfg.pretrain_epochs, lr=cfg.pretrain_lr,
                weight_decay=cfg.weight_decay, trainable=EXTRACTOR_PREFIXES + CTC_PREFIXES,
                losses=self.pretrain_loss_names(), scheduler=cfg.pretrain_scheduler,
                warmup_steps=cfg.pretrain_warmup_steps, grad_clip=1.0, monitor="loss",
                options=options))
        if self.g2t_on:
            stages.append(Stage(
                name=G2T_STAGE, epochs=cfg.g2t_epochs, lr=cfg.g2t_lr,
                weight_decay=cfg.weight_decay, trainable=(GLOSS_EMBEDDING_PREFIX, "mbart."),
                losses=("loss_g2t",), scheduler="cosine", warmup_steps=cfg.g2t_warmup_steps,
                grad_clip=1.0, monitor="loss", options=options))
        frozen: tuple[str, ...] = ()
        if self.freezes_extractors:
            # frozen extractors keep their CTC heads as stage 1 left them too (the bridge then
            # reads their posteriors as fixed gloss probabilities)
            frozen = (*CTC_PREFIXES, *EXTRACTOR_PREFIXES)
        elif not (self.aux_ctc or self.bridge_on):
            frozen = CTC_PREFIXES  # nothing reads them
        if not self.bridge_on:
            frozen = (*frozen, GLOSS_EMBEDDING_PREFIX)
        stages.append(Stage(name=self.translation_stage_name(), epochs=cfg.epochs, lr=cfg.lr,
                            weight_decay=cfg.weight_decay, frozen=frozen,
                            losses=self.loss_names(), scheduler="cosine",
                            warmup_steps=cfg.warmup_steps, grad_clip=1.0, monitor="bleu4",
                            options=options))
        return stages

    # ------------------------------------------------------------------------------ parts

    def _text(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.text_ids is None or batch.text_mask is None:
            raise ValueError("hypersign: the batch has no text_ids; collate it with the text "
                             "tokenizer (collate(..., text_tokenizer=tokenizer))")
        return batch.text_ids, batch.text_mask

    def _input(self, batch: Any, stream: str) -> tuple[torch.Tensor, torch.Tensor]:
        if stream not in batch.inputs:
            raise ValueError(f"hypersign: the batch lacks the {stream!r} stream (it has "
                             f"{sorted(batch.inputs)}); collate with streams={self.inputs}")
        return batch.inputs[stream], batch.masks[stream]

    @staticmethod
    def _extract(encoder: nn.Module, x: torch.Tensor, mask: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run a stream feature extractor; a frozen one (no parameter requires grad, i.e.
        pre-trained and kept fixed) runs as TS-SLT's offline feature extraction: eval mode
        (no dropout, BatchNorm running statistics) and no autograd graph."""
        if not encoder.training or any(p.requires_grad for p in encoder.parameters()):
            return encoder(x, mask)
        encoder.eval()
        try:
            with torch.no_grad():
                return encoder(x, mask)
        finally:
            encoder.train()

    def extract(self, batch: Any) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The stream feature extractors' outputs (before the VL-mappers), those in use."""
        out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if self.use_rgb:
            out["v"] = self._extract_cached("frames", self.rgb_encoder, batch)
        if self.use_keypoints:
            out["k"] = self._extract_cached("keypoints", self.keypoint_encoder, batch)
        return out

    def _caches_features(self, encoder: nn.Module) -> bool:
        """Frozen-extractor outputs are cached during *training* steps only: they are a fixed
        function of the sample there (eval mode, no dropout, no augmentation), so TS-SLT's
        offline feature extraction is run once per sample instead of once per epoch. Never
        in evaluation, so latency measurements include the extractors."""
        return (self.config.cache_features and self.training
                and not any(p.requires_grad for p in encoder.parameters()))

    def _extract_cached(self, stream: str, encoder: nn.Module, batch: Any
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        x_in, m_in = self._input(batch, stream)
        if not self._caches_features(encoder):
            return self._extract(encoder, x_in, m_in)
        keys = [(stream, name, int(n)) for name, n in zip(batch.names, m_in.sum(1).tolist(),
                                                            strict=True)]
        cached = self._feature_cache.lookup(keys, device=m_in.device)
        if cached is not None:
            return cached
        x, mask = self._extract(encoder, x_in, m_in)
        self._feature_cache.store(keys, x, mask.sum(1))
        return x, mask

    def clear_feature_cache(self) -> None:
        """Forget cached extractor outputs (new stage, new weights)."""
        self._feature_cache.clear()

    def apply_stage(self, stage: Stage) -> list[str]:
        self.clear_feature_cache()
        return super().apply_stage(stage)

    @staticmethod
    def joint_features(raw: dict[str, tuple[torch.Tensor, torch.Tensor]]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """[x_v; x_k] (B, N, 2d) over the positions both extractors have, and their AND mask."""
        (xv, mv), (xk, mk) = raw["v"], raw["k"]
        n = min(xv.shape[1], xk.shape[1])
        return torch.cat([xv[:, :n], xk[:, :n]], dim=-1), mv[:, :n] & mk[:, :n]

    def gloss_posteriors(self, raw: dict[str, tuple[torch.Tensor, torch.Tensor]]
                         ) -> dict[str, torch.Tensor]:
        """Each stream's CTC-head gloss posteriors (B, N, |glosses|) over its extractor output,
        plus the joint head's ``"f"`` over both when it exists."""
        heads = {"v": getattr(self, "rgb_ctc", None), "k": getattr(self, "keypoint_ctc", None)}
        post = {key: torch.softmax(heads[key](x).float(), dim=-1).to(x.dtype)
                for key, (x, _) in raw.items()}
        if self.joint_ctc and len(raw) == 2:
            x, _ = self.joint_features(raw)
            post["f"] = torch.softmax(self.fused_ctc(x).float(), dim=-1).to(x.dtype)
        return post

    def gloss_bridge(self, raw: dict[str, tuple[torch.Tensor, torch.Tensor]], n: int
                     ) -> dict[str, torch.Tensor]:
        """The gloss-embedding bridge (``bridge="gloss"``, our choice; module docstring): per
        stream B_i = p_i · E_gloss and for the fused stream B_f = p_f · E_gloss with p_f the joint
        recogniser's posteriors (``bridge_fusion="joint"``) or ½(p_v + p_k) (``"average"``), cut
        to the ``n`` positions of the frontend features (padded positions are zeroed later)."""
        post = {k: p[:, :n] for k, p in self.gloss_posteriors(raw).items()}
        if len(post) == 2:
            post["f"] = 0.5 * (post["v"] + post["k"])
        weight = self.gloss_embedding.weight
        return {k: p @ weight.to(p.dtype) for k, p in post.items()}

    def frontend(self, batch: Any, extracted: dict[str, tuple[torch.Tensor, torch.Tensor]]
                 | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per-stream features ``{"v": (F_v, mask), "k": (F_k, mask)}`` (those in use):
        extractor (or the given ``extracted`` outputs) → VL-mapper."""
        with self.nvtx("frontend"):
            raw = extracted if extracted is not None else self.extract(batch)
            mappers = {"v": getattr(self, "rgb_mapper", None),
                       "k": getattr(self, "keypoint_mapper", None)}
            out = {key: mappers[key](*value) for key, value in raw.items()}
        if len(out) == 2:
            (fv, mv), (fk, mk) = out["v"], out["k"]
            n = min(fv.shape[1], fk.shape[1])
            mask = mv[:, :n] & mk[:, :n]
            out = {"v": (fv[:, :n], mask), "k": (fk[:, :n], mask)}
        return out

    def fuse(self, fv: torch.Tensor, fk: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """F_f from F_v and F_k by ``config.fusion`` (padded positions zeroed)."""
        cfg = self.config
        with self.nvtx("fusion"):
            if cfg.fusion == "hypernetwork":
                ff = self.fusion(fv, fk)
            elif cfg.fusion == "mixup":
                if self.training:
                    lam = torch.rand(fv.shape[0], 1, 1, device=fv.device, dtype=fv.dtype)
                else:
                    lam = torch.full((fv.shape[0], 1, 1), 0.5, device=fv.device, dtype=fv.dtype)
                ff = lam * fv + (1 - lam) * fk
            elif cfg.fusion == "gated":
                ff = self.gate_v * fv + self.gate_k * fk
            else:
                ff = torch.relu(self.fusion(torch.cat([fv, fk], dim=-1)))
        return ff * mask[..., None].to(ff.dtype)

    def alpha_sigma(self, state: TrainState | None) -> float:
        """σ_t = max(1 − t/T, ε) with t and T in epochs (module docstring)."""
        cfg = self.config
        if state is None:
            return 1.0
        epochs = max(1, state.stage.epochs)
        t = state.progress * epochs
        T = cfg.alpha_T_epochs if cfg.alpha_T_epochs is not None else cfg.alpha_T_fraction * epochs
        return max(1.0 - t / max(T, 1e-9), cfg.alpha_eps)

    def sample_alpha(self, batch_size: int, state: TrainState | None,
                     device: torch.device) -> torch.Tensor:
        """α of eq. (4), (batch_size,) in [0, 1], by ``config.alpha_strategy``."""
        strategy = self.config.alpha_strategy
        if strategy == "progressive":
            return truncated_normal_alpha((batch_size,), self.alpha_sigma(state), device=device)
        if strategy == "fixed":
            return torch.full((batch_size,), 0.5, device=device)
        if strategy == "rdrop":
            return torch.zeros(batch_size, device=device)
        return torch.rand(batch_size, device=device)

    def kl_weight(self, state: TrainState | None) -> float:
        """KL annealing factor w_t = min(1, step / S)."""
        if state is None:
            return 1.0
        cfg = self.config
        steps = cfg.kl_anneal_steps
        if steps is None:
            steps = cfg.kl_anneal_fraction * max(1, state.total_steps)
        return min(1.0, state.step / max(1.0, float(steps)))

    def sst_features(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """f^X (B, sst_dim): the query MLP then the SST converter (or mean pooling)."""
        q = self.query_mlp(states)
        if not self.config.use_sst:
            return _masked_mean(q, mask)
        _, f = sst_convert(q, self.sst_tokens.to(q.dtype), mask, scale=self.sst_scale,
                           pool=self.config.sst_pool)
        return f

    def info_nce(self, f_e: torch.Tensor, f_d: torch.Tensor) -> torch.Tensor:
        """Eq. (7): −mean_k log softmax_m(scale · cos(f_k^E, f_m^D))[k]."""
        scale = self.logit_scale.exp().clamp(max=LOGIT_SCALE_MAX)
        logits = scale * F.normalize(f_e.float(), dim=-1) @ F.normalize(f_d.float(), dim=-1).T
        target = torch.arange(f_e.shape[0], device=f_e.device)
        return F.cross_entropy(logits, target)

    # ------------------------------------------------------------------------------ losses

    def _translation_loss(self, logits: torch.Tensor, targets: torch.Tensor,
                          valid: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits[valid].float(), targets[valid],
                               label_smoothing=self.config.label_smoothing)

    def ctc_loss(self, feats: torch.Tensor, mask: torch.Tensor, head: nn.Module,
                 batch: Any) -> torch.Tensor:
        """Sign-to-gloss CTC of one stream: ``head`` over the extractor output (B, N, d)."""
        log_probs = F.log_softmax(head(feats).float(), dim=-1).transpose(0, 1)  # (N, B, C)
        return F.ctc_loss(log_probs, batch.gloss_ids, mask.sum(1), batch.gloss_lengths,
                          blank=self.gloss_vocab.blank_id, reduction="mean", zero_infinity=True)

    def pretrain_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Stage 1: L = Σ_i CTC(head_i(F_i), glosses) over the streams in use."""
        if self.gloss_vocab is None:
            raise ValueError("hypersign: stage stream_pretrain needs the gloss_vocab override")
        if batch.gloss_ids is None or batch.gloss_lengths is None:
            raise ValueError("hypersign: stage stream_pretrain needs gloss_ids in the batch; "
                             "collate it with gloss_vocab=")
        with self.nvtx("frontend"):
            feats = self.extract(batch)
        out: dict[str, torch.Tensor] = {}
        if "v" in feats:
            out["ctc_v"] = self.ctc_loss(*feats["v"], self.rgb_ctc, batch)
        if "k" in feats:
            out["ctc_k"] = self.ctc_loss(*feats["k"], self.keypoint_ctc, batch)
        if self.joint_ctc:
            out["ctc_f"] = self.ctc_loss(*self.joint_features(feats), self.fused_ctc, batch)
        total = sum(out.values())
        return {"loss": total, **{k: v.detach() for k, v in out.items()}}

    def g2t_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Stage ``gloss2text`` (TS-SLT's G2T): mBART translates the gloss sequence, fed as
        rows of the gloss embedding table, into the text; cross-entropy as in translation."""
        if not hasattr(self, "gloss_embedding"):
            raise ValueError("hypersign: stage gloss2text needs the gloss_vocab override")
        if batch.gloss_ids is None or batch.gloss_lengths is None:
            raise ValueError("hypersign: stage gloss2text needs gloss_ids in the batch; "
                             "collate it with gloss_vocab=")
        ids, tmask = self._text(batch)
        gids = batch.gloss_ids
        gmask = torch.arange(gids.shape[1], device=gids.device)[None] < batch.gloss_lengths[:, None]
        x = self.gloss_embedding(gids) * gmask[..., None].to(self.gloss_embedding.weight.dtype)
        with self.nvtx("encoder"):
            enc = mb.encode(self.mbart, x, gmask)
        with self.nvtx("decoder"):
            logits, _ = mb.decode(self.mbart, enc, gmask, ids, tmask)
        loss = self._translation_loss(logits, ids[:, 1:], tmask[:, 1:])
        return {"loss": loss, "loss_g2t": loss.detach()}

    def aux_ctc_losses(self, batch: Any, raw: dict[str, tuple[torch.Tensor, torch.Tensor]]
                       ) -> dict[str, torch.Tensor]:
        """The streams' CTC losses on the extractor outputs (``ctc_weight`` > 0)."""
        if batch.gloss_ids is None or batch.gloss_lengths is None:
            raise ValueError("hypersign: ctc_weight > 0 needs gloss_ids in the batch; collate "
                             "it with gloss_vocab=")
        heads = {"v": getattr(self, "rgb_ctc", None), "k": getattr(self, "keypoint_ctc", None)}
        out = {f"ctc_{key}": self.ctc_loss(x, mask, heads[key], batch)
               for key, (x, mask) in raw.items()}
        if self.joint_ctc:
            out["ctc_f"] = self.ctc_loss(*self.joint_features(raw), self.fused_ctc, batch)
        return out

    def training_step(self, batch: Any, state: TrainState | None = None
                      ) -> dict[str, torch.Tensor]:
        """Stage ``stream_pretrain``: the CTC losses; ``gloss2text``: G2T; otherwise
        HyperSign's eq. (9) (+ ``ctc_weight`` × CTC)."""
        if state is not None and state.stage.name == PRETRAIN_STAGE:
            return self.pretrain_step(batch)
        if state is not None and state.stage.name == G2T_STAGE:
            return self.g2t_step(batch)
        cfg = self.config
        ids, tmask = self._text(batch)
        targets, valid = ids[:, 1:], tmask[:, 1:]
        with self.nvtx("frontend"):
            raw = self.extract(batch)
        ctc = self.aux_ctc_losses(batch, raw) if self.aux_ctc else {}
        ctc_total = cfg.ctc_weight * sum(ctc.values()) if ctc else 0.0
        feats = self.frontend(batch, raw)
        n = next(iter(feats.values()))[0].shape[1]
        bridge = self.gloss_bridge(raw, n) if self.bridge_on else {}
        if not self.dual:
            (key, (x, mask)), = feats.items()
            if bridge:
                x = x + bridge[key] * mask[..., None].to(x.dtype)
            with self.nvtx("encoder"):
                enc = mb.encode(self.mbart, x, mask)
            with self.nvtx("decoder"):
                logits, _ = mb.decode(self.mbart, enc, mask, ids, tmask)
            loss = self._translation_loss(logits, targets, valid)
            return {"loss": loss + ctc_total, "loss_t": loss.detach(),
                    **{k: v.detach() for k, v in ctc.items()}}

        (fv, mask), (fk, _) = feats["v"], feats["k"]
        ff = self.fuse(fv, fk, mask)
        b = fv.shape[0]
        alpha_v = self.sample_alpha(b, state, fv.device).to(fv.dtype)
        alpha_k = self.sample_alpha(b, state, fv.device).to(fv.dtype)
        if bridge:  # each stream with its own bridge, F_f with the fused one
            m = mask[..., None].to(fv.dtype)
            fv, fk, ff = fv + bridge["v"] * m, fk + bridge["k"] * m, ff + bridge["f"] * m
        pv = alpha_v[:, None, None] * fv + (1 - alpha_v[:, None, None]) * ff  # eq. (4)
        pk = alpha_k[:, None, None] * fk + (1 - alpha_k[:, None, None]) * ff
        mask2 = torch.cat([mask, mask])
        with self.nvtx("encoder"):
            enc = mb.encode(self.mbart, torch.cat([pv, pk]), mask2)
        with self.nvtx("decoder"):
            logits, dec = mb.decode(self.mbart, enc, mask2, torch.cat([ids, ids]),
                                    torch.cat([tmask, tmask]))
        e_v, e_k = enc.chunk(2)
        d_v, d_k = dec.chunk(2)
        l_v, l_k = logits.chunk(2)
        out: dict[str, torch.Tensor] = {
            "loss_tv": self._translation_loss(l_v, targets, valid),
            "loss_tk": self._translation_loss(l_k, targets, valid),
        }
        w = self.kl_weight(state)
        total = out["loss_tv"] + out["loss_tk"]
        if cfg.use_kl_enc:
            out["kl_enc"] = self.kl_enc(e_v, e_k, mask)
            total = total + w * cfg.lambda_enc * out["kl_enc"]
        if cfg.use_kl_dec:
            out["kl_dec"] = self.kl_dec(l_v, l_k, valid)
            total = total + w * cfg.lambda_dec * out["kl_dec"]
        if self.contrastive_on:
            out["sst"] = self.sst_loss(e_v, e_k, d_v, d_k, mask, valid)
            total = total + out["sst"]
        out.update(ctc)
        result = {"loss": total + ctc_total}
        result.update({k: v.detach() for k, v in out.items()})
        result["kl_weight"] = torch.tensor(w)
        result["alpha_v"] = alpha_v.detach().float().mean()
        result["alpha_k"] = alpha_k.detach().float().mean()
        return result

    def kl_enc(self, e_v: torch.Tensor, e_k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """KL_enc(E_v ‖ E_k), eq. (5) (see ``kl_enc_mode``)."""
        if self.config.kl_enc_mode == "pooled":
            log_p, log_q = (F.log_softmax(_masked_mean(e.float(), mask), -1) for e in (e_v, e_k))
            return (log_p.exp() * (log_p - log_q)).sum(-1).mean()
        log_p = F.log_softmax(e_v[mask].float(), -1)
        log_q = F.log_softmax(e_k[mask].float(), -1)
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean()

    def kl_dec(self, l_v: torch.Tensor, l_k: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """KL_dec(D_v ‖ D_k), eq. (6): next-token distributions at valid target positions."""
        log_p = F.log_softmax(l_v[valid].float(), -1)
        log_q = F.log_softmax(l_k[valid].float(), -1)
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean()

    def sst_loss(self, e_v, e_k, d_v, d_k, enc_mask, dec_mask) -> torch.Tensor:
        """L_SST, eq. (8): mean InfoNCE over the (cross-)stream pairs."""
        f_ev, f_ek = self.sst_features(e_v, enc_mask), self.sst_features(e_k, enc_mask)
        f_dv, f_dk = self.sst_features(d_v, dec_mask), self.sst_features(d_k, dec_mask)
        pairs = [(f_ev, f_dv), (f_ek, f_dk)]
        if self.config.use_cross_pairs:
            pairs += [(f_ev, f_dk), (f_ek, f_dv)]
        return sum(self.info_nce(a, b) for a, b in pairs) / len(pairs)

    # ------------------------------------------------------------------------------ inference

    def inference_features(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """What the translation network sees at inference: F_f (or the single stream), plus
        its gloss bridge when on."""
        raw = self.extract(batch)
        feats = self.frontend(batch, raw)
        if not self.dual:
            (key, (x, mask)), = feats.items()
        else:
            key = "f"
            (fv, mask), (fk, _) = feats["v"], feats["k"]
            x = self.fuse(fv, fk, mask)
        if self.bridge_on:
            x = x + self.gloss_bridge(raw, x.shape[1])[key] * mask[..., None].to(x.dtype)
        return x, mask

    @torch.no_grad()
    def generate(self, batch: Any, beam_size: int = 5, length_penalty: float = 1.0,
                 max_len: int = 60) -> list[str]:
        x, mask = self.inference_features(batch)
        return mb.translate(self, x, mask, num_beams=beam_size, length_penalty=length_penalty,
                            max_new_tokens=max_len)

    # ------------------------------------------------------------------------------ reports

    def param_report(self) -> dict[str, Any]:
        """Total / trainable parameters and a per-component breakdown (works on ``meta``)."""
        groups = {
            "rgb_encoder": ("rgb_encoder.", "rgb_mapper."),
            "keypoint_encoder": ("keypoint_encoder.", "keypoint_mapper."),
            "fusion": ("fusion.", "gate_v", "gate_k"),
            "mbart": ("mbart.",),
            "sst": ("query_mlp.", "sst_tokens", "logit_scale"),
            "ctc_heads": CTC_PREFIXES,
            "gloss_embedding": (GLOSS_EMBEDDING_PREFIX,),
        }
        total, trainable, components = self.count_parameters_by_group(groups)
        return {"total": total, "trainable": trainable, "components": components}


__all__ = ["ALPHA_STRATEGIES", "BRIDGES", "FUSIONS", "G2T_STAGE", "PAPER_CONFIG", "HyperSign",
           "HyperSignConfig", "truncated_normal_alpha"]
