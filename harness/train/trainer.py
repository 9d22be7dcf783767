"""The method-agnostic trainer: runs an ``SLTMethod``'s stages with AdamW, schedules, AMP, DDP,
checkpoints, resume and best-checkpoint selection.

``Trainer(method, train, dev, TrainConfig(...)).fit() -> TrainResult``. For each
:class:`~baselines.base.Stage` in order (0-epoch stages skipped): ``method.apply_stage(stage)``
sets what trains; AdamW over the trainable parameters with the stage's ``lr``, ``weight_decay``,
scheduler (per optimiser step) and ``grad_clip``; autocast on CUDA (bf16, else fp16 with a
``GradScaler``). ``training_step(batch, state)`` returns a dict of losses: ``"loss"`` is
back-propagated, every entry is logged, and the entries ``stage.losses`` names must be present.

* Determinism: seeded from ``seed`` at start and per epoch by :func:`epoch_seed`; data order by a
  per-stage ``BucketBatchSampler``. Resuming from an epoch-end or mid-epoch checkpoint
  (``checkpoint_every_steps``) replays exactly.
* Checkpoints (:mod:`harness.train.checkpoint`): ``last`` at every epoch end (and every K steps),
  ``best`` per stage by the stage's ``monitor`` (``bleu4`` / ``rouge_l`` maximised, ``wer`` /
  ``loss`` minimised) on dev, decoded greedily (``dev_beam_size=1``). ``resume=True`` continues
  from ``last``; the trajectory settings must match. The next stage starts from the last weights;
  after the final stage its best weights are loaded back.
* Optional hooks: ``on_epoch_end(record)`` and ``on_fit_end()`` (e.g. SignX's checkpoint
  averaging); the state they keep (``resume_state()``) is saved with every checkpoint and
  restored on resume (``load_resume_state``).
* Distributed (``torchrun``, :mod:`harness.train.distributed`): DDP per stage, data sharded by
  the sampler, dev evaluation and writes on rank 0 (the metric is broadcast); ``batch_size`` is
  per rank.

Design notes: docs/components.md (section "harness.train.trainer").
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from harness.data.batching import BucketBatchSampler, collate
from harness.data.sample import Sample
from harness.method import TrainState
from harness.train import checkpoint as ckpt
from harness.train import distributed as dist_utils
from harness.train.schedulers import make_scheduler

MAXIMISED = ("bleu4", "rouge_l")
MINIMISED = ("wer", "loss")


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a missing loss entry, ...); names stage and step."""


def epoch_seed(seed: int, stage_index: int, epoch: int, rank: int = 0) -> int:
    """A 63-bit seed for one (seed, stage, epoch, rank), stable across processes and versions."""
    digest = hashlib.blake2b(f"{seed}/{stage_index}/{epoch}/{rank}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") >> 1


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and random."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def better(monitor: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if monitor in MAXIMISED else value < best


@dataclass
class TrainConfig:
    """Trainer settings (the stage schedule itself comes from the method)."""

    batch_size: int = 8
    eval_batch_size: int = 16
    seed: int = 0
    device: str = "cpu"
    amp: str | None = "auto"  # "auto" (bf16/fp16 on CUDA, off on CPU) | "bf16" | "fp16" | None
    checkpoint_dir: str | Path | None = None  # None: no checkpoints, no resume
    resume: bool = False
    checkpoint_every_steps: int | None = None
    eval_every_epochs: int = 1
    dev_beam_size: int = 1
    length_penalty: float = 1.0
    max_len: int = 60
    bucket_size_multiplier: int = 50
    num_workers: int = 0
    lang: str = "de"
    dataset: str = "synthetic"
    progress: bool = True
    callbacks: list[Callable[..., None]] = field(default_factory=list)
    #: further settings that change the result (resolution, sizes, overrides, ...): part of the
    #: checkpoint fingerprint, so ``resume`` refuses a checkpoint written with others
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "eval_every_epochs",
                     "bucket_size_multiplier"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            raise ValueError(f"checkpoint_every_steps must be >= 1 or None, got "
                             f"{self.checkpoint_every_steps}")
        if self.amp not in ("auto", "bf16", "fp16", None):
            raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or None, got {self.amp!r}")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")


@dataclass
class TrainResult:
    """The run JSON's ``training`` block (:meth:`summary`) plus the per-epoch history."""

    epochs: int
    steps: int
    wall_s: float
    final_losses: dict[str, float | None]
    best_dev: dict[str, Any] | None
    history: list[dict[str, Any]]
    resumed_from: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "steps": self.steps, "wall_s": self.wall_s,
                "final_losses": self.final_losses, "best_dev": self.best_dev,
                "history": self.history, "resumed_from": self.resumed_from}


class _SkipFirst(torch.utils.data.Sampler[list[int]]):
    """The batches of ``sampler`` after the first ``skip`` (mid-epoch resume)."""

    def __init__(self, sampler: BucketBatchSampler, skip: int = 0) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self):
        for i, batch in enumerate(self.sampler):
            if i >= self.skip:
                yield batch

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def _amp_dtype(amp: str | None, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or amp is None:
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


class Trainer:
    """Trains ``method`` on ``train`` (and picks its best epoch on ``dev``); see module doc."""

    def __init__(self, method: Any, train: Sequence[Sample], dev: Sequence[Sample] | None,
                 config: TrainConfig | None = None, *, tokenizer: Any = None,
                 gloss_vocab: Any = None, stages: Sequence[Any] | None = None) -> None:
        self.method = method
        self.train_data = train
        self.dev_data = dev if dev is not None and len(dev) else None
        self.config = config or TrainConfig()
        self.stages = list(stages) if stages is not None else list(method.stages())
        if not self.stages:
            raise ValueError(f"{method.key}: stages() returned no training stage")
        if not len(train):
            raise ValueError("the training split is empty")
        self.tokenizer = tokenizer if tokenizer is not None else method.tokenizer
        self.gloss_vocab = gloss_vocab if gloss_vocab is not None else method.gloss_vocab
        if method.needs_text and self.tokenizer is None:
            raise ValueError(f"{method.key} needs tokenised text but no tokenizer was given")
        if method.needs_gloss and self.gloss_vocab is None:
            raise ValueError(f"{method.key} needs gloss ids but no gloss vocabulary was given")
        self.device = torch.device(self.config.device)
        self.info = dist_utils.init_distributed(self.device)
        self.amp_dtype = _amp_dtype(self.config.amp, self.device)
        self.ckpt_dir = Path(self.config.checkpoint_dir) if self.config.checkpoint_dir else None
        self.global_step = 0
        self.state: Any = None

    # -- data ----------------------------------------------------------------------------------

    def _collate_fn(self) -> Callable[[list[Sample]], Any]:
        return functools.partial(
            collate, streams=tuple(self.method.inputs) or ("keypoints",),
            text_tokenizer=self.tokenizer if self.method.needs_text else None,
            gloss_vocab=self.gloss_vocab if self.method.needs_gloss else None,
            normalize_frames=self.method.normalize_frames)

    def _sampler(self, stage_index: int, stage: Any) -> BucketBatchSampler:
        batch_size = int(stage.options.get("batch_size", self.config.batch_size))
        return BucketBatchSampler(
            [s.num_frames for s in self.train_data], batch_size, shuffle=True,
            seed=epoch_seed(self.config.seed, stage_index, -1),
            bucket_size_multiplier=self.config.bucket_size_multiplier,
            num_replicas=self.info.world_size, rank=self.info.rank)

    def _loader(self, sampler: BucketBatchSampler, skip: int) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            self.train_data, batch_sampler=_SkipFirst(sampler, skip),
            collate_fn=self._collate_fn(), num_workers=self.config.num_workers,
            multiprocessing_context="fork" if self.config.num_workers > 0 else None)

    # -- checkpoints ---------------------------------------------------------------------------

    def _fingerprint(self) -> dict[str, Any]:
        """Every setting that changes the trajectory (``resume`` refuses a checkpoint whose
        fingerprint differs): the full stage schedule, batching, seed, ranks, the data, the
        method's configuration and the caller's ``TrainConfig.settings``."""
        fingerprint = {"stages": [asdict(s) for s in self.stages],
                       "batch_size": self.config.batch_size, "seed": self.config.seed,
                       "world_size": self.info.world_size, "train_size": len(self.train_data),
                       "train_names": _digest([s.name for s in self.train_data]),
                       "method_config": self.method.config_dict(), **self.config.settings}
        return json.loads(json.dumps(fingerprint, sort_keys=True, default=str))

    def _check_fingerprint(self, found: dict[str, Any] | None) -> None:
        """Refuse to resume from a checkpoint written with other settings, naming them."""
        mine = self._fingerprint()
        found = found if isinstance(found, dict) else {}
        differ = sorted(k for k in set(found) | set(mine) if found.get(k) != mine.get(k))
        if differ:
            detail = "; ".join(_difference(k, found.get(k), mine.get(k)) for k in differ)
            raise ValueError(f"{self.ckpt_dir / 'last.json'}: cannot resume, the checkpoint was "
                             f"written with other settings ({detail}); use the same settings, "
                             f"another output folder, or no --resume")

    def _save(self, name: str, pointers: tuple[str, ...], meta: dict[str, Any],
              trainer_state: dict[str, Any]) -> None:
        if self.ckpt_dir is not None and self.info.is_main:
            trainer_state = {**trainer_state, "method_state": self.method.resume_state()}
            ckpt.save_checkpoint(self.ckpt_dir, name, self.method, trainer_state, meta, pointers)
        dist_utils.barrier()

    # -- evaluation ----------------------------------------------------------------------------

    @torch.no_grad()
    def dev_loss(self, state: Any) -> float:
        """Mean dev ``loss`` of ``training_step`` in eval mode."""
        from harness.evaluate import eval_batches

        fn = self._collate_fn()
        total, n = 0.0, 0
        self.method.eval()
        try:
            for idx in eval_batches(self.dev_data, self.config.eval_batch_size):
                batch = fn([self.dev_data[i] for i in idx]).to(self.device)
                with self._autocast():
                    out = self.method.training_step(batch, state)
                total += float(out["loss"].float().item()) * len(idx)
                n += len(idx)
        finally:
            self.method.train()
        return total / max(1, n)

    def dev_metric(self, monitor: str, state: Any) -> float | None:
        """The stage's monitor on dev, computed on rank 0 and broadcast (None without dev)."""
        if self.dev_data is None:
            return None
        value = None
        if self.info.is_main:
            if monitor == "loss":
                value = self.dev_loss(state)
            else:
                from harness.evaluate import generate_split, score

                out = generate_split(self.method, self.dev_data,
                                     batch_size=self.config.eval_batch_size,
                                     beam_size=self.config.dev_beam_size,
                                     length_penalty=self.config.length_penalty,
                                     max_len=self.config.max_len, device=self.device,
                                     progress=False)
                value = float(score(self.method.task, out.hypotheses, out.references,
                                    lang=self.config.lang, dataset=self.config.dataset)[monitor])
        return dist_utils.broadcast_object(value)

    # -- training ------------------------------------------------------------------------------

    def _autocast(self):
        if self.amp_dtype is None:
            import contextlib

            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def fit(self) -> TrainResult:
        """Train every stage; returns the training summary (best weights loaded at the end)."""
        cfg = self.config
        method = self.method
        method.to(self.device)
        seed_everything(cfg.seed)

        position = {"stage_index": 0, "epoch": 0, "batch": 0}
        best: dict[str, Any] | None = None
        history: list[dict[str, Any]] = []
        wall_before = 0.0
        resume_state: dict[str, Any] = {}
        resumed_from = None
        if cfg.resume and ckpt.has_checkpoint(self.ckpt_dir):
            found = ckpt.load_checkpoint(self.ckpt_dir)
            meta = found.meta
            self._check_fingerprint(meta.get("fingerprint"))
            ckpt.restore_model(method, found)
            position = dict(meta["position"])
            best = meta.get("best")
            history = list(meta.get("history", []))
            wall_before = float(meta.get("wall_s", 0.0))
            self.global_step = int(meta["global_step"])
            resume_state = dict(found.trainer)
            method.load_resume_state(resume_state.pop("method_state", None) or {})
            resumed_from = {"checkpoint": found.path.name, **position,
                            "global_step": self.global_step}
        elif self.ckpt_dir is not None and self.info.is_main and self.ckpt_dir.exists():
            shutil.rmtree(self.ckpt_dir)  # a fresh run: never mix with an old run's pointers
        dist_utils.barrier()

        t0 = time.perf_counter()
        final_losses: dict[str, float | None] = dict(history[-1]["losses"]) if history else {}
        epochs_done = sum(1 for _ in history)
        for stage_index, stage in enumerate(self.stages):
            if stage_index < position["stage_index"] or stage.epochs == 0:
                continue
            resuming_here = stage_index == position["stage_index"] and bool(resume_state)
            start_epoch = position["epoch"] if stage_index == position["stage_index"] else 0
            if start_epoch >= stage.epochs:
                continue
            stage_best = best if best and best.get("stage_index") == stage_index else None
            method.apply_stage(stage)
            params = [p for p in method.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
            sampler = self._sampler(stage_index, stage)
            steps_per_epoch = len(sampler)
            total_steps = steps_per_epoch * stage.epochs
            scheduler = make_scheduler(optimizer, stage.scheduler, total_steps,
                                       stage.warmup_steps,
                                       float(stage.options.get("min_lr_ratio", 0.0)))
            scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
            stage_step = start_epoch * steps_per_epoch
            skip = 0
            if resuming_here and resume_state.get("optimizer") is not None:
                optimizer.load_state_dict(resume_state["optimizer"])
                scheduler.load_state_dict(resume_state["scheduler"])
                scaler.load_state_dict(resume_state["scaler"])
                skip = position["batch"]
                stage_step += skip
            model = dist_utils.wrap_ddp(method, self.device)

            for epoch in range(start_epoch, stage.epochs):
                method.train()
                torch.manual_seed(epoch_seed(cfg.seed, stage_index, epoch, self.info.rank))
                np.random.seed(epoch_seed(cfg.seed, stage_index, epoch, self.info.rank) % 2**32)
                random.seed(epoch_seed(cfg.seed, stage_index, epoch, self.info.rank))
                sampler.set_epoch(epoch)
                loader = self._loader(sampler, skip)
                iterator = iter(loader)
                if skip and resume_state.get("rng") is not None:
                    ckpt.set_rng_state(resume_state["rng"])
                sums: dict[str, float] = dict(resume_state.get("epoch_sums", {})) if skip else {}
                count = int(resume_state.get("epoch_count", 0)) if skip else 0
                batch_in_epoch = skip
                skip = 0
                resume_state = {}
                bar = tqdm(total=steps_per_epoch, initial=batch_in_epoch,
                           desc=f"{method.key} {stage.name} {epoch + 1}/{stage.epochs}",
                           unit="step", leave=False,
                           disable=not (cfg.progress and self.info.is_main))
                t_epoch, seen = time.perf_counter(), 0
                for batch in iterator:
                    batch = batch.to(self.device)
                    self.state = TrainState(stage=stage, stage_index=stage_index, epoch=epoch,
                                            step=stage_step, total_steps=total_steps,
                                            global_step=self.global_step)
                    losses = self._step(model, batch, optimizer, scheduler, scaler, params,
                                        stage)
                    stage_step += 1
                    self.global_step += 1
                    batch_in_epoch += 1
                    count += 1
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v
                    seen += len(batch)
                    rate = seen / max(1e-9, time.perf_counter() - t_epoch)
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses['loss']:.4f}", samples_s=f"{rate:.1f}")
                    if (cfg.checkpoint_every_steps and self.ckpt_dir is not None
                            and self.global_step % cfg.checkpoint_every_steps == 0
                            and batch_in_epoch < steps_per_epoch):
                        meta = self._meta(stage_index, epoch, batch_in_epoch, best, history,
                                          wall_before + time.perf_counter() - t0)
                        self._save(f"s-{self.global_step:08d}", ("last",), meta,
                                   {"optimizer": optimizer.state_dict(),
                                    "scheduler": scheduler.state_dict(),
                                    "scaler": scaler.state_dict(), "rng": ckpt.rng_state(),
                                    "epoch_sums": sums, "epoch_count": count})
                    for callback in cfg.callbacks:
                        callback(self, self.state, losses)
                bar.close()
                # mean over ranks too (equal step counts per rank): the global epoch mean
                epoch_losses = {k: dist_utils.all_reduce_mean(v / max(1, count))
                                for k, v in sorted(sums.items())}
                final_losses = dict(epoch_losses)
                epochs_done += 1
                record: dict[str, Any] = {"stage": stage.name, "stage_index": stage_index,
                                          "epoch": epoch, "global_step": self.global_step,
                                          "losses": epoch_losses}
                pointers: tuple[str, ...] = ("last",)
                if (epoch + 1) % cfg.eval_every_epochs == 0 or epoch + 1 == stage.epochs:
                    value = self.dev_metric(stage.monitor, self.state)
                    if value is not None:
                        record["dev"] = {stage.monitor: value}
                        if better(stage.monitor, value,
                                  stage_best["value"] if stage_best else None):
                            stage_best = {"metric": stage.monitor, "value": value,
                                          "stage": stage.name, "stage_index": stage_index,
                                          "epoch": epoch, "step": self.global_step}
                            best = stage_best
                            pointers = ("last", "best")
                history.append(record)
                method.on_epoch_end(record)  # optional hook, e.g. checkpoint averaging
                if self.info.is_main and cfg.progress:
                    dev = record.get("dev", {})
                    dev_text = "".join(f" dev {k}={v:.3f}" for k, v in dev.items())
                    tqdm.write(f"{method.key} [{stage.name}] epoch {epoch + 1}/{stage.epochs} "
                               f"loss={epoch_losses.get('loss', float('nan')):.4f}{dev_text}")
                last_epoch = epoch + 1 == stage.epochs
                next_position = ((stage_index + 1, 0) if last_epoch else (stage_index, epoch + 1))
                meta = self._meta(next_position[0], next_position[1], 0, best, history,
                                  wall_before + time.perf_counter() - t0)
                state_out = {} if last_epoch else {
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict()}
                self._save(f"e-{self.global_step:08d}", pointers, meta, state_out)

        self._load_best(best)
        method.on_fit_end()  # optional hook after the best weights are back
        return TrainResult(epochs=epochs_done, steps=self.global_step,
                           wall_s=wall_before + time.perf_counter() - t0,
                           final_losses=final_losses,
                           best_dev=best, history=history, resumed_from=resumed_from)

    def _meta(self, stage_index: int, epoch: int, batch: int, best: dict[str, Any] | None,
              history: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
        return {"position": {"stage_index": stage_index, "epoch": epoch, "batch": batch},
                "global_step": self.global_step, "best": best, "history": history,
                "wall_s": wall_s, "fingerprint": self._fingerprint(), "method": self.method.key}

    def _load_best(self, best: dict[str, Any] | None) -> None:
        """Reload the best weights of the last trained stage (if a best was recorded there)."""
        if best is None or self.ckpt_dir is None or not ckpt.has_checkpoint(self.ckpt_dir,
                                                                            "best"):
            return
        last_trained = max(i for i, s in enumerate(self.stages) if s.epochs > 0)
        if best.get("stage_index") != last_trained:
            return
        ckpt.restore_model(self.method, ckpt.load_checkpoint(self.ckpt_dir, "best",
                                                             load_trainer=False))

    def _step(self, model: torch.nn.Module, batch: Any, optimizer: torch.optim.Optimizer,
              scheduler: Any, scaler: torch.amp.GradScaler, params: list[torch.nn.Parameter],
              stage: Any) -> dict[str, float]:
        method = self.method
        with method.nvtx("train_step"), self._autocast():
            out = model(batch, self.state)
        if not isinstance(out, dict) or "loss" not in out:
            raise TrainingError(f"{method.key}.training_step must return a dict with a 'loss' "
                                f"entry, got {type(out).__name__}"
                                f"{' keys ' + str(sorted(out)) if isinstance(out, dict) else ''}")
        missing = [k for k in stage.losses if k not in out]
        if missing:
            raise TrainingError(f"{method.key} stage {stage.name!r}: training_step did not "
                                f"return the losses {missing} the stage names "
                                f"(got {sorted(out)})")
        loss = out["loss"]
        logged = {k: float(v.detach().float().item()) if isinstance(v, torch.Tensor) else float(v)
                  for k, v in out.items()}
        if not math.isfinite(logged["loss"]):
            raise TrainingError(f"{method.key} stage {stage.name!r}: non-finite loss "
                                f"{logged['loss']} at step {self.global_step} ({logged})")
        optimizer.zero_grad(set_to_none=True)
        with method.nvtx("backward"):
            scaler.scale(loss).backward()
        with method.nvtx("optimizer"):
            if stage.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        return logged


def _digest(values: Sequence[Any]) -> str:
    return hashlib.blake2b(json.dumps(list(values)).encode(), digest_size=8).hexdigest()


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _difference(path: str, old: Any, new: Any) -> str:
    """``"stages[2].lr: checkpoint 0.001, this run 0.003"``: the first place two JSON values
    differ, for the resume refusal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _difference(f"{path}.{key}", old.get(key), new.get(key))
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                return _difference(f"{path}[{i}]", a, b)
    return f"{path}: checkpoint {_short(old)}, this run {_short(new)}"


def train_config_dict(config: TrainConfig) -> dict[str, Any]:
    """JSON-ready view of a config (callbacks dropped)."""
    d = asdict(config)
    d.pop("callbacks", None)
    d["checkpoint_dir"] = str(config.checkpoint_dir) if config.checkpoint_dir else None
    return d
