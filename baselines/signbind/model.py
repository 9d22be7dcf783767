"""SignBind-LLM (arXiv 2509.00030): the method — experts, router, fusion, LLM, in four stages.

Video → frame router + three CTC experts (sign → pseudo-glosses, fingerspelling → letters,
lipreading → CMUdict phonemes) → adaptive gated fusion of the frozen experts' streams → fusion
encoder (6-layer transformer, CTC over pseudo-glosses) → greedy CTC pseudo-glosses as the prompt
of a LLaMA-architecture LM with LoRA → English (paper "Method Summary", Mechanisms 1–3).

:class:`SignBind` holds the stages (``manual_experts``, ``lip_expert``, ``fusion``, ``llm``; a
0-epoch stage is dropped), the per-stage ``training_step`` losses, the frozen-module caches and
``generate``; its visual front end is :class:`baselines.signbind.frontend.VisualFrontend`, its
``extra_metrics`` :class:`baselines.signbind.metrics.SignBindMetrics`. The configuration is
:class:`baselines.signbind.config.SignBindConfig`.

Paper ↔ code map, every choice where the paper is vague, the tiny profile and the measurements
behind it: ``docs/methods/signbind.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.sample_cache import SampleCache, one_sample
from baselines.signbind.config import PAPER_CONFIG, PAPER_DATA, TINY_DATA, SignBindConfig
from baselines.signbind.experts import (
    CTCExpert,
    ctc_greedy,
    ctc_loss,
    fingerspelled_words,
    letter_vocab,
    pad_targets,
)
from baselines.signbind.frontend import VisualFrontend, build_vit
from baselines.signbind.fusion import FusionEncoder
from baselines.signbind.metrics import SignBindMetrics
from baselines.signbind.phonemes import PhonemeVocab
from baselines.signbind.router import FrameRouter, anneal_temperature, gumbel_route, router_loss
from baselines.signbind.standins import standin_declarations
from harness.data.batching import Batch
from harness.method import SLTMethod, Stage, StandIn, TrainState, register
from harness.text import GlossVocab, PseudoGlossExtractor

MANUAL_STAGE, LIP_STAGE, FUSION_STAGE, LLM_STAGE = "manual_experts", "lip_expert", "fusion", "llm"
#: modules the fusion stage keeps frozen (their outputs are cached per sample in that stage)
FROZEN_IN_FUSION = ("frame_encoder.", "lip_encoder.", "sign_expert.", "fs_expert.",
                    "lip_expert.")


@register("signbind")
class SignBind(VisualFrontend, SignBindMetrics, SLTMethod):
    """SignBind-LLM (module docstring); ``get_method("signbind", profile, **overrides)``;
    a bad override raises :class:`harness.method.ConfigError`."""

    key = "signbind"
    task = "translation"
    inputs = ("frames", "lips", "frame_labels")
    needs_text = True
    needs_gloss = False
    needs_pseudo_gloss = True
    #: ``signbench check`` at paper size: the pretrained parts cut to one layer each
    check_overrides: ClassVar[dict[str, Any]] = {"frame_depth": 1, "lip_depth": 1,
                                                     "llm_overrides": {"num_hidden_layers": 1}}
    data_defaults: ClassVar[dict[str, dict[str, Any]]] = {"tiny": TINY_DATA, "paper": PAPER_DATA}
    #: timed side by side by benchmarks/test_methods.py: the paper's gate vs cross-attention
    benchmark_variants: ClassVar[tuple[dict[str, Any], ...]] = ({}, {"fusion": "cross"})
    config_class: ClassVar[type | None] = SignBindConfig
    #: read by the runner's data check (harness.data.needs) when a stream is missing
    stream_hints: ClassVar[dict[str, str]] = {"lips": "--set use_lipreading=false"}

    def __init__(self, profile: str = "tiny", tokenizer: Any = None,
                 pseudo_gloss: PseudoGlossExtractor | None = None,
                 config: SignBindConfig | None = None,
                 **overrides: Any) -> None:
        super().__init__(profile)
        base = config or (PAPER_CONFIG if profile == "paper" else SignBindConfig())
        cfg = self.build_config(base, overrides)
        self.config = cfg
        self.tokenizer = tokenizer
        self.pseudo_gloss = pseudo_gloss
        self.batch_size = cfg.batch_size
        self.beam_size = cfg.beam_size
        self.inputs = ("frames", "lips", "frame_labels") if cfg.use_lipreading \
            else ("frames", "frame_labels")
        if pseudo_gloss is not None:
            self.gloss_vocab = GlossVocab(pseudo_gloss.vocabulary)
        else:
            self.gloss_vocab = GlossVocab([f"PG{i}" for i in range(cfg.pseudo_gloss_vocab_size)])
        self.letters = letter_vocab()
        self.phonemes = PhonemeVocab()
        self._targets: dict[str, tuple[list[int], list[str]]] = {}
        self.tau = cfg.tau_end  # current routing temperature (annealed in the fusion stage)
        self._frozen_cache = SampleCache()  # fusion stage: frozen encoders' and experts' outputs
        self._cache_on = False
        self._in_training_step = False
        self._feature_cache: dict[str, SampleCache] = {}  # "frame" / "lip": frozen ViT features
        self._warm_started = False

        frame_feat = self._feature_dim(cfg.frame_img_size, cfg.frame_patch, cfg.frame_dim)
        self.frame_encoder = build_vit(cfg.frame_img_size, cfg.frame_patch, cfg.frame_dim,
                                       cfg.frame_depth, cfg.frame_heads, cfg.vit_init_values,
                                       cfg.frame_encoder_init)
        self.router = FrameRouter(frame_feat, cfg.router_dim, dropout=cfg.dropout)
        expert = dict(d_model=cfg.expert_dim, layers=cfg.expert_layers, heads=cfg.expert_heads,
                      dropout=cfg.dropout, input_dropout=cfg.expert_input_dropout)
        self.sign_expert = CTCExpert(frame_feat, vocab_size=len(self.gloss_vocab), **expert)
        if cfg.use_fingerspelling:
            self.fs_expert = CTCExpert(frame_feat, vocab_size=len(self.letters),
                                       **{**expert, "layers": cfg.fs_expert_layers})
            with torch.no_grad():  # blank-prior CTC head init (fs_blank_bias)
                self.fs_expert.head.bias[self.letters.blank_id] = cfg.fs_blank_bias
        if cfg.use_lipreading:
            self.lip_encoder = build_vit(cfg.lip_img_size, cfg.lip_patch, cfg.lip_dim,
                                         cfg.lip_depth, cfg.lip_heads, cfg.vit_init_values,
                                         cfg.lip_encoder_init)
            self.lip_expert = CTCExpert(
                self._feature_dim(cfg.lip_img_size, cfg.lip_patch, cfg.lip_dim),
                vocab_size=len(self.phonemes), **expert)
        d = cfg.fusion_dim
        self.fusion_proj = nn.ModuleDict({"sign": nn.Linear(cfg.expert_dim, d)})
        if cfg.use_fingerspelling:
            self.fusion_proj["fs"] = nn.Linear(cfg.expert_dim, d)
        if cfg.use_lipreading:
            self.fusion_proj["lip"] = nn.Linear(cfg.expert_dim, d)
        self.rest_embedding = nn.Parameter(torch.zeros(d))
        self.fusion = FusionEncoder(d, len(self.gloss_vocab), fusion=cfg.fusion,
                                    use_lips=cfg.use_lipreading, layers=cfg.fusion_layers,
                                    heads=cfg.fusion_heads, dropout=cfg.dropout)
        self.llm = self._build_llm()

    # ------------------------------------------------------------------------------ stand-ins

    @classmethod
    def standins(cls, profile: str, overrides: Mapping[str, Any]) -> list[StandIn]:
        """The paper's pretrained parts (docs/methods/signbind.md, "Pretrained stand-ins"):
        the DINOv2 frame encoder (``frame_encoder_init``, kind ``vit``, stream ``frames``), the
        lip ViT (``lip_encoder_init``, kind ``vit``, stream ``lips``, target ``mouth``; only
        with ``use_lipreading``) and LLaMA-2 7B (``llm_init``, kind ``llama``), each at the
        sizes the method builds at ``profile`` with ``overrides`` (they load strictly)."""
        base = PAPER_CONFIG if profile == "paper" else SignBindConfig()
        known = {k: v for k, v in overrides.items() if hasattr(base, k)}
        cfg = cls.build_config(base, known)
        return standin_declarations(cfg, profile, cls.tokenizer_vocab_size, cls.tokenizer_kind)

    # ------------------------------------------------------------------------------ LLM

    def _build_llm(self) -> nn.Module:
        from baselines.common import llm as L

        cfg = self.config
        vocab = len(self.tokenizer) if self.tokenizer is not None else cfg.vocab_size
        # built on the default device: ``with torch.device("meta")`` (parameter reports) or
        # ``with torch.device("cuda")`` (a paper-size LM straight on the GPU)
        model = L.build_llama(vocab, profile=self.profile, init=cfg.llm_init,
                              device=torch.empty(0).device, **cfg.llm_overrides)
        return L.add_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                          target_modules=tuple(cfg.lora_targets))

    def lora_parameter_names(self) -> list[str]:
        """Full names (``llm.…``) of the LLM's LoRA parameters: what the LLM stage trains."""
        from baselines.common.llm import lora_parameter_names

        return [f"llm.{n}" for n in lora_parameter_names(self.llm)]

    # ------------------------------------------------------------------------------ stages

    def stages(self) -> list[Stage]:
        cfg = self.config
        options = {"batch_size": cfg.batch_size, "amp": cfg.amp}
        manual = (["frame_encoder."] if cfg.train_encoders else []) \
            + ["router.", "sign_expert."]
        losses = ["ctc_sign", "router_ce"]
        if cfg.use_fingerspelling:
            manual.append("fs_expert.")
            losses.insert(1, "ctc_fs")
        out = [Stage(name=MANUAL_STAGE, epochs=cfg.expert_epochs, lr=cfg.expert_lr,
                     weight_decay=cfg.weight_decay, trainable=tuple(manual),
                     losses=tuple(losses), scheduler=cfg.scheduler,
                     warmup_steps=cfg.warmup_steps,
                     monitor="loss", options=options)]
        if cfg.use_lipreading:
            out.append(Stage(name=LIP_STAGE, epochs=cfg.lip_epochs, lr=cfg.lip_lr,
                             weight_decay=cfg.weight_decay,
                             trainable=(("lip_encoder.",) if cfg.train_encoders else ())
                             + ("lip_expert.",), losses=("ctc_lip",),
                             scheduler=cfg.scheduler, warmup_steps=cfg.warmup_steps, monitor="loss",
                             options=options))
        out.append(Stage(name=FUSION_STAGE, epochs=cfg.fusion_epochs, lr=cfg.fusion_lr,
                         weight_decay=cfg.weight_decay,
                         trainable=("fusion.", "fusion_proj.", "rest_embedding", "router."),
                         losses=("ctc_fusion", "router_ce"), scheduler=cfg.scheduler,
                         warmup_steps=cfg.warmup_steps, monitor="loss", options=options))
        out.append(Stage(name=LLM_STAGE, epochs=cfg.llm_epochs, lr=cfg.llm_lr,
                         weight_decay=0.0, trainable=tuple(self.lora_parameter_names()),
                         losses=("loss_llm",), scheduler="cosine",
                         warmup_steps=cfg.warmup_steps, monitor=cfg.llm_monitor,
                         options=options))
        return [s for s in out if s.epochs > 0 or s.name == LLM_STAGE]

    # ------------------------------------------------------------------------------ targets

    def _require(self, what: str) -> None:
        if what == "pseudo_gloss" and self.pseudo_gloss is None:
            raise ValueError("signbind: training needs the pseudo-gloss extractor (the "
                             "pseudo_gloss= override; the runner passes one)")
        if what == "tokenizer" and self.tokenizer is None:
            raise ValueError("signbind: the LLM needs the text tokenizer (tokenizer= override)")

    def pseudo_glosses(self, text: str) -> list[str]:
        """The pseudo-glosses of a reference sentence (cached per text)."""
        self._require("pseudo_gloss")
        hit = self._targets.get(text)
        if hit is None:
            words = self.pseudo_gloss.extract(text)
            hit = (self.gloss_vocab.encode(" ".join(words)), words)
            self._targets[text] = hit
        return hit[1]

    def _texts(self, batch: Batch) -> list[str]:
        if not batch.texts or any(t is None for t in batch.texts):
            raise ValueError("signbind: training needs the reference text of every sample "
                             "(batch.texts)")
        return list(batch.texts)

    def sign_targets(self, batch: Batch, device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = []
        for text in self._texts(batch):
            self.pseudo_glosses(text)
            seqs.append(self._targets[text][0])
        return pad_targets(seqs, self.gloss_vocab.pad_id, device)

    def letter_targets(self, batch: Batch, device: torch.device
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [self.letters.encode(" ".join("".join(fingerspelled_words(g))))
                for g in batch.glosses]
        return pad_targets(seqs, self.letters.pad_id, device)

    def phoneme_targets(self, batch: Batch, device: torch.device
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [self.phonemes.encode_words([w.lower() for w in self.pseudo_glosses(t)])
                for t in self._texts(batch)]
        return pad_targets(seqs, self.phonemes.pad_id, device)

    def frame_labels(self, batch: Batch, n: int) -> torch.Tensor | None:
        """Strided frame labels (B, n) int64 (−100 = padding), or None without them."""
        if "frame_labels" not in batch.inputs:
            return None
        labels = batch.inputs["frame_labels"][:, :: self.config.frame_stride]
        if labels.shape[1] < n:
            labels = F.pad(labels, (0, n - labels.shape[1]), value=-100)
        return labels[:, :n].long()

    # ------------------------------------------------------------------------------ training steps

    def manual_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        feats, mask = self.frame_features(batch)
        out: dict[str, torch.Tensor] = {}
        with self.nvtx("sign_expert"):
            _, logits = self.sign_expert(feats, mask)
            out["ctc_sign"] = ctc_loss(logits, mask, *self.sign_targets(batch, feats.device))
        if self.config.use_fingerspelling:
            with self.nvtx("fingerspelling_expert"):
                _, logits = self.fs_expert(feats, mask)
                out["ctc_fs"] = self.fingerspelling_loss(logits, mask, batch)
        out["router_ce"] = self._router_ce(batch, feats, mask)
        total = out["ctc_sign"] + out.get("ctc_fs", 0.0) \
            + self.config.router_weight * out["router_ce"]
        return {"loss": total, **{k: v.detach() for k, v in out.items()}}

    def fingerspelling_loss(self, logits: torch.Tensor, mask: torch.Tensor, batch: Batch
                            ) -> torch.Tensor:
        """The fingerspelling expert's CTC loss over every video (``fs_ctc_videos="all"``,
        default: name-less videos teach it to stay blank) or over the videos that contain
        fingerspelling only (``"fingerspelled"``, as ChicagoFSWild's clips; round-5 ablation).

        A name-less video has an empty target; its CTC loss (the all-blank path,
        −Σ_t log p_t(blank), divided by max(1, 0) = 1) is not normalised by a target length, so
        at a random init it dominates the batch mean (docs/methods/signbind.md). With
        ``"fingerspelled"`` a batch without any name gives a zero loss (graph kept)."""
        targets, lengths = self.letter_targets(batch, logits.device)
        if self.config.fs_ctc_videos == "fingerspelled":
            keep = lengths > 0
            if not bool(keep.any()):
                return logits.float().sum() * 0.0
            logits, mask, targets, lengths = logits[keep], mask[keep], targets[keep], \
                lengths[keep]
        return ctc_loss(logits, mask, targets, lengths)

    def _router_ce(self, batch: Batch, feats: torch.Tensor, mask: torch.Tensor,
                   logits: torch.Tensor | None = None) -> torch.Tensor:
        if logits is None:
            logits = self.router(feats, mask)
        labels = self.frame_labels(batch, feats.shape[1])
        if labels is None:
            return logits.sum() * 0.0
        return router_loss(logits, labels)

    def lip_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        feats, mask = self.lip_features(batch)
        with self.nvtx("lip_expert"):
            _, logits = self.lip_expert(feats, mask)
            loss = ctc_loss(logits, mask, *self.phoneme_targets(batch, feats.device))
        return {"loss": loss, "ctc_lip": loss.detach()}

    def apply_stage(self, stage: Stage) -> list[str]:
        """As ``SLTMethod.apply_stage``; also resets the frozen-expert cache (valid only while
        the fusion stage keeps every encoder and expert fixed)."""
        names = super().apply_stage(stage)
        self._frozen_cache.clear()
        self._cache_on = stage.name == FUSION_STAGE and not any(
            n.startswith(FROZEN_IN_FUSION) for n in names)
        # frozen ViT features (``train_encoders=False``) are fixed per sample: cached likewise
        self._feature_cache = {}
        if stage.name == MANUAL_STAGE and not any(n.startswith("frame_encoder.") for n in names):
            self._feature_cache["frame"] = SampleCache()
        if stage.name == LIP_STAGE and not any(n.startswith("lip_encoder.") for n in names):
            self._feature_cache["lip"] = SampleCache()
        if stage.name == FUSION_STAGE and self.config.fusion_warm_start:
            self.warm_start_fusion()
        return names

    def resume_state(self) -> dict[str, Any]:
        """Whether the fusion warm start was applied: a run resumed inside or after the fusion
        stage must not apply it again over the restored weights."""
        return {"warm_started": self._warm_started}

    def load_resume_state(self, state: Mapping[str, Any]) -> None:
        self._warm_started = bool(state.get("warm_started", False))

    @torch.no_grad()
    def warm_start_fusion(self) -> bool:
        """Initialise the fusion encoder so that it starts near the sign expert's predictions:
        ``fusion_proj["sign"]`` = identity and the fusion CTC head = the sign expert's CTC head
        (same vocabulary; only when ``expert_dim == fusion_dim``). Done once per model (the
        first ``apply_stage`` of the fusion stage). Returns whether it was applied."""
        if self._warm_started or self.config.expert_dim != self.config.fusion_dim:
            return False
        proj = self.fusion_proj["sign"]
        proj.weight.copy_(torch.eye(proj.weight.shape[0], dtype=proj.weight.dtype))
        proj.bias.zero_()
        self.fusion.head.weight.copy_(self.sign_expert.head.weight)
        self.fusion.head.bias.copy_(self.sign_expert.head.bias)
        self._warm_started = True
        return True

    def frozen_outputs(self, batch: Batch) -> dict[str, Any]:
        """Frame features, the experts' hidden states and the lip expert's, per batch item.

        In the fusion stage (``training_step`` only) these are outputs of frozen modules in eval
        mode, i.e. fixed per sample, so they are cached by sample name for the stage, each
        computed alone (``SampleCache.fetch``: the same bits whatever batch it first came in,
        so a resumed run refills the cache exactly). ``generate`` never uses the cache (its
        latency is measured)."""
        if not (self._use_cache and batch.names):
            return self._frozen_outputs(batch)

        def compute_one(i: int) -> tuple[dict[str, Any], torch.Tensor]:
            out = self._frozen_outputs(one_sample(batch, i))
            return {k: v for k, v in out.items() if k != "mask"}, out["mask"]

        cached, mask = self._frozen_cache.fetch(batch.names, compute_one, batch.lengths.device)
        return {**cached, "mask": mask}

    def _frozen_outputs(self, batch: Batch) -> dict[str, Any]:
        cfg = self.config
        feats, mask = self.frame_features(batch)
        experts = [self.sign_expert] + ([self.fs_expert] if cfg.use_fingerspelling else [])
        with self.nvtx("experts"):
            hidden = self._run(experts, lambda: [e(feats, mask)[0] for e in experts])
        out = {"feats": feats, "mask": mask, "sign": hidden[0]}
        if cfg.use_fingerspelling:
            out["fs"] = hidden[1]
        if cfg.use_lipreading:
            lf, lmask = self.lip_features(batch)
            with self.nvtx("experts"):
                lh = self._run([self.lip_expert], lambda: self.lip_expert(lf, lmask)[0])
            if lh.shape[1] != feats.shape[1]:  # align the lip stream to the manual time axis
                lh = F.interpolate(lh.transpose(1, 2), size=feats.shape[1], mode="linear",
                                   align_corners=False).transpose(1, 2)
            out["lip"] = lh
        return out

    @property
    def _use_cache(self) -> bool:
        """Only inside the fusion stage's ``training_step`` (never in ``generate``)."""
        return self._cache_on and self._in_training_step

    def expert_streams(self, batch: Batch, route: str = "gumbel"
                       ) -> dict[str, torch.Tensor]:
        """The fusion encoder's inputs: manual stream m (B, T', d), lip stream l (or None),
        mask, router logits and routing vectors. ``route``: ``"gumbel"`` (training: soft
        Gumbel-softmax at the current τ) or ``"hard"`` (inference: argmax one-hot)."""
        cfg = self.config
        frozen = self.frozen_outputs(batch)
        feats, mask = frozen["feats"], frozen["mask"]
        hidden = [frozen["sign"]] + ([frozen["fs"]] if cfg.use_fingerspelling else [])
        logits = self.router(feats, mask)
        if route == "gumbel":
            r = gumbel_route(logits, self.tau)
        else:
            r = gumbel_route(logits, 1.0, noise=False, hard=True)
        with self.nvtx("fusion"):
            sign = self.fusion_proj["sign"](hidden[0])
            fs = self.fusion_proj["fs"](hidden[1]) if cfg.use_fingerspelling else sign
            manual = (r[..., 1:2] * sign + r[..., 2:3] * fs
                      + r[..., 0:1] * self.rest_embedding.to(sign.dtype))
        lips = None
        if cfg.use_lipreading:
            with self.nvtx("fusion"):
                lips = self.fusion_proj["lip"](frozen["lip"])
        return {"manual": manual, "lips": lips, "mask": mask, "router_logits": logits,
                "routes": r, "feats": feats}

    def fusion_step(self, batch: Batch, state: TrainState | None) -> dict[str, torch.Tensor]:
        cfg = self.config
        self.tau = anneal_temperature(state.progress if state is not None else 1.0,
                                      cfg.tau_start, cfg.tau_end)
        s = self.expert_streams(batch, route="gumbel" if self.training else "hard")
        with self.nvtx("encoder"):
            _, logits = self.fusion(s["manual"], s["lips"], s["mask"])
        ctc = ctc_loss(logits, s["mask"], *self.sign_targets(batch, logits.device))
        ce = self._router_ce(batch, s["feats"], s["mask"], s["router_logits"])
        return {"loss": ctc + cfg.router_weight * ce, "ctc_fusion": ctc.detach(),
                "router_ce": ce.detach(), "tau": torch.tensor(self.tau)}

    def prompt_ids(self, glosses: Sequence[Sequence[str]]) -> list[list[int]]:
        """Token ids of each pseudo-gloss prompt (``<s> glosses </s>``, lowercased)."""
        self._require("tokenizer")
        return [self.tokenizer.encode(" ".join(g).lower()) for g in glosses]

    def _prefix(self, glosses: Sequence[Sequence[str]], device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor]:
        from baselines.common.llm import embed_tokens

        ids, lengths = pad_targets(self.prompt_ids(glosses), self.tokenizer.pad_id, device)
        mask = torch.arange(ids.shape[1], device=device)[None] < lengths[:, None]
        return embed_tokens(self.llm, ids), mask

    def llm_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        from baselines.common.llm import prefix_lm_loss

        self._require("tokenizer")
        if batch.text_ids is None or batch.text_mask is None:
            raise ValueError("signbind: the batch has no text_ids; collate it with the text "
                             "tokenizer")
        glosses = [self.pseudo_glosses(t) for t in self._texts(batch)]
        prefix, pmask = self._prefix(glosses, batch.text_ids.device)
        with self.nvtx("llm"):
            loss = prefix_lm_loss(self.llm, prefix, pmask, batch.text_ids, batch.text_mask)
        return {"loss": loss, "loss_llm": loss.detach()}

    def training_step(self, batch: Batch, state: TrainState | None = None
                      ) -> dict[str, torch.Tensor]:
        name = state.stage.name if state is not None else LLM_STAGE
        if name == LLM_STAGE:
            return self.llm_step(batch)
        steps = {MANUAL_STAGE: self.manual_step, LIP_STAGE: self.lip_step,
                 FUSION_STAGE: lambda b: self.fusion_step(b, state)}
        if name not in steps:
            raise ValueError(f"signbind: unknown stage {name!r}")
        self._in_training_step = True
        try:
            return steps[name](batch)
        finally:
            self._in_training_step = False

    # ------------------------------------------------------------------------------ inference

    def recognise(self, batch: Batch) -> tuple[list[list[str]], dict[str, torch.Tensor]]:
        """Greedy CTC-decoded pseudo-glosses of the fusion encoder, plus its intermediate
        tensors (streams, routes, fusion logits)."""
        s = self.expert_streams(batch, route="hard")
        with self.nvtx("encoder"):
            _, logits = self.fusion(s["manual"], s["lips"], s["mask"])
        specials = {self.gloss_vocab.blank_id, self.gloss_vocab.pad_id, self.gloss_vocab.unk_id}
        glosses = [[self.gloss_vocab.itos[i] for i, _ in seq if i not in specials]
                   for seq in ctc_greedy(logits, s["mask"], self.gloss_vocab.blank_id)]
        s["fusion_logits"] = logits
        return glosses, s

    @torch.no_grad()
    def generate(self, batch: Batch, beam_size: int = 5, length_penalty: float = 1.0,
                 max_len: int = 60) -> list[str]:
        from baselines.common.llm import generate_from_prefix

        self._require("tokenizer")
        glosses, s = self.recognise(batch)
        prefix, pmask = self._prefix(glosses, s["mask"].device)
        tok = self.tokenizer
        with self.nvtx("beam_search"):
            ids = generate_from_prefix(self.llm, prefix, pmask, bos_id=tok.bos_id,
                                       eos_id=tok.eos_id, pad_id=tok.pad_id,
                                       num_beams=beam_size, length_penalty=length_penalty,
                                       max_new_tokens=max_len)
        return [tok.decode(row.tolist()) for row in ids]

    # ------------------------------------------------------------------------------ reports

    def param_report(self) -> dict[str, Any]:
        """Total / trainable parameters and a per-component breakdown (works on ``meta``)."""
        groups = {
            "frame_encoder": ("frame_encoder.",), "lip_encoder": ("lip_encoder.",),
            "router": ("router.",), "sign_expert": ("sign_expert.",),
            "fingerspelling_expert": ("fs_expert.",), "lip_expert": ("lip_expert.",),
            "fusion": ("fusion.", "fusion_proj.", "rest_embedding"), "llm": ("llm.",),
        }
        total, trainable, components = self.count_parameters_by_group(groups)
        lora = sum(p.numel() for n, p in self.named_parameters() if "lora_" in n)
        return {"total": total, "trainable": trainable, "components": components,
                "llm_lora": lora}

    def paper_figures(self) -> dict[str, dict[str, Any]]:
        """The paper states one size: its LLaMA-2-7B translator."""
        from baselines.common.llm import paper_llm_figure

        return {"LLM backbone": paper_llm_figure(self.llm)}


__all__ = ["FROZEN_IN_FUSION", "FUSION_STAGE", "LIP_STAGE", "LLM_STAGE", "MANUAL_STAGE",
           "SignBind"]
