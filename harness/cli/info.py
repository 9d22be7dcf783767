"""``signbench info``: versions, methods, ops backends per device, native CUDA build, GPU, NVML.

Four tables for people (packages, methods — built-in and installed plug-ins, with the problem
of a plug-in that cannot be used —, ops backends, hardware), or everything as one JSON object
with ``--json`` (:func:`collect_info`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness import __version__
from harness.cli.common import format_table

PACKAGES = ("torch", "triton", "transformers", "peft", "tokenizers", "sacrebleu", "rouge-score",
            "jiwer", "pandas", "matplotlib", "nvtx", "nvidia-ml-py")


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def collect_methods() -> dict[str, dict[str, str | None]]:
    """Every method by name: ``source`` (the built-in's module, or the plug-in's entry point
    and distribution) and ``error`` (why a plug-in cannot be used; ``None``: it can)."""
    import baselines
    from harness.method import builder_class, registered

    plugins = baselines.list_plugins()
    methods: dict[str, dict[str, str | None]] = {
        name: {"source": f"built-in ({builder_class(builder).__module__})", "error": None}
        for name, builder in registered().items() if name not in plugins}
    for name, plugin in plugins.items():
        methods[name] = {"source": f"plug-in {plugin.target} ({plugin.distribution})",
                         "error": plugin.error}
    return dict(sorted(methods.items()))


def collect_info() -> dict[str, Any]:
    """Everything ``signbench info`` reports, as a JSON-ready dict."""
    import torch

    from harness import ops
    from harness.measure import capture_environment
    from harness.measure.power import nvml_available
    from harness.ops.dispatch import native_module

    devices = ["cpu", "cuda"]
    backends = {
        device: {name: dict(zip(("available", "reason"), ops.availability(name, device),
                                strict=True))
                 for name in ops.BACKENDS}
        for device in devices
    }
    native = native_module()
    nvml_ok, nvml_reason = nvml_available()
    env = capture_environment()
    return {
        "signbench": __version__,
        "packages": {name: _package_version(name) for name in PACKAGES},
        "methods": collect_methods(),
        "backends": backends,
        "default_backend": {d: ops.default_backend(d) for d in devices if backends[d]["torch"]
                            ["available"]},
        "native": {"built": native is not None,
                   "cuda_kernels": bool(native is not None and native.has_cuda())},
        "cuda_available": torch.cuda.is_available(),
        "gpu": env.get("gpu"),
        "gpu_reason": env.get("gpu_reason"),
        "nvml": {"available": nvml_ok, "reason": nvml_reason},
        "environment": env,
    }


def cmd_info(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True, default=str))
        return 0
    env = info["environment"]
    rows = [("signbench", info["signbench"]),
            ("git commit", f"{env.get('git_commit') or '—'}"
                           f"{' (dirty)' if env.get('git_dirty') else ''}"),
            ("python", str(env.get("python"))),
            ("platform", str(env.get("platform")))]
    rows += [(name, version or "not installed") for name, version in info["packages"].items()]
    print(format_table(rows, ("package", "version")))
    print()
    rows = [(name, m["source"] if m["error"] is None else f"{m['source']}: CANNOT BE USED: "
                                                          f"{m['error']}")
            for name, m in info["methods"].items()]
    print(format_table(rows, ("method", "source")))
    print()
    backend_rows = []
    for device, table in info["backends"].items():
        for name, status in table.items():
            mark = "yes" if status["available"] else "no "
            backend_rows.append((f"{device}/{name}", f"{mark}  {status['reason']}"))
    print(format_table(backend_rows, ("ops backend", "available")))
    print()
    gpu = info["gpu"]
    gpu_text = (f"{gpu.get('name')} (driver {gpu.get('driver')})" if gpu
                else f"none ({info['gpu_reason']})")
    nvml = info["nvml"]
    rows = [("native extension", "built" if info["native"]["built"] else "NOT built"),
            ("native CUDA kernels", "yes" if info["native"]["cuda_kernels"] else "no"),
            ("default backend", ", ".join(f"{d}: {b}" for d, b in
                                          info["default_backend"].items())),
            ("GPU", gpu_text),
            ("NVML power/energy", "yes" if nvml["available"] else f"no ({nvml['reason']})")]
    print(format_table(rows, ("hardware", "status")))
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``info`` to ``signbench``'s subparsers."""
    p = subparsers.add_parser("info", help="versions, backends, CUDA build, GPU and NVML status")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_info)
