"""HyperSign (Zhang et al., 2025, Sec. 2, Fig. 2): the method class :class:`HyperSign`.

RGB frames and keypoints each pass their own extractor and VL-mapper (F_v, F_k;
:mod:`baselines.hypersign.streams`); the hypernetwork fuses them into F_f
(:mod:`baselines.hypersign.fusion`); one shared mBART translates. Training (eq. 9) feeds both
partial-shortcut mixtures P_v, P_k through the same mBART in one batched call and adds the
self-distillation KL terms and L_SST (:mod:`baselines.hypersign.synergy`); inference reads F_f
alone (beam 5, length penalty 1). With a gloss vocabulary two TS-SLT pre-training stages run
first (S2G CTC, G2T; :mod:`baselines.hypersign.pretraining`) and a gloss bridge feeds mBART.
``stream="rgb"`` / ``"keypoints"`` are the single-stream baselines (MMTLB / MMTLB-KP, Table 1).

The paper ↔ code map, the choices where the paper is vague, the profiles and the measurements
behind them: ``docs/methods/hypersign.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import mbart as mb
from baselines.common.encoders import KeypointEncoder, RGBEncoder, VLMapper
from baselines.common.sample_cache import SampleCache
from baselines.hypersign.config import (
    CTC_PREFIXES,
    EXTRACTOR_PREFIXES,
    G2T_STAGE,
    GLOSS_EMBEDDING_PREFIX,
    PAPER_CONFIG,
    PRETRAIN_STAGE,
    TINY_DATA,
    HyperSignConfig,
)
from baselines.hypersign.fusion import FusionMixin
from baselines.hypersign.pretraining import PretrainingMixin
from baselines.hypersign.streams import StreamsMixin
from baselines.hypersign.synergy import SynergyMixin
from harness.data.batching import Batch
from harness.method import SLTMethod, Stage, StandIn, TrainState, register
from harness.ops import HyperFusion


def mbart_size(cfg: HyperSignConfig) -> mb.MBartSize:
    """The mBART this configuration builds (``d_model``, ``mbart_*``)."""
    return mb.MBartSize(d_model=cfg.d_model, encoder_layers=cfg.mbart_layers[0],
                        decoder_layers=cfg.mbart_layers[1], heads=cfg.mbart_heads,
                        ffn=cfg.mbart_ffn, dropout=cfg.mbart_dropout,
                        attention_dropout=cfg.mbart_attention_dropout,
                        max_positions=cfg.mbart_max_positions)


@register("hypersign")
class HyperSign(StreamsMixin, FusionMixin, SynergyMixin, PretrainingMixin, SLTMethod):
    """HyperSign (see the module docstring); ``get_method("hypersign", profile, **overrides)``."""

    key = "hypersign"
    task = "translation"
    inputs = ("frames", "keypoints")
    needs_text = True
    needs_gloss = True  # stage 1's CTC targets; without a gloss_vocab stage 1 is skipped
    #: ``signbench check`` at paper size: the pretrained parts cut to one layer each
    check_overrides: ClassVar[dict[str, Any]] = {"mbart_layers": (1, 1)}
    data_defaults: ClassVar[dict[str, dict[str, Any]]] = {"tiny": TINY_DATA}
    config_class: ClassVar[type | None] = HyperSignConfig

    @classmethod
    def standins(cls, profile: str, overrides: Mapping[str, Any]) -> list[StandIn]:
        """The pretrained mBART the paper (via TS-SLT) starts from: a denoising stand-in of
        the size this configuration builds, loaded through ``init`` (docs/methods/hypersign.md,
        "Pretrained stand-ins")."""
        cfg = cls.build_config(PAPER_CONFIG if profile == "paper" else HyperSignConfig(),
                               overrides)
        return [StandIn("init", "mbart", {
            "vocab_size": cls.tokenizer_vocab_size, "tokenizer_kind": cls.tokenizer_kind,
            "size": asdict(mbart_size(cfg))}, paper="mBART-large-cc25")]

    def __init__(self, profile: str = "tiny", tokenizer: Any = None,
                 config: HyperSignConfig | None = None, gloss_vocab: Any = None,
                 **overrides: Any) -> None:
        super().__init__(profile)
        base = config or (PAPER_CONFIG if profile == "paper" else HyperSignConfig())
        cfg = self.build_config(base, overrides)
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
        self.mbart = mb.build_mbart(mbart_size(cfg), cfg.vocab_size, tokenizer, cfg.init)
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

    def apply_stage(self, stage: Stage) -> list[str]:
        self.clear_feature_cache()
        return super().apply_stage(stage)

    # ------------------------------------------------------------------------------ training

    def _text(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.text_ids is None or batch.text_mask is None:
            raise ValueError("hypersign: the batch has no text_ids; collate it with the text "
                             "tokenizer (collate(..., text_tokenizer=tokenizer))")
        return batch.text_ids, batch.text_mask

    def _translation_loss(self, logits: torch.Tensor, targets: torch.Tensor,
                          valid: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits[valid].float(), targets[valid],
                               label_smoothing=self.config.label_smoothing)

    def training_step(self, batch: Batch, state: TrainState | None = None
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

    # ------------------------------------------------------------------------------ inference

    def inference_features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
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
    def generate(self, batch: Batch, beam_size: int = 5, length_penalty: float = 1.0,
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
