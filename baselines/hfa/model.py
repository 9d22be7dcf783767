"""HFA's model (Asasi, Lakhal & Bowden, IVA 2025, Sec. 3, Fig. 1): :class:`HFA`.

Frame level: a DINOv2-style ViT (``baselines.common.vit``; LoRA on its top blocks) → CLS →
Linear + BatchNorm → F. Segment level: the window-7 RoPE temporal encoder
(:mod:`baselines.hfa.temporal`) → Z. Video level: the mBART encoder (LoRA on q/v) → M.

Stages: ``pretrain`` optimises L_pre = L_align + λ·L_psp (eq. 5) — L_psp from
:mod:`baselines.hfa.prototypes` (eqs. 1–3), L_align a symmetric InfoNCE of the pooled M against a
frozen mBART text encoder ψ_te (eq. 4) — and keeps the weights of the best dev L_pre;
``finetune_decoder`` / ``finetune_all`` (Cambrian-1's two stages, Sec. 4.2) train mapper(Z) →
mBART encoder → decoder with cross-entropy (eq. 6). The pretrained DINOv2 ViT and mBART-cc25
come through ``vit_init`` / ``init`` (:meth:`HFA.standins` declares them, so a default run
starts from the stand-ins ``harness.pretrain`` trains); the former tiny-only warm-ups
``frame_pretrain`` (keypoint regression) and ``text_pretrain`` (denoising) are off by default
and stay as ablations.

``param_report`` sets the counts beside Table 3. The paper ↔ code map, the choices where the
paper is vague, the tiny profile and the measurements behind it: ``docs/methods/hfa.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import mbart as mb
from baselines.hfa.config import (
    PAPER_CONFIG,
    PAPER_DATA,
    PAPER_TABLE3,
    PAPER_VOCAB,
    TINY_DATA,
    HFAConfig,
)
from baselines.hfa.prototypes import PROTOTYPE_DIM, PseudoGlossHead, build_prototypes, multi_hot
from baselines.hfa.temporal import TemporalEncoder
from harness.data.batching import Batch
from harness.data.keypoints import NUM_SIGNFUSE
from harness.data.sample import Sample
from harness.method import Evaluator, SLTMethod, Stage, StandIn, TrainState, register

if TYPE_CHECKING:
    from collections.abc import Mapping

    from harness.text import PseudoGlossExtractor

FRAME_PRETRAIN_STAGE = "frame_pretrain"
TEXT_PRETRAIN_STAGE = "text_pretrain"
PRETRAIN_STAGE = "pretrain"
FINETUNE_DECODER_STAGE = "finetune_decoder"
FINETUNE_ALL_STAGE = "finetune_all"
LOGIT_SCALE_MAX = 100.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the real checkpoints the paper starts from (``StandIn.paper``)
PAPER_VIT = "DINOv2 ViT-S/14 (facebook/dinov2-small)"
PAPER_MBART = "mBART-large-cc25 (facebook/mbart-large-cc25)"
VISUAL_PREFIXES = ("vit.", "frame_proj.", "frame_bn.", "temporal.")
PSP_PREFIXES = ("psp_head.",)
ALIGN_PREFIXES = ("logit_scale",)
FRAME_PRETRAIN_PREFIXES = ("vit.", "keypoint_head.")
ENCODER_PREFIXES = ("mbart.model.encoder.", "mbart.model.shared.")
DECODER_PREFIXES = ("mbart.model.decoder.", "mbart.lm_head.")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def _inject_lora(module: nn.Module, targets: Any, r: int, alpha: float, dropout: float) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                                       target_modules=targets), module)


@register("hfa")
class HFA(SLTMethod):
    """HFA (module docstring; ``docs/methods/hfa.md``): ``get_method("hfa", profile,
    **overrides)``."""

    key = "hfa"
    task = "translation"
    inputs = ("frames",)
    needs_text = True
    needs_gloss = False
    needs_pseudo_gloss = True
    needs_train_texts = True  # the runner passes train_texts= (word vectors for prototypes)
    normalize_frames = True
    #: ``signbench check`` at paper size: the pretrained parts cut to one layer each
    check_overrides: ClassVar[dict[str, Any]] = {"vit_depth": 1, "vit_lora_blocks": 1,
                                                     "mbart_layers": (1, 1)}
    data_defaults: ClassVar[dict[str, dict[str, Any]]] = {"tiny": TINY_DATA, "paper": PAPER_DATA}
    config_class: ClassVar[type | None] = HFAConfig

    def __init__(self, profile: str = "tiny", tokenizer: Any = None,
                 pseudo_gloss: PseudoGlossExtractor | None = None,
                 config: HFAConfig | None = None, train_texts: Sequence[str] | None = None,
                 **overrides: Any) -> None:
        super().__init__(profile)
        base = config or (PAPER_CONFIG if profile == "paper" else HFAConfig())
        cfg = self.build_config(base, overrides)
        self.config = cfg
        self.tokenizer = tokenizer
        self.pseudo_gloss = pseudo_gloss
        from baselines.common.vit import VisionTransformer

        # frame level
        self.vit = VisionTransformer(**self.vit_kwargs(cfg))
        if cfg.vit_init is not None:
            from baselines.common.weights import load_weights

            load_weights(self.vit, cfg.vit_init)
        if cfg.vit_train == "lora" and cfg.vit_lora_blocks > 0:
            blocks = "|".join(str(i) for i in range(cfg.vit_depth - cfg.vit_lora_blocks,
                                                    cfg.vit_depth))
            _inject_lora(self.vit, rf"blocks\.({blocks})\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)",
                         cfg.vit_lora_r, cfg.vit_lora_alpha, cfg.vit_lora_dropout)
        self.frame_proj = nn.Linear(cfg.vit_dim, cfg.frame_dim)
        if cfg.frame_pretrain_epochs > 0:  # tiny-only DINOv2 stand-in (docs/methods/hfa.md)
            self.keypoint_head = nn.Linear(cfg.vit_dim, 2 * NUM_SIGNFUSE)
            self.inputs = ("frames", "keypoints")  # instance attribute: the runner loads both
        self.frame_bn = nn.BatchNorm1d(cfg.frame_dim)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        # segment level
        self.temporal = TemporalEncoder(cfg.frame_dim, cfg.temporal_dim, cfg.temporal_layers,
                                        cfg.temporal_heads, cfg.temporal_ffn, cfg.window,
                                        cfg.downsample_after, out_dim=cfg.d_model,
                                        dropout=cfg.dropout,
                                        layer_scale=cfg.temporal_layer_scale)
        # video level
        self.mbart = mb.build_mbart(self.mbart_size(cfg), cfg.vocab_size, tokenizer, cfg.init)
        encoder = self.mbart.get_encoder()
        self.text_encoder = copy.deepcopy(encoder)  # frozen ψ_te, with its own embedding
        self.text_encoder.requires_grad_(False)
        if cfg.mbart_train == "lora":
            _inject_lora(self.mbart.model, ["q_proj", "v_proj"], cfg.mbart_lora_r,
                         cfg.mbart_lora_alpha, cfg.mbart_lora_dropout)
        self.mapper = nn.Linear(cfg.d_model, cfg.d_model)
        with torch.no_grad():
            self.mapper.weight.copy_(torch.eye(cfg.d_model))
            self.mapper.bias.zero_()
        # pretraining heads
        vocabulary = list(pseudo_gloss.vocabulary) if pseudo_gloss is not None else []
        self.gloss_index = {w: i for i, w in enumerate(vocabulary)}
        texts = list(train_texts) if train_texts is not None else None
        prototypes, self.prototype_info = build_prototypes(
            vocabulary or ["<none>"], texts=texts, extractor=pseudo_gloss,
            fasttext_path=cfg.fasttext, dim=PROTOTYPE_DIM)
        self.psp_head = PseudoGlossHead(cfg.d_model, prototypes, cfg.prototype_temperature,
                                        cfg.psp_dropout)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.align_temperature)))
        # ψ_te's pooled outputs standardised per dimension (running statistics; no parameters)
        self.text_norm = (nn.BatchNorm1d(cfg.d_model, affine=False) if cfg.align_text_norm
                          else nn.Identity())
        # best-pretraining-checkpoint tracking (docs/methods/hfa.md)
        self._dev_sum = 0.0
        self._dev_count = 0
        self._dev_epoch: int | None = None
        self._best_snapshot: dict[str, torch.Tensor] | None = None
        self._restored = False
        self._text_encoder_synced = False
        self.pretrain_best: dict[str, Any] | None = None

    @classmethod
    def mbart_size(cls, cfg: HFAConfig) -> mb.MBartSize:
        """The mBART HFA builds (and its ``init=`` stand-in is trained at)."""
        return mb.MBartSize(d_model=cfg.d_model, encoder_layers=cfg.mbart_layers[0],
                            decoder_layers=cfg.mbart_layers[1], heads=cfg.mbart_heads,
                            ffn=cfg.mbart_ffn, dropout=cfg.mbart_dropout,
                            attention_dropout=cfg.mbart_attention_dropout,
                            max_positions=cfg.mbart_max_positions)

    @classmethod
    def vit_kwargs(cls, cfg: HFAConfig) -> dict[str, Any]:
        """``VisionTransformer(**kwargs)`` as HFA builds it (and its ``vit_init`` stand-in)."""
        return {"img_size": cfg.vit_img_size or cfg.img_size, "patch_size": cfg.patch_size,
                "embed_dim": cfg.vit_dim, "depth": cfg.vit_depth, "num_heads": cfg.vit_heads,
                "init_values": cfg.vit_init_values}

    @classmethod
    def standins(cls, profile: str, overrides: Mapping[str, Any]) -> list[StandIn]:
        """The paper's pretrained parts (issue 20; docs/methods/hfa.md, "Pretrained
        stand-ins"): ``vit_init`` — a DINOv2-architecture ViT (kind ``vit``) fed the frames HFA
        feeds it (``img_size``, ImageNet mean / std) and read out at the CLS token, as
        :meth:`frame_features` does; ``init`` — an mBART denoiser (kind ``mbart``) of the size
        HFA builds over the run's tokenizer settings, so both load strictly."""
        base = PAPER_CONFIG if profile == "paper" else HFAConfig()
        cfg = cls.build_config(base, {k: v for k, v in overrides.items()
                                      if k not in ("tokenizer", "pseudo_gloss", "train_texts")})
        vit = {"module": "baselines.common.vit:VisionTransformer", "kwargs": cls.vit_kwargs(cfg),
               "stream": "frames", "resolution": cfg.img_size,
               "normalize": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
               "call": "forward_features", "readouts": ["cls"]}
        mbart = {"vocab_size": cls.tokenizer_vocab_size, "tokenizer_kind": cls.tokenizer_kind,
                 "size": dataclasses.asdict(cls.mbart_size(cfg))}
        return [StandIn("vit_init", "vit", vit, paper=PAPER_VIT),
                StandIn("init", "mbart", mbart, paper=PAPER_MBART)]

    # ------------------------------------------------------------------------------ stages

    def _frozen_base(self, name: str) -> bool:
        """Parameters no stage trains: the text encoder, and base weights under LoRA."""
        if name.startswith("text_encoder."):
            return True
        cfg = self.config
        if cfg.vit_train == "lora" and name.startswith("vit.") and "lora_" not in name:
            return True
        return (cfg.mbart_train == "lora" and name.startswith("mbart.")
                and "lora_" not in name)

    def apply_stage(self, stage: Stage) -> list[str]:
        """``Stage.trains`` minus the always-frozen base weights (:meth:`_frozen_base`)."""
        names = []
        for name, param in self.named_parameters():
            param.requires_grad_(stage.trains(name) and not self._frozen_base(name))
            if param.requires_grad:
                names.append(name)
        if not names:
            raise ValueError(f"hfa: stage {stage.name!r} leaves no parameter trainable")
        return names

    def pretrain_prefixes(self) -> tuple[str, ...]:
        psp = PSP_PREFIXES if self.config.psp_weight > 0 else ()
        return (*VISUAL_PREFIXES, *ENCODER_PREFIXES, *psp, *ALIGN_PREFIXES)

    def stages(self) -> list[Stage]:
        cfg = self.config
        options = {"batch_size": cfg.batch_size}
        losses = ("loss_align", "loss_psp") if cfg.psp_weight > 0 else ("loss_align",)
        stages = []
        if cfg.frame_pretrain_epochs > 0:
            stages.append(Stage(name=FRAME_PRETRAIN_STAGE, epochs=cfg.frame_pretrain_epochs,
                                lr=cfg.frame_pretrain_lr, weight_decay=cfg.weight_decay,
                                trainable=FRAME_PRETRAIN_PREFIXES, losses=("loss_keypoints",),
                                scheduler="onecycle", warmup_steps=cfg.warmup_steps,
                                grad_clip=1.0, monitor="loss", options=options))
        if cfg.text_pretrain_epochs > 0:
            stages.append(Stage(name=TEXT_PRETRAIN_STAGE, epochs=cfg.text_pretrain_epochs,
                                lr=cfg.text_pretrain_lr, weight_decay=cfg.weight_decay,
                                trainable=(*ENCODER_PREFIXES, *DECODER_PREFIXES),
                                losses=("loss_text",), scheduler="onecycle",
                                warmup_steps=cfg.warmup_steps, grad_clip=1.0, monitor="loss",
                                options=options))
        if cfg.pretrain_epochs > 0:
            stages.append(Stage(name=PRETRAIN_STAGE, epochs=cfg.pretrain_epochs,
                                lr=cfg.pretrain_lr, weight_decay=cfg.weight_decay,
                                trainable=self.pretrain_prefixes(), losses=losses,
                                scheduler="onecycle", warmup_steps=cfg.pretrain_warmup_steps,
                                grad_clip=1.0, monitor="loss", options=options))
        if cfg.finetune_decoder_epochs > 0:
            stages.append(Stage(name=FINETUNE_DECODER_STAGE, epochs=cfg.finetune_decoder_epochs,
                                lr=cfg.lr, weight_decay=cfg.weight_decay,
                                trainable=("mapper.", *DECODER_PREFIXES, "mbart.model.shared."),
                                losses=("loss_slt",), scheduler="onecycle",
                                warmup_steps=cfg.warmup_steps, grad_clip=1.0, monitor="bleu4",
                                options=options))
        ft_psp = PSP_PREFIXES if cfg.finetune_psp_weight > 0 else ()
        ft_losses = ("loss_slt", "loss_psp") if ft_psp else ("loss_slt",)
        if cfg.finetune_all_epochs > 0:
            stages.append(Stage(name=FINETUNE_ALL_STAGE, epochs=cfg.finetune_all_epochs,
                                lr=cfg.lr, weight_decay=cfg.weight_decay,
                                trainable=(*VISUAL_PREFIXES, "mapper.", "mbart.", *ft_psp),
                                losses=ft_losses, scheduler="onecycle",
                                warmup_steps=cfg.warmup_steps, grad_clip=1.0, monitor="bleu4",
                                options=options))
        return stages

    # ------------------------------------------------------------------------------ parts

    def frame_features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """F (B, T*, D*) and its mask: every ``frame_stride``-th valid frame through the ViT."""
        if "frames" not in batch.inputs:
            raise ValueError(f"hfa: the batch lacks the 'frames' stream (it has "
                             f"{sorted(batch.inputs)}); collate with streams=('frames',)")
        x, mask = batch.inputs["frames"], batch.masks["frames"]
        if x.dim() != 5 or x.shape[-1] != 3:
            raise ValueError(f"hfa: frames must be (B, T, H, W, 3), got {tuple(x.shape)}")
        s = self.config.frame_stride
        x, mask = x[:, ::s], mask[:, ::s]
        cls = self.vit(self._pixels(x[mask]))
        f = self.frame_bn(self.frame_proj(cls))
        out = f.new_zeros(*mask.shape, f.shape[-1])
        out[mask] = f
        return out, mask

    def _pixels(self, valid: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) frames (uint8 or [0, 1] float) → (N, 3, img_size, img_size), normalised."""
        valid = valid.float() / 255.0 if not valid.is_floating_point() else valid
        valid = valid.permute(0, 3, 1, 2)
        size = self.config.img_size
        if valid.shape[-2:] != (size, size):
            valid = F.interpolate(valid, size=(size, size), mode="bilinear", align_corners=False)
        return (valid - self.pixel_mean.to(valid.dtype)) / self.pixel_std.to(valid.dtype)

    def frame_pretrain_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Stage ``frame_pretrain`` (tiny only): the ViT's CLS token regresses the frame's 2-D
        keypoints (75 joints), standardised per coordinate over the batch's frames, MSE over the
        observed ones (confidence > 0) — a stand-in for DINOv2's pretrained frame features."""
        for stream in ("frames", "keypoints"):
            if stream not in batch.inputs:
                raise ValueError(f"hfa: stage {FRAME_PRETRAIN_STAGE!r} needs the {stream!r} "
                                 f"stream; the batch has {sorted(batch.inputs)}")
        frames, kp = batch.inputs["frames"], batch.inputs["keypoints"]
        if kp.dim() != 4 or kp.shape[2:] != (NUM_SIGNFUSE, 3) or kp.shape[:2] != frames.shape[:2]:
            raise ValueError(f"hfa: keypoints must be (B, T, {NUM_SIGNFUSE}, 3) with the frames' "
                             f"(B, T) {tuple(frames.shape[:2])}, got {tuple(kp.shape)}")
        s = self.config.frame_stride
        mask = batch.masks["frames"][:, ::s]
        kp = kp[:, ::s][mask].float()  # (N, J, 3)
        target = kp[..., :2].flatten(1)
        seen = (kp[..., 2:] > 0).expand(-1, -1, 2).flatten(1).to(target.dtype)
        count = seen.sum(0).clamp_min(1.0)
        mean = (target * seen).sum(0) / count
        std = (((target - mean) ** 2 * seen).sum(0) / count).sqrt().clamp_min(1e-3)
        with self.nvtx("frontend"):
            pred = self.keypoint_head(self.vit(self._pixels(frames[:, ::s][mask])))
        err = (pred.float() - (target - mean) / std) ** 2
        loss = (err * seen).sum() / seen.sum().clamp_min(1.0)
        return {"loss": loss, "loss_keypoints": loss.detach()}

    def segment_features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Z (B, T, d_model) and its mask."""
        with self.nvtx("frontend"):
            f, mask = self.frame_features(batch)
        with self.nvtx("temporal"):
            return self.temporal(f, mask)

    def _text(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.text_ids is None or batch.text_mask is None:
            raise ValueError("hfa: the batch has no text_ids; collate it with the text "
                             "tokenizer (collate(..., text_tokenizer=tokenizer))")
        return batch.text_ids, batch.text_mask

    def pseudo_gloss_labels(self, batch: Batch) -> torch.Tensor:
        """H (B, U): multi-hot pseudo-glosses of each sample's sentence."""
        if self.pseudo_gloss is None:
            raise ValueError("hfa: pseudo-gloss pretraining needs the pseudo_gloss= override "
                             "(a fitted harness.text.PseudoGlossExtractor)")
        glosses = [self.pseudo_gloss.extract(t or "") for t in batch.texts]
        return multi_hot(glosses, self.gloss_index, self.psp_head.num_glosses)

    def pseudo_gloss_loss(self, z: torch.Tensor, mask: torch.Tensor, batch: Batch) -> torch.Tensor:
        """L_psp (eqs. 1–3) of the segment features Z against the batch's pseudo-glosses."""
        with self.nvtx("pseudo_gloss"):
            e_hat = self.psp_head(z, mask)
            return self.psp_head.loss(e_hat, self.pseudo_gloss_labels(batch).to(e_hat.device))

    def info_nce(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Eq. (4): symmetric InfoNCE of cosine similarities with the learnable temperature."""
        scale = self.logit_scale.exp().clamp(max=LOGIT_SCALE_MAX)
        logits = scale * F.normalize(video.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T
        target = torch.arange(video.shape[0], device=video.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    # ------------------------------------------------------------------------------ training

    def pretrain_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """L_pre = L_align + λ L_psp (eq. 5)."""
        cfg = self.config
        z, mask = self.segment_features(batch)
        with self.nvtx("encoder"):
            m = mb.encode(self.mbart, z, mask)
            ids, tmask = self._text(batch)
            with torch.no_grad():
                self.text_encoder.eval()
                text = self.text_encoder(input_ids=ids, attention_mask=tmask.long())
                text_states = text.last_hidden_state
        text_pooled = self.text_norm(_masked_mean(text_states, tmask).float())
        loss_align = self.info_nce(_masked_mean(m, mask), text_pooled)
        out = {"loss_align": loss_align}
        total = loss_align
        if cfg.psp_weight > 0:
            out["loss_psp"] = self.pseudo_gloss_loss(z, mask, batch)
            total = total + cfg.psp_weight * out["loss_psp"]
        return {"loss": total, **{k: v.detach() for k, v in out.items()}}

    def _mask_tokens(self, ids: torch.Tensor, tmask: torch.Tensor, prob: float) -> torch.Tensor:
        """``ids`` with a fraction ``prob`` of the non-special valid tokens replaced by ``<unk>``
        (``<pad>`` without a tokenizer); unchanged in eval mode or when ``prob`` is 0."""
        if not self.training or prob <= 0:
            return ids
        special = torch.zeros_like(tmask)
        for sid in (self.mbart.config.bos_token_id, self.mbart.config.eos_token_id,
                    self.mbart.config.pad_token_id):
            special = special | (ids == sid)
        drop = torch.rand(ids.shape, device=ids.device) < prob
        unk = self.tokenizer.unk_id if self.tokenizer is not None else None
        return ids.masked_fill(drop & tmask & ~special,
                               unk if unk is not None else self.mbart.config.pad_token_id)

    def _token_ce(self, logits: torch.Tensor, ids: torch.Tensor, tmask: torch.Tensor
                  ) -> torch.Tensor:
        """Teacher-forced cross-entropy of the next tokens ``ids[:, 1:]`` over valid positions
        (label smoothing ``label_smoothing``)."""
        valid = tmask[:, 1:]
        return F.cross_entropy(logits[valid].float(), ids[:, 1:][valid],
                               label_smoothing=self.config.label_smoothing)

    def text_pretrain_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Denoising text autoencoding (stage ``text_pretrain``): mBART reads the sentence with
        ``text_mask_prob`` of its tokens replaced by ``<unk>`` and reconstructs it."""
        ids, tmask = self._text(batch)
        noisy = self._mask_tokens(ids, tmask, self.config.text_mask_prob)
        with self.nvtx("encoder"):
            emb = self.mbart.get_input_embeddings()(noisy)
            enc = mb.encode(self.mbart, emb, tmask)
        with self.nvtx("decoder"):
            logits, _ = mb.decode(self.mbart, enc, tmask, ids, tmask)
        loss = self._token_ce(logits, ids, tmask)
        return {"loss": loss, "loss_text": loss.detach()}

    @torch.no_grad()
    def sync_text_encoder(self) -> None:
        """ψ_te ← the (text-pretrained) mBART encoder, base weights only (LoRA factors skipped)."""
        source = {n.replace(".base_layer", ""): t
                  for n, t in self.mbart.get_encoder().state_dict().items() if "lora_" not in n}
        target = self.text_encoder.state_dict()
        missing = sorted(set(target) - set(source))
        if missing:
            raise ValueError(f"hfa: cannot copy the mBART encoder into the text encoder; "
                             f"missing {missing[:5]}")
        self.text_encoder.load_state_dict({n: source[n] for n in target})
        self._text_encoder_synced = True

    def translation_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Eq. (6) (plus ``finetune_psp_weight`` · L_psp on Z when set: tiny-only aid)."""
        ids, tmask = self._text(batch)
        z, mask = self.segment_features(batch)
        x = self.mapped(z, mask)
        with self.nvtx("encoder"):
            enc = mb.encode(self.mbart, x, mask)
        dec_ids = self._mask_tokens(ids, tmask, self.config.decoder_token_dropout)
        with self.nvtx("decoder"):
            logits, _ = mb.decode(self.mbart, enc, mask, dec_ids, tmask)
        loss = self._token_ce(logits, ids, tmask)
        out = {"loss": loss, "loss_slt": loss.detach()}
        if self.config.finetune_psp_weight > 0 and self.training:
            psp = self.pseudo_gloss_loss(z, mask, batch)
            out["loss"] = loss + self.config.finetune_psp_weight * psp
            out["loss_psp"] = psp.detach()
        return out

    def training_step(self, batch: Batch, state: TrainState | None = None
                      ) -> dict[str, torch.Tensor]:
        """Stage ``pretrain``: L_pre; the fine-tuning stages: the translation loss (eq. 6)."""
        if state is not None and state.stage.name == FRAME_PRETRAIN_STAGE:
            return self.frame_pretrain_step(batch)
        if state is not None and state.stage.name == TEXT_PRETRAIN_STAGE:
            return self.text_pretrain_step(batch)
        pretraining = state is not None and state.stage.name == PRETRAIN_STAGE
        if (self.training and state is not None and self.config.text_pretrain_epochs > 0
                and not self._text_encoder_synced):
            self.sync_text_encoder()  # the frozen text encoder starts from the text-pretrained one
        if self.training:
            self._finish_dev_round()
            if not pretraining and self._best_snapshot is not None and not self._restored:
                self._restore_best()
        out = self.pretrain_step(batch) if pretraining else self.translation_step(batch)
        if pretraining and not self.training and state is not None:
            if self._dev_epoch != state.epoch:
                self._dev_sum, self._dev_count, self._dev_epoch = 0.0, 0, state.epoch
            self._dev_sum += float(out["loss"].detach().float()) * len(batch)
            self._dev_count += len(batch)
        return out

    def _finish_dev_round(self) -> None:
        """After a dev round of the pretraining stage: snapshot the weights if L_pre improved."""
        if not self._dev_count:
            return
        value = self._dev_sum / self._dev_count
        epoch = self._dev_epoch
        self._dev_sum, self._dev_count, self._dev_epoch = 0.0, 0, None
        if self.pretrain_best is None or value < self.pretrain_best["dev_loss"]:
            self.pretrain_best = {"epoch": epoch, "dev_loss": value}
            keep = self.pretrain_prefixes()
            snap = {n: p.detach().clone() for n, p in self.named_parameters()
                    if n.startswith(keep) and p.requires_grad}
            snap.update({n: b.detach().clone() for n, b in self.named_buffers()
                         if n.startswith(VISUAL_PREFIXES)})
            self._best_snapshot = snap

    @torch.no_grad()
    def _restore_best(self) -> None:
        tensors = dict(self.named_parameters())
        tensors.update(dict(self.named_buffers()))
        for name, value in (self._best_snapshot or {}).items():
            tensors[name].copy_(value)
        self._restored = True
        self._best_snapshot = None

    # ------------------------------------------------------------------------------ inference

    def video_inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """What the mBART encoder reads when translating: mapper(Z), with the mask."""
        z, mask = self.segment_features(batch)
        return self.mapped(z, mask), mask

    def mapped(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The linear mapper on Z, zero on padded positions."""
        return self.mapper(z) * mask[..., None].to(z.dtype)

    @torch.no_grad()
    def generate(self, batch: Batch, beam_size: int = 5, length_penalty: float = 1.0,
                 max_len: int = 60) -> list[str]:
        x, mask = self.video_inputs(batch)
        return mb.translate(self, x, mask, num_beams=beam_size, length_penalty=length_penalty,
                            max_new_tokens=max_len)

    def extra_metrics(self, split: str, samples: Sequence[Sample], *, device: torch.device,
                      batch_size: int, evaluator: Evaluator) -> dict[str, Any]:
        """Where the prototypes came from and which pretraining epoch was kept."""
        return {"prototypes": vars(self.prototype_info), "pretrain_best": self.pretrain_best}

    # ------------------------------------------------------------------------------ reports

    def param_report(self) -> dict[str, Any]:
        """Trainable / total per phase next to Table 3 (``docs/methods/hfa.md``; works on
        ``meta``)."""
        cfg = self.config
        pre_stage = Stage(name=PRETRAIN_STAGE, epochs=1, trainable=self.pretrain_prefixes())
        ft_stage = Stage(name=FINETUNE_ALL_STAGE, epochs=1,
                         trainable=(*VISUAL_PREFIXES, "mapper.", "mbart."))
        phases = {
            "pretraining": (pre_stage, (*VISUAL_PREFIXES, *ENCODER_PREFIXES, "text_encoder.",
                                        *PSP_PREFIXES, *ALIGN_PREFIXES), 2),
            "fine_tuning": (ft_stage, (*VISUAL_PREFIXES, "mapper.", "mbart."), 1),
        }
        groups = {"vit": ("vit.",), "frame_proj_bn": ("frame_proj.", "frame_bn."),
                  "temporal": ("temporal.",), "mapper": ("mapper.",),
                  "mbart_encoder": ENCODER_PREFIXES, "mbart_decoder": DECODER_PREFIXES,
                  "text_encoder": ("text_encoder.",), "psp_head": PSP_PREFIXES,
                  "logit_scale": ALIGN_PREFIXES}
        total, trainable, components = self.count_parameters_by_group(groups)
        components["lora"] = sum(p.numel() for n, p in self.named_parameters() if "lora_" in n)
        report: dict[str, Any] = {"total": total, "trainable": trainable,
                                  "components": components}
        vocab = self.mbart.get_input_embeddings().weight.shape[0]
        for phase, (stage, used, tables) in phases.items():
            t_total = t_train = 0
            for name, p in self.named_parameters():
                if not name.startswith(used):
                    continue
                t_total += p.numel()
                if stage.trains(name) and not self._frozen_base(name):
                    t_train += p.numel()
            at_paper_vocab = t_total + (PAPER_VOCAB - vocab) * cfg.d_model * tables
            paper_train, paper_total = PAPER_TABLE3[phase]
            report[phase] = {"trainable": t_train, "total": t_total,
                             "total_at_vocab_2172": at_paper_vocab,
                             "paper_trainable": paper_train, "paper_total": paper_total,
                             "diff_trainable": t_train - paper_train,
                             "diff_total_at_vocab_2172": at_paper_vocab - paper_total}
        return report

    def paper_figures(self) -> dict[str, dict[str, Any]]:
        """Table 3's trainable / total parameters per phase (totals at its vocabulary)."""
        report = self.param_report()
        out = {}
        for phase in ("pretraining", "fine_tuning"):
            row = report[phase]
            paper_train, paper_total = PAPER_TABLE3[phase]
            out[f"{phase} trainable"] = {"ours": row["trainable"], "paper": paper_train,
                                         "source": "Table 3"}
            out[f"{phase} total (vocab {PAPER_VOCAB})"] = {
                "ours": row["total_at_vocab_2172"], "paper": paper_total, "source": "Table 3"}
        return out


__all__ = [
    "ALIGN_PREFIXES",
    "DECODER_PREFIXES",
    "ENCODER_PREFIXES",
    "FINETUNE_ALL_STAGE",
    "FINETUNE_DECODER_STAGE",
    "FRAME_PRETRAIN_PREFIXES",
    "FRAME_PRETRAIN_STAGE",
    "HFA",
    "PRETRAIN_STAGE",
    "PSP_PREFIXES",
    "TEXT_PRETRAIN_STAGE",
    "VISUAL_PREFIXES",
]
