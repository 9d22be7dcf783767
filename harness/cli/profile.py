"""``signbench profile``: a short inference under NVTX ranges and the ``nsys`` command line.

Runs ``--batches`` batches of the synthetic test split through an untrained method inside NVTX
ranges (``slt/<method>/...`` in the ``signbench`` domain, ``harness.measure.nvtx``), prints the
per-batch latency and the ``nsys profile`` command line that records those ranges
(:func:`nsys_command`).
"""

from __future__ import annotations

import argparse
import shlex
import time

from harness.cli.common import positive, resolve_methods


def nsys_command(key: str, backend: str | None, device: str, profile: str,
                 batches: int) -> str:
    """The ``nsys profile`` command line recording CUDA + the ``signbench`` NVTX domain."""
    inner = ["signbench", "profile", "--method", key, "--device", device, "--profile", profile,
             "--batches", str(batches)]
    if backend:
        inner += ["--backend", backend]
    out = f"signbench-{key}-{backend or 'default'}"
    return ("nsys profile --trace=cuda,nvtx --nvtx-domain-include=signbench --sample=none "
            f"--force-overwrite=true --output={out} " + shlex.join(inner)
            + f"  # then: nsys stats --report nvtx_sum {out}.nsys-rep")


def profile_method(key: str, profile: str = "tiny", backend: str | None = None,
                   device: str = "auto", batches: int = 3, batch_size: int = 4,
                   lang: str = "de") -> list[float]:
    """Short inference (untrained weights) under NVTX; returns per-batch latencies in ms."""
    import contextlib

    import torch

    from harness import ops
    from harness.data import load_dataset
    from harness.evaluate import collate_for
    from harness.ops.dispatch import resolve as resolve_backend
    from harness.runner import (
        PROFILE_DATA,
        build_method,
        build_text_resources,
        method_class,
        resolve_device,
    )

    cls = method_class(key)
    dev = resolve_device(device)
    if backend is not None:
        resolve_backend(backend, dev)
    res = PROFILE_DATA[profile]["resolution"]
    train = load_dataset("synthetic", "train", lang=lang, size=100, resolution=res)
    test = load_dataset("synthetic", "test", lang=lang, size=batches * batch_size,
                        resolution=res)
    method = build_method(key, profile, build_text_resources(cls, train, lang)).to(dev).eval()
    beam = int(method.beam_size)
    times = []
    ctx = ops.use_backend(backend) if backend else contextlib.nullcontext()
    with ctx, torch.inference_mode(), method.nvtx("profile"):
        for b in range(batches):
            samples = [test[i] for i in range(b * batch_size, (b + 1) * batch_size)]
            batch = collate_for(method, samples).to(dev)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t = time.perf_counter()
            with method.nvtx("generate"):
                method.generate(batch, beam_size=beam,
                                length_penalty=float(method.length_penalty),
                                max_len=int(method.max_len))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append((time.perf_counter() - t) * 1000)
    return times


def cmd_profile(args: argparse.Namespace) -> int:
    (key,) = resolve_methods([args.method])
    times = profile_method(key, args.profile, args.backend, args.device, args.batches,
                           args.batch_size, args.lang)
    for i, ms in enumerate(times):
        print(f"batch {i}: {ms:.1f} ms")
    print("NVTX ranges: domain 'signbench', names slt/" + key + "/<stage>")
    print("Record them with Nsight Systems:")
    print("  " + nsys_command(key, args.backend, args.device, args.profile, args.batches))
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``profile`` to ``signbench``'s subparsers."""
    from harness.ops import BACKENDS

    p = subparsers.add_parser("profile", help="short inference under NVTX ranges; prints the "
                                              "nsys command line")
    p.add_argument("--method", required=True)
    p.add_argument("--backend", default=None, choices=BACKENDS)
    p.add_argument("--device", default="auto")
    p.add_argument("--profile", default="tiny", choices=["tiny", "paper"])
    p.add_argument("--batches", type=positive("--batches"), default=3)
    p.add_argument("--batch-size", type=positive("--batch-size"), default=4)
    p.add_argument("--lang", default="de")
    p.set_defaults(func=cmd_profile)
