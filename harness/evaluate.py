"""Evaluation of a trained method: generation over a split, scores, per-sample outputs, efficiency.

Accuracy and efficiency are measured in separate passes, never from the same calls:

* accuracy — :func:`evaluate_split` generates for every sample of the split (batched, length-
  bucketed, order restored afterwards), scores the whole corpus with
  ``harness.metrics.translation_scores`` (task ``translation``) or ``recognition_scores``
  (task ``recognition``; ``cleanup="phoenix14t"`` on the phoenix14t dataset), and writes the
  per-sample outputs (``name``, ``reference``, ``hypothesis``) as JSONL, atomically, and the
  shuffled-reference control (:mod:`harness.metrics.control`: the same outputs scored against
  other samples' references, and the number of distinct outputs — does the score come from the
  input or from the sentence prior?);
* efficiency — :func:`measure_method` times ``generate`` on one fixed batch (by default the
  first video of the split: the run JSON's latency is per video) with
  ``harness.measure.measure_efficiency`` (warm-up, device sync, percentiles, FPS from
  ``frames_per_batch``, NVML power on CUDA, peak memory, parameter counts of the method).

Everything runs in ``eval()`` mode under ``torch.inference_mode`` and inside the NVTX range
``slt/<method>/generate`` (the method adds its own stage ranges inside).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from harness.data.batching import Batch, BucketBatchSampler, collate
from harness.data.sample import Sample
from harness.method import SLTMethod
from harness.results import atomic_write_text


@dataclass
class SplitOutputs:
    """Per-sample generations of one split, in dataset order."""

    names: list[str]
    references: list[str]
    hypotheses: list[str]

    def records(self) -> list[dict[str, str]]:
        return [{"name": n, "reference": r, "hypothesis": h}
                for n, r, h in zip(self.names, self.references, self.hypotheses, strict=True)]


@dataclass
class EvalResult:
    """Scores of a split plus its outputs and where they were written."""

    scores: dict[str, Any]
    outputs: SplitOutputs
    outputs_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    control: dict[str, Any] | None = None


def reference_of(sample: Sample, task: str) -> str:
    """The reference a method's output is scored against: text (translation) or gloss."""
    ref = sample.text if task == "translation" else sample.gloss
    if ref is None:
        what = "text" if task == "translation" else "gloss"
        raise ValueError(f"sample {sample.name!r} has no {what}; it cannot be scored for "
                         f"{task}")
    return ref


def collate_for(method: Any, samples: Sequence[Sample], *, tokenizer: Any = None,
                gloss_vocab: Any = None, with_targets: bool = False) -> Batch:
    """Collate ``samples`` with the streams ``method.inputs`` names (targets only for losses)."""
    return collate(samples, streams=tuple(method.inputs) or ("keypoints",),
                   text_tokenizer=tokenizer if with_targets and method.needs_text else None,
                   gloss_vocab=gloss_vocab if with_targets and method.needs_gloss else None,
                   normalize_frames=method.normalize_frames)


def eval_batches(samples: Sequence[Sample], batch_size: int, num_replicas: int = 1,
                 rank: int = 0) -> list[list[int]]:
    """Length-bucketed, unshuffled index batches (less padding; outputs are re-ordered)."""
    sampler = BucketBatchSampler([s.num_frames for s in samples], batch_size, shuffle=False,
                                 num_replicas=num_replicas, rank=rank)
    return list(sampler)


@dataclass
class MethodEvaluator:
    """The :class:`harness.method.Evaluator` the runner hands a method's ``extra_metrics``:
    the same batching and collation as evaluation, with the method's own text resources."""

    method: SLTMethod
    device: torch.device

    def index_batches(self, samples: Sequence[Sample], batch_size: int) -> list[list[int]]:
        return eval_batches(samples, batch_size)

    def collate(self, samples: Sequence[Sample], *, with_targets: bool = False) -> Batch:
        return collate_for(self.method, samples, tokenizer=self.method.tokenizer,
                           gloss_vocab=self.method.gloss_vocab,
                           with_targets=with_targets).to(self.device)


def generate_split(method: Any, samples: Sequence[Sample], *, batch_size: int = 16,
                   beam_size: int = 5, length_penalty: float = 1.0, max_len: int = 60,
                   device: torch.device | str = "cpu", progress: bool = True,
                   desc: str = "generate") -> SplitOutputs:
    """``method.generate`` over every sample; outputs in dataset order."""
    device = torch.device(device)
    task = method.task
    hyps: list[str | None] = [None] * len(samples)
    was_training = method.training
    method.eval()
    try:
        batches = eval_batches(samples, batch_size) if len(samples) else []
        bar = tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False)
        with torch.inference_mode(), method.nvtx("generate"):
            for idx in bar:
                batch = collate_for(method, [samples[i] for i in idx]).to(device)
                out = method.generate(batch, beam_size=beam_size, length_penalty=length_penalty,
                                      max_len=max_len)
                if not isinstance(out, (list, tuple)) or len(out) != len(idx):
                    raise ValueError(f"{method.key}.generate returned "
                                     f"{len(out) if isinstance(out, (list, tuple)) else out!r} "
                                     f"outputs for a batch of {len(idx)}")
                for i, h in zip(idx, out, strict=True):
                    if not isinstance(h, str):
                        raise ValueError(f"{method.key}.generate returned "
                                         f"{type(h).__name__} for sample {samples[i].name!r}, "
                                         f"expected str")
                    hyps[i] = h
    finally:
        method.train(was_training)
    return SplitOutputs(names=[s.name for s in samples],
                        references=[reference_of(s, task) for s in samples],
                        hypotheses=[h if h is not None else "" for h in hyps])


def score(task: str, hypotheses: Sequence[str], references: Sequence[str], *, lang: str = "de",
          dataset: str = "synthetic") -> dict[str, Any]:
    """Corpus scores with their signature (see the module docstring)."""
    from harness.metrics import recognition_scores, translation_scores

    if task == "translation":
        return translation_scores(list(hypotheses), list(references), lang=lang)
    if task == "recognition":
        return recognition_scores(list(hypotheses), list(references),
                                  cleanup=cleanup_for(dataset))
    raise ValueError(f"unknown task {task!r}; expected 'translation' or 'recognition'")


def cleanup_for(dataset: str) -> str | None:
    """The gloss cleanup of a dataset's recognition protocol (PHOENIX-2014T's, else none)."""
    return "phoenix14t" if dataset == "phoenix14t" else None


def permutation_test_of(task: str, hypotheses: Sequence[str], references: Sequence[str], *,
                        lang: str = "de", protocol: str = "slt", cleanup: str | None = None
                        ) -> dict[str, Any]:
    """``{"permutations", "p_value"}``: the control's permutation test of the task's headline
    score alone (BLEU-4 under ``protocol``, or WER with ``cleanup``; higher / lower is
    better), so the many re-scorings skip ROUGE-L."""
    from harness.metrics import corpus_bleu, permutation_p_value, recognition_scores
    from harness.metrics.control import DEFAULT_PERMUTATIONS

    def metric(h: list[str], r: list[str]) -> float:
        if task == "translation":
            return corpus_bleu(h, r, lang=lang, protocol=protocol)
        return float(recognition_scores(h, r, cleanup=cleanup)["wer"])

    if task not in ("translation", "recognition"):
        raise ValueError(f"unknown task {task!r}; expected 'translation' or 'recognition'")
    p_value = permutation_p_value(hypotheses, references, metric,
                                  higher_is_better=task == "translation",
                                  permutations=DEFAULT_PERMUTATIONS)
    return {"permutations": DEFAULT_PERMUTATIONS, "p_value": p_value}


def control_of(task: str, outputs: SplitOutputs, *, lang: str = "de",
               dataset: str = "synthetic") -> dict[str, Any] | None:
    """The shuffled-reference control of ``outputs`` under the split's own metric protocol,
    with the permutation test of its headline score (:func:`permutation_test_of`)."""
    from harness.metrics import shuffled_reference_control

    control = shuffled_reference_control(
        task, outputs.hypotheses, outputs.references,
        lambda h, r: score(task, h, r, lang=lang, dataset=dataset))
    if control is None:
        return None
    return {**control, **permutation_test_of(task, outputs.hypotheses, outputs.references,
                                             lang=lang, cleanup=cleanup_for(dataset))}


def write_outputs(path: str | Path, outputs: SplitOutputs) -> Path:
    """Per-sample JSONL (one ``{"name", "reference", "hypothesis"}`` per line), atomically."""
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in outputs.records()]
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def evaluate_split(method: Any, samples: Sequence[Sample], *, lang: str = "de",
                   dataset: str = "synthetic", batch_size: int = 16, beam_size: int = 5,
                   length_penalty: float = 1.0, max_len: int = 60,
                   device: torch.device | str = "cpu", outputs_path: str | Path | None = None,
                   progress: bool = True, desc: str = "evaluate") -> EvalResult:
    """Generate, score (with the shuffled-reference control), and (when ``outputs_path`` is
    given) write the per-sample JSONL."""
    if not len(samples):
        raise ValueError("cannot evaluate an empty split")
    outputs = generate_split(method, samples, batch_size=batch_size, beam_size=beam_size,
                             length_penalty=length_penalty, max_len=max_len, device=device,
                             progress=progress, desc=desc)
    scores = score(method.task, outputs.hypotheses, outputs.references, lang=lang,
                   dataset=dataset)
    path = write_outputs(outputs_path, outputs) if outputs_path is not None else None
    control = control_of(method.task, outputs, lang=lang, dataset=dataset)
    return EvalResult(scores=scores, outputs=outputs, outputs_path=path, control=control)


def measure_method(method: Any, samples: Sequence[Sample], *, videos: int = 1,
                   device: torch.device | str = "cpu", beam_size: int = 5,
                   length_penalty: float = 1.0, max_len: int = 60, warmup: int = 2,
                   iters: int = 10, power_window_s: float = 2.0,
                   progress: bool = False) -> dict[str, Any]:
    """The run JSON's efficiency block: ``measure_efficiency`` of ``generate`` on a fixed batch of
    the first ``videos`` samples (``frames_per_call`` = the method's ``frames_per_batch``)."""
    from harness.measure import measure_efficiency

    if videos < 1 or not len(samples):
        raise ValueError(f"need >= 1 video to measure efficiency, got videos={videos} of "
                         f"{len(samples)} samples")
    batch = collate_for(method, [samples[i] for i in range(min(videos, len(samples)))])
    device = torch.device(device)
    batch = batch.to(device)
    frames = int(method.frames_per_batch(batch))
    was_training = method.training
    method.eval()

    def call() -> None:
        with torch.inference_mode(), method.nvtx("generate"):
            method.generate(batch, beam_size=beam_size, length_penalty=length_penalty,
                            max_len=max_len)

    try:
        return measure_efficiency(call, model=method, device=device, frames_per_call=frames,
                                  warmup=warmup, iters=iters, power_window_s=power_window_s,
                                  progress=progress, videos_per_call=len(batch))
    finally:
        method.train(was_training)
