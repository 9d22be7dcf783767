"""SignBind-LLM's figures beyond BLEU: letters, gate, router, pseudo-glosses (``extra_metrics``).

Per evaluated split: letter accuracy of the fingerspelling expert on the fingerspelled segments
(ChicagoFSWildPlus' metric, paper "Key Results"), the gate's α(manual) per frame label (the
paper's "Gate Behavior Probing" check), the router's frame accuracy and the fusion encoder's
pseudo-gloss WER. :class:`SignBindMetrics` is the part of
:class:`baselines.signbind.model.SignBind` that computes them; what the figures measured in the
tiny profile: ``docs/methods/signbind.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from baselines.signbind.config import SignBindConfig
from baselines.signbind.experts import ctc_greedy, letter_accuracy
from harness.data.batching import Batch
from harness.data.sample import Sample
from harness.method import Evaluator
from harness.text import GlossVocab, PseudoGlossExtractor

FRAME_LABELS = ("rest", "sign", "fingerspelling")


class SignBindMetrics:
    """``extra_metrics`` of :class:`~baselines.signbind.model.SignBind` (a mixin)."""

    config: SignBindConfig
    pseudo_gloss: PseudoGlossExtractor | None
    letters: GlossVocab
    fusion: nn.Module
    fs_expert: nn.Module
    training: bool
    recognise: Callable[[Batch], tuple[list[list[str]], dict[str, torch.Tensor]]]
    frame_labels: Callable[[Batch, int], torch.Tensor | None]

    @torch.no_grad()
    def extra_metrics(self, split: str, samples: Sequence[Sample], *, device: torch.device,
                      batch_size: int, evaluator: Evaluator) -> dict[str, Any]:
        """Letter accuracy on fingerspelled segments, the gate's α per frame label, router
        frame accuracy and the fusion encoder's pseudo-gloss WER (module docstring). Batches
        are consecutive chunks of ``batch_size`` samples, collated by ``evaluator``."""
        from harness.metrics import recognition_scores

        was_training = self.training
        self.eval()
        stride = self.config.frame_stride
        fs_hyp, fs_ref = [], []
        alpha_sum = np.zeros(3)
        alpha_sq = np.zeros(3)
        alpha_n = np.zeros(3)
        correct = total = 0
        pg_hyp, pg_ref = [], []
        try:
            for start in range(0, len(samples), batch_size):
                chunk = list(samples[start:start + batch_size])
                batch = evaluator.collate(chunk)
                glosses, s = self.recognise(batch)
                mask = s["mask"]
                labels = self.frame_labels(batch, mask.shape[1])
                pg_hyp += [" ".join(g) for g in glosses]
                pg_ref += [" ".join(self.pseudo_gloss.extract(x.text))
                           if self.pseudo_gloss is not None and x.text else "" for x in chunk]
                if labels is not None:
                    pred = s["router_logits"].argmax(-1)
                    valid = labels >= 0
                    correct += int((pred[valid] == labels[valid]).sum())
                    total += int(valid.sum())
                    alpha = self.fusion.alpha(s["manual"], s["lips"], mask)
                    if alpha is not None:
                        for k in range(3):
                            sel = alpha[labels == k].double().cpu().numpy()
                            alpha_sum[k] += sel.sum()
                            alpha_sq[k] += (sel ** 2).sum()
                            alpha_n[k] += sel.size
                if self.config.use_fingerspelling:
                    feats = s["feats"]
                    emitted = ctc_greedy(self.fs_expert(feats, mask)[1], mask,
                                         self.letters.blank_id)
                    for x, seq in zip(chunk, emitted, strict=True):
                        for span in x.fingerspelling or []:
                            lo, hi = span.start / stride, span.end / stride
                            fs_hyp.append("".join(self.letters.itos[i] for i, t in seq
                                                  if lo <= t < hi))
                            fs_ref.append(span.letters.upper())
        finally:
            self.train(was_training)
        out: dict[str, Any] = {
            "letter_accuracy": None if not fs_ref else 100.0 * letter_accuracy(fs_hyp, fs_ref),
            "fingerspelled_segments": len(fs_ref),
            "router_frame_accuracy": 100.0 * correct / total if total else None,
            "fusion": self.config.fusion,
        }
        if not self.config.use_fingerspelling:
            out["letter_accuracy_note"] = "no fingerspelling expert (use_fingerspelling=false)"
        if any(pg_ref):
            out["pseudo_gloss_wer"] = recognition_scores(pg_hyp, pg_ref)["wer"]
        out.update(self._gate_report(alpha_sum, alpha_sq, alpha_n))
        return out

    def _gate_report(self, alpha_sum: np.ndarray, alpha_sq: np.ndarray, alpha_n: np.ndarray
                     ) -> dict[str, Any]:
        """``gate_alpha_manual``: α(manual) mean / std / frames per frame label (or a note)."""
        gate: dict[str, Any] = {}
        for k, name in enumerate(FRAME_LABELS):
            if alpha_n[k]:
                mean = alpha_sum[k] / alpha_n[k]
                std = float(np.sqrt(max(0.0, alpha_sq[k] / alpha_n[k] - mean ** 2)))
                gate[name] = {"mean": float(mean), "std": std, "frames": int(alpha_n[k])}
        out: dict[str, Any] = {"gate_alpha_manual": gate or None}
        if not gate:
            out["gate_alpha_note"] = ("no gate: fusion=concat or no lipreading expert"
                                      if (self.config.fusion == "concat"
                                          or not self.config.use_lipreading)
                                      else "no frame labels")
        return out


__all__ = ["FRAME_LABELS", "SignBindMetrics"]
