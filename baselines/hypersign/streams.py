"""HyperSign's two streams up to F_v and F_k (Sec. 2.1, the base model): :class:`StreamsMixin`.

Per stream a light feature extractor (``baselines.common.encoders``: RGB CNN / keypoint MLP, T/4
downsampling) and a VL-mapper. Frozen extractors (after stage 1) run as TS-SLT's offline feature
extraction — eval mode, no autograd — and their outputs are cached per training sample
(``cache_features``; never in evaluation; each sample extracted alone, so a resumed run's
rebuilt cache holds the same bits). Streams of unequal length are cut to the shorter one.
Design notes: ``docs/methods/hypersign.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.common.sample_cache import SampleCache
from baselines.hypersign.config import HyperSignConfig
from harness.data.batching import Batch

#: per-stream ``(features (B, N, d), mask (B, N))`` keyed ``"v"`` (RGB) / ``"k"`` (keypoints)
StreamFeatures = dict[str, tuple[torch.Tensor, torch.Tensor]]


class StreamsMixin:
    """The stream extractors, their feature cache and the VL-mappers of :class:`HyperSign`
    (mixed into the ``SLTMethod``; the modules themselves are built in its ``__init__``)."""

    config: HyperSignConfig
    inputs: tuple[str, ...]
    use_rgb: bool
    use_keypoints: bool
    _feature_cache: SampleCache

    def _input(self, batch: Batch, stream: str) -> tuple[torch.Tensor, torch.Tensor]:
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

    def extract(self, batch: Batch) -> StreamFeatures:
        """The stream feature extractors' outputs (before the VL-mappers), those in use."""
        out: StreamFeatures = {}
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

    def _extract_cached(self, stream: str, encoder: nn.Module, batch: Batch
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        x_in, m_in = self._input(batch, stream)
        if not self._caches_features(encoder):
            return self._extract(encoder, x_in, m_in)
        keys = [(stream, name, int(n)) for name, n in zip(batch.names, m_in.sum(1).tolist(),
                                                            strict=True)]

        def one(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            # alone and unpadded: the cached row never depends on the batch it first came in
            n = keys[i][2]
            return self._extract(encoder, x_in[i:i + 1, :n], m_in[i:i + 1, :n])

        return self._feature_cache.fetch(keys, one, device=m_in.device)

    def clear_feature_cache(self) -> None:
        """Forget cached extractor outputs (new stage, new weights)."""
        self._feature_cache.clear()

    def frontend(self, batch: Batch, extracted: StreamFeatures | None = None) -> StreamFeatures:
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
