"""TS-SLT's pre-training stages that HyperSign follows (Sec. 3.2), and the gloss bridge that
reads them: :class:`PretrainingMixin`.

Stage ``stream_pretrain`` (TS-SLT's S2G): per-stream CTC heads (and the joint head over both
extractors) on the extractor outputs, L = Σ CTC. Stage ``gloss2text`` (G2T): mBART translates
gloss sequences fed as rows of a learned gloss embedding table. In translation, the gloss bridge
(``bridge="gloss"``, our choice) adds p · E_gloss — the recognisers' gloss posteriors times that
table — to mBART's input, and ``ctc_weight`` > 0 adds the CTC losses. Why and what was
measured: ``docs/methods/hypersign.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import mbart as mb
from baselines.hypersign.streams import StreamFeatures
from harness.data.batching import Batch


class PretrainingMixin:
    """The S2G / G2T steps, the auxiliary CTC losses and the gloss bridge of :class:`HyperSign`
    (mixed into the ``SLTMethod``; the CTC heads and ``gloss_embedding`` are built in its
    ``__init__``)."""

    def ctc_loss(self, feats: torch.Tensor, mask: torch.Tensor, head: nn.Module,
                 batch: Batch) -> torch.Tensor:
        """Sign-to-gloss CTC of one stream: ``head`` over the extractor output (B, N, d)."""
        log_probs = F.log_softmax(head(feats).float(), dim=-1).transpose(0, 1)  # (N, B, C)
        return F.ctc_loss(log_probs, batch.gloss_ids, mask.sum(1), batch.gloss_lengths,
                          blank=self.gloss_vocab.blank_id, reduction="mean", zero_infinity=True)

    def pretrain_step(self, batch: Batch) -> dict[str, torch.Tensor]:
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

    def g2t_step(self, batch: Batch) -> dict[str, torch.Tensor]:
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

    def aux_ctc_losses(self, batch: Batch, raw: StreamFeatures) -> dict[str, torch.Tensor]:
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

    # ----------------------------------------------------------------------- the gloss bridge

    @staticmethod
    def joint_features(raw: StreamFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """[x_v; x_k] (B, N, 2d) over the positions both extractors have, and their AND mask."""
        (xv, mv), (xk, mk) = raw["v"], raw["k"]
        n = min(xv.shape[1], xk.shape[1])
        return torch.cat([xv[:, :n], xk[:, :n]], dim=-1), mv[:, :n] & mk[:, :n]

    def gloss_posteriors(self, raw: StreamFeatures) -> dict[str, torch.Tensor]:
        """Each stream's CTC-head gloss posteriors (B, N, |glosses|) over its extractor output,
        plus the joint head's ``"f"`` over both when it exists."""
        heads = {"v": getattr(self, "rgb_ctc", None), "k": getattr(self, "keypoint_ctc", None)}
        post = {key: torch.softmax(heads[key](x).float(), dim=-1).to(x.dtype)
                for key, (x, _) in raw.items()}
        if self.joint_ctc and len(raw) == 2:
            x, _ = self.joint_features(raw)
            post["f"] = torch.softmax(self.fused_ctc(x).float(), dim=-1).to(x.dtype)
        return post

    def gloss_bridge(self, raw: StreamFeatures, n: int) -> dict[str, torch.Tensor]:
        """The gloss-embedding bridge (``bridge="gloss"``): per stream B_i = p_i · E_gloss and
        for the fused stream B_f = p_f · E_gloss with p_f the joint recogniser's posteriors
        (``bridge_fusion="joint"``) or ½(p_v + p_k) (``"average"``), cut to the ``n`` positions
        of the frontend features (padded positions are zeroed later)."""
        post = {k: p[:, :n] for k, p in self.gloss_posteriors(raw).items()}
        if len(post) == 2:
            post["f"] = 0.5 * (post["v"] + post["k"])
        weight = self.gloss_embedding.weight
        return {k: p @ weight.to(p.dtype) for k, p in post.items()}
