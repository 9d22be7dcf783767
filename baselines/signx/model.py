"""SignX (Fang et al.): the method — continuous sign recognition (and translation) in a pose
latent space, trained in stages (Sec. 3-4, Algorithm 2, Table 8).

:class:`SignX` builds Pose2Gloss and Vid2Pose (:mod:`baselines.signx.latent`, Sec. 3.2-3.3), the
optional ResNet-34 teacher and the latent recogniser (:mod:`baselines.signx.recognizer`, Sec. 4),
and declares the stages ``teacher`` (with ``use_distillation``) → ``pose2gloss`` → ``vid2pose``
→ ``recognizer``; each stage's losses are computed here. ``generate`` decodes glosses with the
entropy-penalised beam (:mod:`baselines.signx.decode`, Algorithm 3), ``translate`` text with the
same search over the translation decoder; ``on_epoch_end`` / ``on_fit_end`` average the best
recogniser epochs (:mod:`baselines.signx.averaging`). What the model reads from a batch is
:class:`baselines.signx.streams.SignXInputs`, its base class.

``task = "recognition"``: the run's main score is gloss WER; translation BLEU / ROUGE, the
CTC-head WER and the pruning / averaging state go to ``extra`` (``extra_metrics``). The paper ↔
code map, the pipelines of Table 6, every choice where the paper is vague, the tiny profile and
the measurements behind it are in ``docs/methods/signx.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.resnet import resnet34
from baselines.common.sample_cache import SampleCache
from baselines.common.weights import load_weights
from baselines.signx.averaging import TopKAverager
from baselines.signx.config import (
    P2G_STAGE,
    REC_STAGE,
    TEACHER_STAGE,
    TINY_DATA,
    V2P_STAGE,
    SignXConfig,
    base_config,
)
from baselines.signx.decode import entropy_beam_search
from baselines.signx.latent import Pose2Gloss, PoseEncoder, Vid2Pose, vid2pose_loss
from baselines.signx.recognizer import (
    LatentRecognizer,
    ResNetTeacher,
    ctc_greedy,
    ctc_loss_checked,
    distillation_kl,
    gloss_prior_weights,
    smoothness_loss,
)
from baselines.signx.streams import SignXInputs, eval_mode
from harness.data.batching import Batch
from harness.data.sample import Sample
from harness.method import Evaluator, Stage, StandIn, TrainState, register
from harness.metrics import recognition_scores, translation_scores


@register("signx")
class SignX(SignXInputs):
    """SignX (see the module docstring and docs/methods/signx.md)."""

    key: ClassVar[str] = "signx"
    task: ClassVar[str] = "recognition"
    inputs: tuple[str, ...] = ("frames", "poses")  # ("frames",) for pixel / transformer
    needs_text: ClassVar[bool] = True
    needs_gloss: ClassVar[bool] = True
    #: ``signbench check`` at paper size: the pretrained parts cut to one layer each
    check_overrides: ClassVar[dict[str, Any]] = {"v2p_depth": 1, "vit_layers": 1}
    data_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": dict(TINY_DATA),
        "paper": {"resolution": 224, "batch_size": 32},
    }
    config_class: ClassVar[type | None] = SignXConfig
    #: read by the runner's data check (harness.data.needs) when a stream is missing
    stream_hints: ClassVar[dict[str, str]] = {
        "poses": "--set 'formats=[[\"mediapipe\", 258]]' (the format keypoints give) or "
                 "--set pipeline=pixel"}

    def __init__(self, profile: str = "tiny", *, tokenizer: Any = None, gloss_vocab: Any = None,
                 **overrides: Any) -> None:
        super().__init__(profile)
        self.config = cfg = self.build_config(base_config(profile), overrides)
        if gloss_vocab is None:
            raise ValueError("signx needs a gloss vocabulary (gloss_vocab= override); the runner "
                             "builds one from the training glosses")
        self.tokenizer, self.gloss_vocab = tokenizer, gloss_vocab
        self.inputs = ("frames", "poses") if cfg.pipeline == "latent" else ("frames",)
        #: the pose formats the batch must carry (checked against the data before training)
        self.pose_formats = tuple(n for n, _ in cfg.formats) if cfg.pipeline == "latent" else ()
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
        self._load_pretrained()
        self.averager = TopKAverager(cfg.average_top_k, mode="min")
        self.averaging: dict[str, Any] | None = None
        self._cache = SampleCache()  # frozen parts' outputs within one recogniser stage
        self._cache_key = None
        self._pruned_at: set[int] = set()
        self.prune_log: list[dict[str, float]] = []

    # ------------------------------------------------------------------------------ pretrained

    @classmethod
    def standins(cls, profile: str, overrides: Mapping[str, Any]) -> list[StandIn]:
        """The pretrained parts SignX starts from (docs: "Pretrained stand-ins (issue 20)").

        * latent pipeline: ``vid2pose_init``, kind ``pose`` — the whole :class:`Vid2Pose`
          (frames → the five formats), standing in for the pose estimators the paper runs on
          the video and distils into Vid2Pose (eq. 14);
        * with the teacher (``use_distillation``, hybrid pipelines): ``teacher_init``, kind
          ``resnet`` — the teacher's ResNet-34 backbone (ImageNet-pretrained in practice);
        * pixel / transformer pipelines: ``visual_init``, kind ``resnet`` — the ResNet-34
          frame encoder.
        Each config is the architecture :meth:`__init__` builds from the same overrides, so the
        stand-in loads strictly."""
        cfg = cls.build_config(base_config(profile), {k: v for k, v in overrides.items()
                                                      if k not in ("tokenizer", "gloss_vocab")})
        resolution = int(cls.data_defaults.get(profile, {}).get("resolution", 224))
        out = []
        if cfg.pipeline == "latent":
            out.append(StandIn("vid2pose_init", "pose", {
                "module": "baselines.signx.latent:Vid2Pose",
                "kwargs": {"formats": [list(f) for f in cfg.formats],
                           "image_size": cfg.image_size, "patch_size": cfg.patch_size,
                           "dim": cfg.v2p_dim, "depth": cfg.v2p_depth, "heads": cfg.v2p_heads,
                           "temporal_layers": cfg.v2p_temporal_layers,
                           "dropout": cfg.p2g_dropout},
                "input": "clip", "targets": "poses", "resolution": resolution},
                paper="the pose estimators DWPose, MediaPipe Holistic, SMPLer-X, PrimeDepth "
                      "and Sapiens, distilled into Vid2Pose (ViT-S/16)"))
        if cfg.use_distillation and cfg.pipeline != "transformer":
            side = cfg.teacher_image_size or resolution
            out.append(StandIn("teacher_init", "resnet", {
                "module": "baselines.common.resnet:resnet34",
                "kwargs": {"base_width": cfg.teacher_width}, "resolution": side},
                paper="ResNet-34, ImageNet-1k (torchvision)"))
        if cfg.pipeline != "latent":
            out.append(StandIn("visual_init", "resnet", {
                "module": "baselines.common.resnet:resnet34",
                "kwargs": {"base_width": cfg.visual_width}, "resolution": resolution},
                paper="ResNet-34, ImageNet-1k (torchvision)"))
        return out

    def _load_pretrained(self) -> None:
        """Load the checkpoints named by ``vid2pose_init`` / ``teacher_init`` / ``visual_init``
        (strict: a stand-in or a real checkpoint of the same architecture)."""
        cfg = self.config
        for field, name in (("vid2pose_init", "vid2pose"), ("teacher_init", "teacher"),
                            ("visual_init", "visual")):
            path = getattr(cfg, field)
            if path is None:
                continue
            part = getattr(self, name, None)
            if part is None:
                raise ValueError(f"signx: {field} is set but the {cfg.pipeline!r} pipeline "
                                 f"(use_distillation={cfg.use_distillation}) has no {name}")
            load_weights(part.backbone if name == "teacher" else part, path, strict=True)

    # ------------------------------------------------------------------------------ schedule

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
            v2p_epochs = cfg.v2p_finetune_epochs if cfg.vid2pose_init else cfg.v2p_epochs
            if v2p_epochs > 0:  # a pretrained Vid2Pose needs no stage 2 of its own
                out.append(Stage(V2P_STAGE, v2p_epochs, lr=cfg.v2p_lr, trainable=("vid2pose.",),
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

    # ------------------------------------------------------------------------------ training

    def _gloss_targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
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

    def teacher_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        frames, mask = self._frames(batch)
        ids, lengths = self._gloss_targets(batch)
        with self.nvtx("teacher"):
            logits = self.teacher(frames, mask)
        loss = ctc_loss_checked(logits, mask.sum(1), ids, lengths, self.gloss_vocab.blank_id,
                                where="signx teacher CTC")
        return {"loss": loss, "loss_teacher": loss.detach()}

    def pose2gloss_step(self, batch: Batch, state: TrainState | None) -> dict[str, torch.Tensor]:
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

    def vid2pose_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        frames, mask = self._frames(batch)
        target, _ = self._poses(batch)
        with self.nvtx("vid2pose"):
            pred, _ = self.vid2pose(frames, mask)
        loss = vid2pose_loss(pred, target, mask)
        out = {"loss_v2p": loss.detach()}
        if self.config.latent_match_weight > 0:
            enc = self.pose2gloss.encoder
            with eval_mode(enc):
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

    def recognizer_step(self, batch: Batch, state: TrainState | None) -> dict[str, torch.Tensor]:
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

    def training_step(self, batch: Batch, state: TrainState | None = None
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

    def resume_state(self) -> dict[str, Any]:
        """The averager's snapshots, saved with each checkpoint (exact resume)."""
        return {"averager": self.averager.state()}

    def load_resume_state(self, state: Mapping[str, Any]) -> None:
        if "averager" in state:
            self.averager.load_state(state["averager"])

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

    def encode_batch(self, batch: Batch) -> dict[str, torch.Tensor]:
        z, mask = self.recognizer_latent(batch)
        with self.nvtx("encoder"):
            return self.recognizer.encode(z, mask)

    def _gloss_strings(self, seqs: Sequence[Sequence[int]]) -> list[str]:
        itos, n = self.gloss_vocab.itos, len(self.gloss_vocab.itos)
        special = {self.gloss_vocab.blank_id, self.gloss_vocab.pad_id}
        return [" ".join(itos[i] for i in s if i < n and i not in special) for s in seqs]

    @torch.no_grad()
    def generate(self, batch: Batch, beam_size: int = 8, length_penalty: float = 0.0,
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
        if self.config.ctc_length_slack is not None:  # CTC-constrained length (decode.py)
            greedy = ctc_greedy(enc["ctc"], enc["lengths"], self.gloss_vocab.blank_id)
            caps = torch.tensor([len(g) + self.config.ctc_length_slack for g in greedy],
                                device=enc["states"].device)
        with self.nvtx("beam_search"):
            seqs = self._decode(enc, rec.gloss_decoder, bos=rec.bos_id, eos=rec.eos_id,
                                beam_size=beam_size, max_len=max_len,
                                length_penalty=length_penalty, max_lengths=caps)
        return self._gloss_strings(seqs)

    @torch.no_grad()
    def translate(self, batch: Batch, beam_size: int | None = None, max_len: int = 60) -> list[str]:
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
    def extra_metrics(self, split: str, samples: Sequence[Sample], *, device: torch.device,
                      batch_size: int, evaluator: Evaluator) -> dict[str, Any]:
        """Translation BLEU/ROUGE (text decoder), CTC-head WER, pruning and averaging state."""
        was = self.training
        self.eval()
        texts: list[str | None] = [None] * len(samples)
        ctc: list[str | None] = [None] * len(samples)
        try:
            for idx in evaluator.index_batches(samples, batch_size):
                batch = evaluator.collate([samples[i] for i in idx])
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



__all__ = ["SignX"]
