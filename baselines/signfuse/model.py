"""SignFuse (Singh & Mundada, 2026): dual-stream cross-modal fusion for gloss-free SLT with an LLM.

``SignFuse`` is the ``SLTMethod`` (Sec. 3, Fig. 1): frames → ``VisualStream`` (Sec. 3.2) and
keypoints → ``STGCN`` (Sec. 3.3), both (B, T', d) with one mask → ``CMFA`` (Sec. 3.4) → ``HTA``
(Sec. 3.5) → ``SLA`` (Sec. 3.6) = E_sign → [E_sign; e_prompt; y] into a LLaMA-architecture
causal LM with LoRA (``baselines.common.llm``; the backbone frozen). ``stages()`` is the
progressive training of Sec. 3.7 (``contrastive``, ``alignment``, ``finetune``; eqs. 21–23),
started from the pretrained parts ``standins`` declares (ResNet-50 ``resnet_init``, LLaMA-2
``llm_init``; issue 20) — our two earlier aids ``stream_pretrain`` and ``llm_pretrain`` are
ablations, off by default;
``training_step`` returns the stage's losses, ``generate`` beam-searches the LM behind the
prefix. While every stream encoder is frozen (``alignment``) their outputs are cached by sample
name (``baselines.common.sample_cache``; identical numbers). ``extra_metrics`` reports the LM
loss with real / shuffled sign tokens / the prompt only (run JSON ``extra.lm_loss``).

Paper ↔ code map, every choice where the paper is vague, the profiles, the parameter budget and
the measurements behind the tiny defaults: ``docs/methods/signfuse.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from baselines.common.sample_cache import SampleCache, one_sample
from baselines.signfuse.cmfa import CMFA
from baselines.signfuse.config import (
    PAPER_RESOLUTION,
    PAPER_TRAINABLE_M,
    TINY_DATA,
    SignFuseConfig,
    base_config,
)
from baselines.signfuse.hta import HTA
from baselines.signfuse.losses import info_nce
from baselines.signfuse.masks import masked_mean
from baselines.signfuse.sla import SLA
from baselines.signfuse.stgcn import STGCN
from baselines.signfuse.visual import IMAGENET_MEAN, IMAGENET_STD, VisualStream
from baselines.signfuse.word_presence import (
    WordPresenceHead,
    word_presence_loss,
    word_presence_targets,
)
from harness.data.batching import Batch, collate
from harness.data.sample import Sample
from harness.method import Evaluator, SLTMethod, Stage, StandIn, TrainState, register

#: parameter-name prefixes of each component
COMPONENTS: dict[str, tuple[str, ...]] = {
    "visual": ("visual.",), "skeletal": ("skeletal.",), "cmfa": ("cmfa.",), "hta": ("hta.",),
    "sla": ("sla.",),
}


def _frozen(module: nn.Module) -> bool:
    return not any(p.requires_grad for p in module.parameters())


@register("signfuse")
class SignFuse(SLTMethod):
    """SignFuse (module docstring); ``get_method("signfuse", profile, **overrides)``."""

    key = "signfuse"
    task = "translation"
    inputs = ("frames", "keypoints")
    needs_text = True
    needs_gloss = False
    #: ``signbench check`` at paper size: the pretrained parts cut to one layer each
    check_overrides: ClassVar[dict[str, Any]] = {"resnet_layers": (1, 1, 1, 1),
                                                     "llm_overrides": {"num_hidden_layers": 1}}
    data_defaults: ClassVar[dict[str, dict[str, Any]]] = {"tiny": TINY_DATA}
    config_class = SignFuseConfig

    def __init__(self, profile: str = "tiny", tokenizer: Any = None,
                 config: SignFuseConfig | None = None, **overrides: Any) -> None:
        super().__init__(profile)
        from baselines.common import llm as llm_lib

        cfg = self.build_config(config or base_config(profile), overrides)
        self.config = cfg
        self.tokenizer = tokenizer
        self.use_visual = cfg.streams in ("both", "visual")
        self.use_skeletal = cfg.streams in ("both", "skeletal")
        self.dual = cfg.streams == "both"
        self.inputs = tuple(s for s, on in (("frames", self.use_visual),
                                            ("keypoints", self.use_skeletal)) if on)
        d = cfg.d_model
        if self.use_visual:
            self.visual = VisualStream(d, cfg.resnet_base_width, cfg.resnet_layers)
            if cfg.resnet_init:
                from baselines.common.weights import load_weights

                load_weights(self.visual.backbone, cfg.resnet_init)
        if self.use_skeletal:
            self.skeletal = STGCN(cfg.stgcn_channels, cfg.stgcn_kernel, cfg.stgcn_strides,
                                  cfg.stgcn_dropout, hand_gain=cfg.skeleton_hand_gain)
            if cfg.stgcn_init:
                from baselines.common.weights import load_weights

                load_weights(self.skeletal, cfg.stgcn_init)
        for bn in self._encoder_norms():
            bn.momentum = cfg.bn_momentum
        if self.dual:
            self.cmfa = CMFA(d, cfg.heads, cfg.cmfa_layers, cfg.ffn_mult * d, cfg.fusion,
                             cfg.dropout)
        if cfg.use_hta:
            self.hta = HTA(d, cfg.hta_len, cfg.heads, cfg.hta_scales, cfg.dropout)
        vocab = len(tokenizer) if tokenizer is not None else cfg.vocab_size
        if self.pretrained_streams():  # the stream_pretrain aid's word-presence heads
            self.word_heads = nn.ModuleDict({k: WordPresenceHead(d, vocab)
                                             for k in self.pretrained_streams()})
        on_meta = torch.empty(0).device.type == "meta"  # inside `with torch.device("meta")`
        self.llm = llm_lib.build_llama(vocab, profile=cfg.llm_profile, init=cfg.llm_init,
                                       device="meta" if on_meta else None, **cfg.llm_overrides)
        self.llm = llm_lib.add_lora(self.llm, r=cfg.lora_r, alpha=cfg.lora_alpha,
                                    dropout=cfg.lora_dropout)
        self.lora_names = tuple(f"llm.{n}" for n in llm_lib.lora_parameter_names(self.llm))
        d_llm = self.llm.config.hidden_size
        self.sla = SLA(d, d_llm, cfg.sign_tokens, cfg.sla_hidden,
                       out_scale=1.0 if on_meta else self.embedding_rms())
        prompt = tokenizer.encode(cfg.prompt, add_special=False) if tokenizer is not None else [3]
        self.register_buffer("prompt_ids", torch.tensor(prompt, dtype=torch.long),
                             persistent=False)
        self._llm_lib = llm_lib
        #: frozen-encoder outputs by sample name, used while ``_cache_streams`` (``alignment``
        #: only; ``apply_stage``)
        self._stream_cache = SampleCache()
        self._cache_streams = False
        self._encoders_train = True  # the current stage trains a stream encoder (apply_stage)
        self._bn_epoch: tuple[int, str, int] | None = None  # (stage index, name, epoch) seen last
        self._in_training_step = False

    @classmethod
    def standins(cls, profile: str, overrides: Mapping[str, Any]) -> list[StandIn]:
        """The paper's pretrained parts (Sec. 3.2, 3.6, Table 1): the visual stream's ResNet-50
        (``resnet_init``, kind ``resnet``: ``VisualStream.backbone`` at this config's width and
        depth, on the uint8 frames standardised with the ImageNet mean / std at the profile's
        resolution, read through ``forward`` = the pooled features) and the LLaMA-2 backbone
        (``llm_init``, kind ``llama``: ``llm_profile`` + ``llm_overrides``, the runner's
        tokenizer vocabulary; with ``llm_standin_prefix`` it also learns to read N_s soft-prefix
        tokens before the prompt). A stream not in use (``streams``) declares nothing; the ST-GCN
        starts random, as in the paper, unless ``stgcn_standin`` (an ablation: kind
        ``keypoint``, ``stgcn_init``) (docs/methods/signfuse.md, "Pretrained stand-ins")."""
        cfg = cls.build_config(base_config(profile), overrides)
        resolution = int(cls.data_defaults.get(profile, {}).get("resolution",
                                                                 PAPER_RESOLUTION))
        out = []
        if cfg.streams in ("both", "visual"):
            out.append(StandIn("resnet_init", "resnet", {
                "module": "baselines.common.resnet:ResNet",
                "kwargs": {"layers": list(cfg.resnet_layers), "block": "bottleneck",
                           "base_width": cfg.resnet_base_width},
                "stream": "frames", "resolution": resolution,
                "normalize": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
                "call": "forward"}, paper="ResNet-50, ImageNet-1k (torchvision / timm)"))
        if cfg.stgcn_standin and cfg.streams in ("both", "skeletal"):
            out.append(StandIn("stgcn_init", "keypoint", {
                "module": "baselines.signfuse.stgcn:StridedSTGCN",
                "kwargs": {"frame_stride": cfg.frame_stride,
                           "channels": list(cfg.stgcn_channels), "kernel": cfg.stgcn_kernel,
                           "strides": list(cfg.stgcn_strides), "dropout": cfg.stgcn_dropout,
                           "hand_gain": cfg.skeleton_hand_gain},
                "stream": "keypoints", "call": "forward"},
                paper="none (the paper's ST-GCN starts random)"))
        llama = {"vocab_size": cls.tokenizer_vocab_size, "tokenizer_kind": cls.tokenizer_kind,
                 "profile": cfg.llm_profile, "overrides": dict(cfg.llm_overrides)}
        if cfg.llm_standin_prefix:
            llama["prefix"] = {"tokens": cfg.sign_tokens, "target": cfg.align_target,
                               "noise": cfg.llm_pretrain_noise, "prompt": cfg.prompt}
        out.append(StandIn("llm_init", "llama", llama,
                           paper="LLaMA-2 7B (meta-llama/Llama-2-7b-hf)"))
        return out

    def pretrained_streams(self) -> tuple[str, ...]:
        """Stream keys (``"s"``, ``"v"``) the ``stream_pretrain`` aid trains (in use and
        selected by ``stream_pretrain_streams``); empty when the aid is off."""
        cfg = self.config
        if cfg.stream_pretrain_epochs <= 0:
            return ()
        pick = cfg.stream_pretrain_streams
        return tuple(k for k, name, on in (("s", "skeletal", self.use_skeletal),
                                           ("v", "visual", self.use_visual))
                     if on and pick in (name, "both"))

    def _encoder_norms(self) -> list[nn.modules.batchnorm._BatchNorm]:
        """The BatchNorm layers of the stream encoders in use."""
        mods = [getattr(self, n) for n, on in (("visual", self.use_visual),
                                               ("skeletal", self.use_skeletal)) if on]
        return [m for mod in mods for m in mod.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def embedding_rms(self) -> float:
        """RMS of the LLM's input-embedding matrix: the scale the sign tokens must live at."""
        w = self.llm.get_input_embeddings().weight
        return float(w.detach().float().pow(2).mean().sqrt())

    # ------------------------------------------------------------------------------ schedule

    def _encoder_prefixes(self) -> tuple[str, ...]:
        return tuple(name for name, on in (("visual.", self.use_visual),
                                           ("skeletal.", self.use_skeletal)) if on)

    def stages(self) -> list[Stage]:
        cfg = self.config
        enc = self._encoder_prefixes()
        fusion = ("cmfa.",) if self.dual else ()
        head = (("hta.",) if cfg.use_hta else ()) + ("sla.",)
        common = {"weight_decay": cfg.weight_decay, "grad_clip": cfg.grad_clip,
                  "scheduler": "cosine"}
        out = []
        aided = self.pretrained_streams()
        if aided:
            prefixes = tuple({"s": "skeletal.", "v": "visual."}[k] for k in aided)
            out.append(Stage("stream_pretrain", cfg.stream_pretrain_epochs,
                             lr=cfg.stream_pretrain_lr, trainable=(*prefixes, "word_heads."),
                             losses=("loss", "loss_words"), warmup_steps=cfg.warmup_steps[0],
                             monitor="loss", **common))
        if cfg.llm_pretrain_epochs > 0:
            out.append(Stage("llm_pretrain", cfg.llm_pretrain_epochs, lr=cfg.llm_pretrain_lr,
                             trainable=("llm.",), frozen=self.lora_names,
                             losses=("loss", "loss_lm"), warmup_steps=cfg.warmup_steps[0],
                             monitor="loss", **common))
        finetune_epochs = cfg.epochs[2]
        if cfg.training == "progressive":
            if self.dual and cfg.epochs[0] > 0:
                out.append(Stage("contrastive", cfg.epochs[0], lr=cfg.lrs[0],
                                 trainable=enc + fusion, losses=("loss", "loss_contra"),
                                 warmup_steps=cfg.warmup_steps[0], monitor="loss", **common))
            if cfg.epochs[1] > 0:
                out.append(Stage("alignment", cfg.epochs[1], lr=cfg.lrs[1],
                                 trainable=fusion + head,
                                 losses=("loss", "loss_lm", "loss_align"),
                                 warmup_steps=cfg.warmup_steps[1], monitor="loss", **common))
        else:
            finetune_epochs = sum(cfg.epochs[1:]) + (cfg.epochs[0] if self.dual else 0)
        out.append(Stage("finetune", max(1, finetune_epochs), lr=cfg.lrs[2],
                         trainable=enc + fusion + head + self.lora_names,
                         losses=("loss", "loss_lm", "loss_align"),
                         warmup_steps=cfg.warmup_steps[2], monitor="bleu4", **common))
        return out

    def apply_stage(self, stage: Stage) -> list[str]:
        """As ``SLTMethod.apply_stage``; also (re)sets the frozen-encoder feature cache: on in a
        stage where every stream encoder in use is frozen (``alignment``: their outputs are
        fixed per sample, eval mode, no autograd), off and emptied otherwise."""
        names = super().apply_stage(stage)
        enc = self._encoder_prefixes()
        frozen = bool(enc) and not any(n.startswith(enc) for n in names)
        self._cache_streams = frozen and stage.name == "alignment"
        self._stream_cache.clear()
        self._encoders_train = not frozen
        self._bn_epoch = None
        if self.config.bn_momentum is None and not frozen:  # cumulative BN stats of this stage
            self._reset_encoder_bn()
        return names

    def _reset_encoder_bn(self) -> None:
        for bn in self._encoder_norms():
            bn.reset_running_stats()

    def _track_bn_epoch(self, state: TrainState | None) -> None:
        """Tiny profile (``bn_momentum`` None): a new *epoch* of a stage that trains the stream
        encoders resets their BN statistics too, so after the stage they are the average of its
        last epoch — the weights of the first epochs of a long stage (``stream_pretrain``) no
        longer enter them (docs/methods/signfuse.md, probe round 6 (c))."""
        if state is None or self.config.bn_momentum is not None or not self.training:
            return
        key = (state.stage_index, state.stage.name, state.epoch)
        last, self._bn_epoch = self._bn_epoch, key
        if last is not None and last[:2] == key[:2] and last[2] != key[2] and self._encoders_train:
            self._reset_encoder_bn()

    # ------------------------------------------------------------------------------ forward

    def _call(self, module: nn.Module, *args: Any) -> Any:
        """Run ``module``; a module with no trainable parameter runs in eval mode without
        autograd (a frozen encoder: its BN statistics do not move either)."""
        if not (self.training and _frozen(module)):
            return module(*args)
        with torch.no_grad():
            module.eval()
            try:
                return module(*args)
            finally:
                module.train()

    def streams(self, batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """F̂_v / F̂_s (B, T', d) with their mask, for the streams in use; inside
        ``training_step`` of a frozen-encoder stage they come from / go to the per-sample cache
        (``apply_stage``; never in ``generate``, whose latency is measured)."""
        names = list(batch.names)
        if not (self._cache_streams and self._in_training_step and names):
            return self._compute_streams(batch)

        def compute_one(i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            out = self._compute_streams(one_sample(batch, i))
            # every stream in use shares one mask (cut to the shorter)
            return {k: f for k, (f, _) in out.items()}, next(iter(out.values()))[1]

        feats, mask = self._stream_cache.fetch(names, compute_one, device=batch.lengths.device)
        return {k: (f, mask) for k, f in feats.items()}

    def _compute_streams(self, batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        out = {}
        k = self.config.frame_stride
        with self.nvtx("frontend"):
            if self.use_visual:
                out["v"] = self._call(self.visual, batch.inputs["frames"][:, ::k],
                                      batch.masks["frames"][:, ::k])
            if self.use_skeletal:
                out["s"] = self._call(self.skeletal, batch.inputs["keypoints"][:, ::k],
                                      batch.masks["keypoints"][:, ::k])
        if self.dual:  # streams of unequal length (cached features): cut to the shorter
            (fv, mv), (fs, ms) = out["v"], out["s"]
            n = min(fv.shape[1], fs.shape[1])
            mask = mv[:, :n] & ms[:, :n]
            out = {"v": (fv[:, :n], mask), "s": (fs[:, :n], mask)}
        return out

    def sign_embeddings(self, feats: dict[str, tuple[torch.Tensor, torch.Tensor]]
                        ) -> torch.Tensor:
        """E_sign (B, N_s, d_LLM): CMFA (dual) → HTA → SLA."""
        if self.dual:
            (fv, mask), (fs, _) = feats["v"], feats["s"]
            with self.nvtx("fusion"):
                f = self._call(self.cmfa, fv, fs, mask)
        else:
            (f, mask), = feats.values()
        with self.nvtx("encoder"):
            if self.config.use_hta:
                return self.sla(self.hta(f, mask))
            return self.sla(f, mask)

    def prefix(self, e_sign: torch.Tensor | None, batch_size: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """[E_sign; e_prompt] (B, N_s + P, d_LLM) and its all-True mask."""
        ids = self.prompt_ids[None].expand(batch_size, -1)
        prompt = self._llm_lib.embed_tokens(self.llm, ids)
        parts = [prompt] if e_sign is None else [e_sign.to(prompt.dtype), prompt]
        x = torch.cat(parts, dim=1)
        return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)

    def _text(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.text_ids is None or batch.text_mask is None:
            raise ValueError("signfuse needs tokenised text in the batch (collate with "
                             "text_tokenizer=)")
        return batch.text_ids, batch.text_mask

    def lm_loss(self, e_sign: torch.Tensor | None, batch: Batch) -> torch.Tensor:
        ids, mask = self._text(batch)
        x, xmask = self.prefix(e_sign, ids.shape[0])
        with self.nvtx("decoder"):
            return self._llm_lib.prefix_lm_loss(self.llm, x, xmask, ids, mask)

    def align_target(self, batch: Batch) -> torch.Tensor:
        """sg(E_text) matched to the N_s sign tokens (B, N_s, d_LLM) (``align_target``)."""
        ids, mask = self._text(batch)
        return self._llm_lib.text_prefix(self.llm, ids, mask, self.config.sign_tokens,
                                         self.config.align_target)

    def align_loss(self, e_sign: torch.Tensor, batch: Batch) -> torch.Tensor:
        """‖E_sign − sg(E_text)‖²: the squared L2 norm of each token's difference (sum over
        d_LLM features), averaged over the N_s tokens and the batch (``align_target``)."""
        return (e_sign.float() - self.align_target(batch)).pow(2).sum(-1).mean()

    def pretrain_prefix(self, batch: Batch) -> torch.Tensor | None:
        """The LLM pre-training stage's stand-in sign tokens (docs: "LLM pre-training"): the
        alignment target plus Gaussian noise (std ``llm_pretrain_noise`` × the target's std),
        or None."""
        cfg = self.config
        if cfg.llm_pretrain_prefix == "none":
            return None
        target = self.align_target(batch)
        if cfg.llm_pretrain_noise > 0:
            target = target + torch.randn_like(target) * (cfg.llm_pretrain_noise * target.std())
        return target

    def word_targets(self, batch: Batch) -> torch.Tensor:
        """Multi-hot (B, V) of the tokens of each sample's sentence (bos / eos / pad / unk
        excluded): the ``stream_pretrain`` target."""
        ids, mask = self._text(batch)
        tok = self.tokenizer
        special = [] if tok is None else [i for i in (tok.bos_id, tok.eos_id, tok.pad_id,
                                                      tok.unk_id) if i is not None]
        vocab = self.llm.get_input_embeddings().weight.shape[0]
        return word_presence_targets(ids, mask, vocab, special)

    def word_presence_loss(self, batch: Batch) -> torch.Tensor:
        """The ``stream_pretrain`` aid's loss: for every aided stream, BCE between its
        word-presence logits (``WordPresenceHead`` on the stream output) and the sentence's
        multi-hot; summed over the streams. Only the aided streams run."""
        k = self.config.frame_stride
        target = self.word_targets(batch)
        total = torch.zeros((), device=target.device)
        with self.nvtx("frontend"):
            for key in self.pretrained_streams():
                if key == "s":
                    f, mask = self.skeletal(batch.inputs["keypoints"][:, ::k],
                                            batch.masks["keypoints"][:, ::k])
                else:
                    f, mask = self.visual(batch.inputs["frames"][:, ::k],
                                          batch.masks["frames"][:, ::k])
                total = total + word_presence_loss(self.word_heads[key](f, mask), target)
        return total

    def contrastive_loss(self, feats: dict[str, tuple[torch.Tensor, torch.Tensor]]
                         ) -> torch.Tensor:
        (fv, mask), (fs, _) = feats["v"], feats["s"]
        return info_nce(masked_mean(fv, mask), masked_mean(fs, mask), self.config.temperature)

    def training_step(self, batch: Batch, state: TrainState | None = None
                      ) -> dict[str, torch.Tensor]:
        """Losses of the current stage (``finetune`` without a state)."""
        self._in_training_step = True
        self._track_bn_epoch(state)
        try:
            return self._losses(batch, state)
        finally:
            self._in_training_step = False

    def _losses(self, batch: Batch, state: TrainState | None) -> dict[str, torch.Tensor]:
        cfg = self.config
        name = state.stage.name if state is not None else "finetune"
        if name == "stream_pretrain":
            loss = self.word_presence_loss(batch)
            return {"loss": loss, "loss_words": loss.detach()}
        if name == "llm_pretrain":
            loss = self.lm_loss(self.pretrain_prefix(batch), batch)
            return {"loss": loss, "loss_lm": loss.detach()}
        feats = self.streams(batch)
        if name == "contrastive":
            loss = self.contrastive_loss(feats)
            return {"loss": loss, "loss_contra": loss.detach()}
        e_sign = self.sign_embeddings(feats)
        l_lm = self.lm_loss(e_sign, batch)
        l_align = self.align_loss(e_sign, batch)
        out = {"loss_lm": l_lm.detach(), "loss_align": l_align.detach()}
        if name == "alignment":
            return {"loss": l_align + l_lm, **out}
        total = l_lm + cfg.lambda_align * l_align
        if self.dual:
            l_contra = self.contrastive_loss(feats)
            total = total + cfg.lambda_contra * l_contra
            out["loss_contra"] = l_contra.detach()
        return {"loss": total, **out}

    # ------------------------------------------------------------------------------ inference

    @torch.no_grad()
    def generate(self, batch: Batch, beam_size: int = 5, length_penalty: float = 1.0,
                 max_len: int = 60) -> list[str]:
        if self.tokenizer is None:
            raise ValueError("signfuse.generate needs the text tokenizer (tokenizer= override)")
        e_sign = self.sign_embeddings(self.streams(batch))
        x, xmask = self.prefix(e_sign, e_sign.shape[0])
        tok = self.tokenizer
        with self.nvtx("beam_search"):
            ids = self._llm_lib.generate_from_prefix(
                self.llm, x, xmask, bos_id=tok.bos_id, eos_id=tok.eos_id, pad_id=tok.pad_id,
                num_beams=beam_size, length_penalty=length_penalty, max_new_tokens=max_len)
        return [tok.decode(row.tolist()) for row in ids]

    # ------------------------------------------------------------------------------ reports

    @torch.no_grad()
    def prefix_use(self, batch: Batch) -> dict[str, float]:
        """LM loss of ``batch`` with its own sign tokens, with the sign tokens of another sample
        of the batch (rolled by one) and with the prompt only: a prefix the LM ignores gives
        equal losses (docs/methods/signfuse.md, "Does the LM read the sign tokens?")."""
        e_sign = self.sign_embeddings(self.streams(batch))
        return {"real": float(self.lm_loss(e_sign, batch)),
                "shuffled": float(self.lm_loss(e_sign.roll(1, dims=0), batch)),
                "prompt_only": float(self.lm_loss(None, batch))}

    def extra_metrics(self, split: str, samples: Sequence[Sample], *, device: torch.device,
                      batch_size: int, evaluator: Evaluator) -> dict[str, Any]:
        """``prefix_use`` (LM loss with real / shuffled sign tokens / prompt only), averaged
        over the split's batches (``evaluator.index_batches``; batches of one sample are
        skipped: nothing to shuffle) weighted by batch size."""
        if self.tokenizer is None:
            return {}
        was = self.training
        self.eval()
        sums: dict[str, float] = {}
        n = 0
        try:
            for idx in evaluator.index_batches(samples, batch_size):
                if len(idx) < 2:
                    continue
                batch = collate([samples[i] for i in idx], streams=self.inputs,
                                text_tokenizer=self.tokenizer).to(device)
                for key, value in self.prefix_use(batch).items():
                    sums[key] = sums.get(key, 0.0) + value * len(idx)
                n += len(idx)
        finally:
            self.train(was)
        return {"lm_loss": {k: v / n for k, v in sums.items()}} if n else {}

    def prepare_benchmark(self, profile: str, device: torch.device) -> None:
        """Benchmarks at paper size run the 7B-sized frozen LLM in bf16 on the GPU (~13 GB
        instead of ~27 GB in fp32); the SignFuse modules stay fp32."""
        if profile == "paper" and device.type == "cuda":
            self.llm.to(torch.bfloat16)

    def param_report(self) -> dict[str, Any]:
        """Parameters per component; ``trainable_excluding_llm`` = every SignFuse module + the
        LoRA adapters (stage ``finetune``'s trainable set); works on ``meta``."""
        comps = dict.fromkeys((*COMPONENTS, "lora", "llm_frozen", "aid"), 0)
        lora = set(self.lora_names)
        total = 0
        for name, p in self.named_parameters():
            total += p.numel()
            if name in lora:
                comps["lora"] += p.numel()
            elif name.startswith("llm."):
                comps["llm_frozen"] += p.numel()
            elif name.startswith("word_heads."):  # the tiny stream_pretrain aid, not the paper
                comps["aid"] += p.numel()
            else:
                comp = next(c for c, prefixes in COMPONENTS.items() if name.startswith(prefixes))
                comps[comp] += p.numel()
        modules = sum(comps[c] for c in COMPONENTS)
        return {"total": total, "components": comps,
                "trainable_excluding_llm": modules + comps["lora"],
                "trainable_excluding_llm_and_lora": modules,
                "paper_trainable_excluding_llm": int(PAPER_TRAINABLE_M * 1e6)}

    def paper_figures(self) -> dict[str, dict[str, Any]]:
        """Sec. 4.1's trainable parameters without the frozen LLM, and the LLM's "7B"."""
        report = self.param_report()
        return {"trainable excluding the LLM": {
                    "ours": report["trainable_excluding_llm"],
                    "paper": int(PAPER_TRAINABLE_M * 1e6), "source": "Sec. 4.1 / Table 1"},
                "LLM backbone": self._llm_lib.paper_llm_figure(self.llm)}


__all__ = ["COMPONENTS", "SignFuse"]
