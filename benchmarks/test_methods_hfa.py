"""End-to-end HFA benchmark: inference latency and FPS per backend (``kind="method"``).

HFA's ``generate`` (ViT frame encoder, window-7 RoPE temporal encoder through
``harness.ops.masked_attention``, linear mapper, mBART encoder, beam search 5) is timed with the
ops on the ``eager`` backend (torch reference ops, the baseline) and on the fused backends
``native`` (C++ on CPU, CUDA on GPU) and ``triton`` (GPU only). Tiny profile on CPU (28 × 28
frames); paper profile (random init, ViT-S/14 + mBART-large dimensions, 224 × 224 content-free
frames) on GPU, skipped without CUDA. The models are untrained, so every beam runs to ``max_len``;
the eager and fused generations must agree before a time is reported.
"""

from __future__ import annotations

import warnings
from functools import cache

import pytest
import torch

from baselines import get_method
from harness import ops
from harness.data import load_dataset
from harness.data.batching import collate
from harness.text import PseudoGlossExtractor, train_tokenizer

CASES = [pytest.param("cpu", "tiny", b, id=f"cpu-tiny-{b}") for b in ("eager", "native")]
CASES += [pytest.param("cuda", "paper", b, id=f"cuda-paper-{b}")
          for b in ("eager", "native", "triton")]
BATCH = {"tiny": 4, "paper": 2}
RESOLUTION = {"tiny": 28, "paper": 224}
MAX_LEN = {"tiny": 30, "paper": 40}


@cache
def _corpus(n: int):
    ds = load_dataset("synthetic", "train", lang="de", size=64, resolution=28, seed=0)
    samples = [ds[i] for i in range(64)]
    texts = [s.text for s in samples]
    tok = train_tokenizer(texts, vocab_size=1000, lang="de")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pseudo = PseudoGlossExtractor("de").fit(texts)
    return samples[:n], tok, pseudo, texts


def _backend(device: str, backend: str) -> str:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    name = "torch" if backend == "eager" else backend
    ok, reason = ops.availability(name, device)
    if not ok:
        pytest.skip(reason)
    return name


def _batch(profile: str, tok, samples, device: str):
    batch = collate(samples, streams=("frames",), text_tokenizer=tok, normalize_frames=True)
    res = RESOLUTION[profile]
    frames = batch.inputs["frames"]
    if frames.shape[2] != res:  # paper size: 224×224 video of the same length (content-free)
        gen = torch.Generator().manual_seed(0)
        batch.inputs["frames"] = torch.rand((*frames.shape[:2], res, res, 3), generator=gen)
    return batch.to(device)


@pytest.mark.parametrize(("device", "profile", "backend"), CASES)
def test_hfa_inference(bench, device, profile, backend):
    name = _backend(device, backend)
    samples, tok, pseudo, texts = _corpus(BATCH[profile])
    torch.manual_seed(0)
    model = get_method("hfa", profile, tokenizer=tok, pseudo_gloss=pseudo,
                       train_texts=texts).to(device).eval()
    batch = _batch(profile, tok, samples, device)
    max_len = MAX_LEN[profile]
    with ops.use_backend("torch"):
        reference = model.generate(batch, beam_size=5, length_penalty=1.0, max_len=max_len)

    def run():
        with ops.use_backend(name):
            return model.generate(batch, beam_size=5, length_penalty=1.0, max_len=max_len)

    frames = int(batch.lengths.sum())
    out = bench(run, op="hfa", kind="method", mode="generate", backend=backend,
                dtype=torch.float32, device=device, frames=frames,
                shape={"B": len(batch), "T": int(batch.lengths.max()),
                       "res": RESOLUTION[profile], "beam": 5, "max_len": max_len},
                rounds=3 if profile == "tiny" else 5, method="hfa", profile=profile,
                params=model.param_report()["total"])
    assert out == reference  # accuracy before speed: fused backends translate identically
