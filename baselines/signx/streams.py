"""What SignX reads from a batch: the strided, ablation-zeroed pose formats and RGB frames, the
latent z = PoseEncoder(Vid2Pose(frames)) the recogniser reads (Sec. 3.3, inference path), and
the frozen parts' outputs cached per sample within the recogniser stage.

:class:`SignXInputs` is the input side of :class:`baselines.signx.model.SignX` (its base class);
the caching and ``finetune_pose_encoder`` rationale is in ``docs/methods/signx.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from baselines.common.sample_cache import SampleCache, one_sample, repad
from baselines.signx.config import SignXConfig
from baselines.signx.latent import Pose2Gloss, Vid2Pose
from baselines.signx.recognizer import ResNetTeacher, frame_features
from harness.data.batching import Batch
from harness.method import SLTMethod, TrainState

#: (latent or the pose formats the trainable pose encoder reads or None, teacher logits or None,
#: frame mask)
FrozenOutputs = tuple[torch.Tensor | dict[str, torch.Tensor] | None, torch.Tensor | None,
                      torch.Tensor]


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
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


class SignXInputs(SLTMethod):
    """Batch streams → what each SignX stage reads (the submodules are built by ``SignX``)."""

    config: SignXConfig
    pose2gloss: Pose2Gloss
    vid2pose: Vid2Pose
    teacher: ResNetTeacher
    visual: nn.Module
    visual_proj: nn.Linear
    _cache: SampleCache
    _cache_key: tuple[Any, ...] | None

    @property
    def uses_teacher(self) -> bool:
        return hasattr(self, "teacher")

    def _poses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
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

    def _frames(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
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

    def recognizer_latent(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent the recogniser reads for ``batch`` (and its frame mask)."""
        if self.config.pipeline == "latent" and self.config.recognizer_input == "poses":
            poses, mask = self._poses(batch)
            with self.nvtx("pose_encoder"):
                return self.pose2gloss.encoder(poses, mask), mask
        frames, mask = self._frames(batch)
        return self.latent_from_frames(frames, mask), mask

    def _frozen_outputs(self, batch: Batch, state: TrainState | None) -> FrozenOutputs:
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
        key = (state.stage_index if state is not None else None, cfg.zero_formats)
        use_cache = cfg.cache_latents and state is not None
        if use_cache and key != self._cache_key:
            self._cache.clear()
            self._cache_key = key

        def frames_and_mask(b: Batch) -> tuple[torch.Tensor | None, torch.Tensor]:
            frames, mask = self._frames(b) if "frames" in b.inputs else (None, None)
            if mask is None or gt_poses:
                mask = self._poses(b)[1]
            return frames, mask

        def frozen(b: Batch) -> tuple[dict[str, Any], torch.Tensor]:
            frames, mask = frames_and_mask(b)
            modules = [m for m in (getattr(self, "pose2gloss", None),
                                   getattr(self, "vid2pose", None),
                                   getattr(self, "teacher", None)) if m is not None]
            z: Any = None
            with eval_mode(*modules):
                if poses_out and gt_poses:
                    z = self._poses(b)[0]
                elif poses_out:
                    with self.nvtx("vid2pose"):
                        z = self._zeroed(self.vid2pose(frames, mask)[0])
                elif latent:
                    z = self.recognizer_latent(b)[0]
                t = self.teacher(frames, mask) if self.uses_teacher else None
            # detached and zero-padded like a cache hit, so both hand on the same tensors
            return repad({"z": z, "t": t}, mask.sum(1)), mask

        if not use_cache:
            rows, mask = frozen(batch)
            return rows["z"], rows["t"], mask
        mask = frames_and_mask(batch)[1]
        # each missing sample alone and unpadded: a cached row never depends on its batch, so a
        # resumed run's rebuilt cache holds the same bits (exact resume)
        rows, _ = self._cache.fetch(list(batch.names),
                                    lambda i: frozen(one_sample(batch, i)), mask.device)
        return rows["z"], rows["t"], mask

    def frames_per_batch(self, batch: Batch) -> int:
        return int(batch.masks["frames"].sum().item()) if "frames" in batch.masks else \
            int(batch.lengths.sum().item())


__all__ = ["FrozenOutputs", "SignXInputs", "eval_mode"]
