"""SignFuse inference benchmark (``kind="method"``): eager vs fused cross-attention backends.

``generate`` (ResNet-50 visual stream, ST-GCN, CMFA = ``harness.ops.GatedCrossAttention``, HTA,
SLA, LLaMA + LoRA beam search 5) is timed with the ops on the ``eager`` backend (the torch
reference ops: the baseline) and on the fused backends — ``native`` (C++ on CPU, CUDA on GPU) and
``triton`` (GPU only). Tiny profile on CPU; paper profile (ResNet-50, d = 512, LLaMA-2-7B-sized
LLM, random init, 224-px frames) on GPU, skipped cleanly without CUDA (the 7B LLM needs ~27 GB in
fp32; it is built in bf16 there).

The models are untrained; the eager and fused generations must agree before speed is reported.
``frames`` = video frames in the batch (FPS = frames per second of end-to-end translation). Merge
into ``benchmarks/test_methods.py`` or run directly with ``--benchmark-json``.
"""

from __future__ import annotations

from functools import cache

import pytest
import torch

from baselines import get_method
from harness import ops
from harness.data import load_dataset
from harness.data.batching import collate
from harness.text import train_tokenizer

CASES = [pytest.param("cpu", "tiny", b, id=f"cpu-tiny-{b}") for b in ("eager", "native")]
CASES += [pytest.param("cuda", "paper", b, id=f"cuda-paper-{b}")
          for b in ("eager", "native", "triton")]
BATCH = {"tiny": 4, "paper": 2}
RESOLUTION = {"tiny": 32, "paper": 224}
MAX_LEN = {"tiny": 30, "paper": 40}


@cache
def _corpus(n: int):
    ds = load_dataset("synthetic", "train", lang="de", size=64, resolution=32, seed=0)
    samples = [ds[i] for i in range(64)]
    tok = train_tokenizer([s.text for s in samples], vocab_size=1000, lang="de")
    return samples[:n], tok


def _backend(device: str, backend: str) -> str:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    name = "torch" if backend == "eager" else backend
    ok, reason = ops.availability(name, device)
    if not ok:
        pytest.skip(reason)
    return name


def _batch(profile: str, tok, samples, device: str):
    batch = collate(samples, streams=("frames", "keypoints"), text_tokenizer=tok)
    res = RESOLUTION[profile]
    frames = batch.inputs["frames"]
    if frames.shape[2] != res:  # paper size: 224×224 video of the same length (content-free)
        gen = torch.Generator().manual_seed(0)
        batch.inputs["frames"] = torch.randint(0, 256, (*frames.shape[:2], res, res, 3),
                                               generator=gen, dtype=torch.uint8)
    return batch.to(device)


@pytest.mark.parametrize(("device", "profile", "backend"), CASES)
def test_signfuse_inference(bench, device, profile, backend):
    name = _backend(device, backend)
    samples, tok = _corpus(BATCH[profile])
    torch.manual_seed(0)
    model = get_method("signfuse", profile, tokenizer=tok).to(device).eval()
    if profile == "paper":
        model.llm.to(torch.bfloat16)
    batch = _batch(profile, tok, samples, device)
    max_len = MAX_LEN[profile]
    with ops.use_backend("torch"):
        reference = model.generate(batch, beam_size=5, length_penalty=1.0, max_len=max_len)

    def run():
        with ops.use_backend(name):
            return model.generate(batch, beam_size=5, length_penalty=1.0, max_len=max_len)

    frames = int(batch.lengths.sum())
    out = bench(run, op="signfuse", kind="method", mode="generate", backend=backend,
                dtype=torch.float32, device=device, frames=frames,
                shape={"B": len(batch), "T": int(batch.lengths.max()),
                       "res": RESOLUTION[profile], "beam": 5, "max_len": max_len},
                rounds=3 if profile == "tiny" else 5, method="signfuse", profile=profile,
                params=model.param_report()["total"])
    assert out == reference  # accuracy before speed: fused backends translate identically
