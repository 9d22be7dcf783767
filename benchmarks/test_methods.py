"""End-to-end method benchmarks: inference latency and FPS per backend (``kind="method"``).

Every registered method's ``generate`` (its whole inference: stream encoders, fusion, language
model, beam search 5) is timed with the ops on the ``eager`` backend (the torch reference ops, the
baseline) and on the fused backends: ``native`` (C++ on CPU, CUDA on GPU) and ``triton`` (GPU
only: the CPU interpreter is a correctness tool, not a benchmark). What the fused backends
accelerate differs per method: HyperSign's HyperFusion (``hyper_modulate``), SignFuse's CMFA
(``GatedCrossAttention``), HFA's window-7 temporal attention (``masked_attention``), SignX's
attention layers, SignBind-LLM's gated fusion (``gated_blend``).

Each method is built exactly as ``signbench run`` builds it (``harness.runner``: its language and
frame size from ``data_defaults``, tokenizer / gloss vocabulary / pseudo-glosses fitted on a small
synthetic train split), untrained, so every beam runs to ``max_len`` — the same decoding work on
every backend, and an accuracy check before speed: the eager and fused generations must agree.
Tiny profile on CPU; tiny and paper profile (random init, the paper's dimensions, 224-px
content-free frames) on GPU, skipped cleanly without CUDA. A method may define
``prepare_benchmark(profile, device)`` to adapt itself (e.g. run a 7B-sized LLM in bf16 on the
GPU), and ``benchmark_variants`` (a class attribute: a tuple of override dicts, default
``({},)``) to time ablations side by side — SignBind-LLM's adaptive gate vs cross-attention
fusion (O(T) vs O(T²)).

``frames`` = video frames in the batch, so the leaderboard's FPS is frames per second of
end-to-end translation. Run ``pytest benchmarks/test_methods.py --benchmark-json out.json`` and
feed it to ``signbench leaderboard --bench out.json``.
"""

from __future__ import annotations

from functools import cache

import pytest
import torch

from baselines import list_methods
from benchmarks.bench_backends import skip_unless_runnable
from harness import ops
from harness.evaluate import collate_for
from harness.runner import (
    PROFILE_DATA,
    _setting,
    build_method,
    build_text_resources,
    load_split,
    materialize,
    method_class,
)


def _variants(key: str) -> list[tuple[str, dict]]:
    """(label, overrides) per benchmarked variant of a method (``benchmark_variants``)."""
    from harness.runner import variant_name

    out = []
    for overrides in method_class(key).benchmark_variants:
        name = variant_name(overrides)
        out.append((key if name is None else f"{key}[{name}]", dict(overrides)))
    return out


VARIANTS = [(m, label, ov) for m in list_methods() for label, ov in _variants(m)]
CASES = [pytest.param(m, ov, "cpu", "tiny", b, id=f"{label}-cpu-tiny-{b}")
         for m, label, ov in VARIANTS for b in ("eager", "native")]
CASES += [pytest.param(m, ov, "cuda", profile, b, id=f"{label}-cuda-{profile}-{b}")
          for profile in ("tiny", "paper") for m, label, ov in VARIANTS
          for b in ("eager", "native", "triton")]
BATCH = {"tiny": 4, "paper": 2}
MAX_LEN = {"tiny": 30, "paper": 40}
PAPER_RESOLUTION = 224
TRAIN = 64


@cache
def _setup(key: str):
    """Samples (streams loaded) and text resources, as the runner would make them (tiny data)."""
    cls = method_class(key)
    lang = str(_setting("lang", None, cls, None, "tiny"))
    resolution = int(_setting("resolution", None, cls, None, "tiny") or
                     PROFILE_DATA["tiny"]["resolution"])
    train = load_split("synthetic", "train", lang=lang, size=TRAIN, resolution=resolution, seed=0)
    resources = build_text_resources(cls, train, lang)
    return train, resources, resolution


def _batch(model, samples, resources, profile: str, device: str):
    samples = materialize(samples, tuple(model.inputs) or ("keypoints",), progress=False)
    batch = collate_for(model, samples, tokenizer=resources.tokenizer,
                        gloss_vocab=resources.gloss_vocab)
    frames = batch.inputs.get("frames")
    if profile == "paper" and frames is not None:  # 224×224 video of the same length
        gen = torch.Generator().manual_seed(0)
        shape = (*frames.shape[:2], PAPER_RESOLUTION, PAPER_RESOLUTION, frames.shape[-1])
        batch.inputs["frames"] = (torch.rand(shape, generator=gen).to(frames.dtype)
                                  if frames.is_floating_point()
                                  else torch.randint(0, 256, shape, generator=gen,
                                                     dtype=frames.dtype))
    return batch.to(device)


@pytest.mark.parametrize(("method", "overrides", "device", "profile", "backend"), CASES)
def test_method_inference(bench, method, overrides, device, profile, backend):
    from harness.runner import variant_name

    name = skip_unless_runnable(device, backend)
    train, resources, resolution = _setup(method)
    torch.manual_seed(0)
    model = build_method(method, profile, resources, overrides).to(device).eval()
    model.prepare_benchmark(profile, torch.device(device))
    batch = _batch(model, train[:BATCH[profile]], resources, profile, device)
    max_len = MAX_LEN[profile]
    beam = int(model.beam_size)
    with ops.use_backend("torch"):
        reference = model.generate(batch, beam_size=beam, length_penalty=1.0, max_len=max_len)

    def run():
        with ops.use_backend(name):
            return model.generate(batch, beam_size=beam, length_penalty=1.0, max_len=max_len)

    params = model.param_report() or {}
    total = params.get("total") if isinstance(params.get("total"), int) else sum(
        p.numel() for p in model.parameters())
    out = bench(run, op=method, kind="method", mode="generate", backend=backend,
                dtype=torch.float32, device=device, frames=model.frames_per_batch(batch),
                shape={"B": len(batch), "T": int(batch.lengths.max()),
                       "res": PAPER_RESOLUTION if profile == "paper" else resolution,
                       "beam": beam, "max_len": max_len},
                rounds=3 if profile == "tiny" else 5, method=method, profile=profile,
                params=total, variant=variant_name(overrides))
    assert out == reference  # accuracy before speed: fused backends translate identically
