"""``signbench check``: does every method build, train and decode at the profile's sizes?

For each method: build it at the profile (``paper``: every width, head count, vocabulary and
frame size of the paper, with the big pretrained parts cut to one layer each by the method's
``check_overrides`` unless ``--full-depth``), run one optimiser step of every training stage
through the real trainer and one beam-search ``generate`` (the method's beam, at most
:data:`CHECK_MAX_LEN` tokens) on 2 synthetic samples at the paper's input sizes (224-px frames,
the 75-joint keypoints, SignX's 1959-d poses), and report OK / FAILED, seconds, peak RSS and
the parameter counts at full depth (built on ``meta``). Exit status 1 when any method failed.
What it proves and what it does not: README, "Running on real data".
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import traceback
from dataclasses import replace
from typing import Any

from harness.cli.common import format_table, parse_overrides, resolve_methods
from harness.cli.params import param_counts

#: frame size of the paper profiles' inputs (every method reads 224 × 224 frames)
PAPER_RESOLUTION = 224
#: samples per check (one batch)
CHECK_SAMPLES = 2
#: the check's samples are the shortest of this many synthetic train samples
CANDIDATES = 16
#: longest output the check's beam search may produce (the method's beam size is kept)
CHECK_MAX_LEN = 16


def _lang(cls: Any, profile: str) -> str:
    from harness.runner import PROFILE_DATA

    return str(cls.data_defaults.get(profile, {}).get("lang", PROFILE_DATA[profile]["lang"]))


def check_samples(lang: str, resolution: int, count: int = CHECK_SAMPLES) -> list[Any]:
    """The ``count`` shortest of the first :data:`CANDIDATES` synthetic train samples."""
    from harness.data import load_dataset

    pool = load_dataset("synthetic", "train", lang=lang, size=CANDIDATES, resolution=resolution)
    order = sorted(range(len(pool)), key=lambda i: (pool[i].num_frames, i))
    return [pool[i] for i in sorted(order[:count])]


def check_method(key: str, profile: str = "paper", overrides: dict[str, Any] | None = None,
                 full_depth: bool = False) -> dict[str, Any]:
    """Build ``key``, one optimiser step per training stage, one generate; never raises (a
    failure is ``status: "FAILED"`` with the error and its traceback)."""
    import torch

    from harness.data import load_dataset
    from harness.evaluate import MethodEvaluator
    from harness.measure import count_parameters
    from harness.measure.memory import peak_rss_mb, reset_peak_rss
    from harness.runner import PROFILE_DATA, build_method, build_text_resources, materialize
    from harness.runner import method_class as get_class
    from harness.train import TrainConfig, Trainer

    overrides = dict(overrides or {})
    cls = get_class(key)
    cut = {} if full_depth or profile != "paper" else dict(cls.check_overrides)
    resolution = PAPER_RESOLUTION if profile == "paper" else int(cls.data_defaults.get(
        profile, {}).get("resolution", PROFILE_DATA[profile]["resolution"]))
    result: dict[str, Any] = {"method": key, "profile": profile, "status": "FAILED",
                              "overrides": overrides, "depth_overrides": cut,
                              "resolution": resolution, "stages": [], "outputs": None}
    gc.collect()
    result["peak_rss_reset"] = reset_peak_rss()
    t0 = time.perf_counter()
    try:
        lang = _lang(cls, profile)
        result["full_depth"] = param_counts(key, profile, lang, overrides)
        texts = load_dataset("synthetic", "train", lang=lang, size=200, resolution=resolution)
        resources = build_text_resources(cls, texts, lang, overrides=overrides)
        torch.manual_seed(0)
        method = build_method(key, profile, resources, {**overrides, **cut})
        result["built"] = count_parameters(method)
        streams = tuple(method.inputs) or ("keypoints",)
        samples = materialize(check_samples(lang, resolution), streams, progress=False)
        result["frames"] = [s.num_frames for s in samples]
        stages = [replace(s, epochs=1) for s in method.stages() if s.epochs > 0]
        steps: dict[str, list[dict[str, float]]] = {s.name: [] for s in stages}
        config = TrainConfig(batch_size=CHECK_SAMPLES, eval_batch_size=CHECK_SAMPLES,
                             checkpoint_dir=None, progress=False, lang=lang,
                             callbacks=[lambda _t, state, losses:
                                        steps[state.stage.name].append(losses)])
        Trainer(method, samples, None, config, tokenizer=resources.tokenizer,
                gloss_vocab=resources.gloss_vocab, stages=stages).fit()
        result["stages"] = [{"stage": name, "steps": len(losses),
                             "loss": losses[-1]["loss"] if losses else None}
                            for name, losses in steps.items()]
        not_one = [s["stage"] for s in result["stages"] if s["steps"] != 1]
        if not_one:
            raise RuntimeError(f"stage(s) {not_one} did not take exactly one optimiser step")
        method.eval()
        batch = MethodEvaluator(method, torch.device("cpu")).collate(samples)
        with torch.inference_mode():
            outputs = method.generate(batch, beam_size=int(method.beam_size),
                                      length_penalty=float(method.length_penalty),
                                      max_len=min(int(method.max_len), CHECK_MAX_LEN))
        if len(outputs) != len(samples) or not all(isinstance(o, str) for o in outputs):
            raise RuntimeError(f"generate returned {outputs!r} for {len(samples)} samples")
        result["outputs"] = outputs
        result["beam_size"] = int(method.beam_size)
        result["status"] = "OK"
    except Exception as err:  # reported as a value: the other methods still run
        result["error"] = f"{type(err).__name__}: {err}"
        result["traceback"] = traceback.format_exc()
    result["seconds"] = time.perf_counter() - t0
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    from harness.measure import format_count

    rss = r["peak_rss_mb"]
    rss_text = (f"{rss / 1024:.1f} GiB" if rss is not None else "n/a") + (
        "" if r.get("peak_rss_reset") else " (process peak)")
    rows = [(r["method"], f"{r['status']}  {r['seconds']:.1f} s  peak RSS {rss_text}")]
    full = r.get("full_depth")
    if full:
        trainable = ", ".join(f"{s['stage']} {format_count(s['trainable'])}"
                              for s in full["stages"])
        rows.append(("  parameters (full depth)",
                     f"{format_count(full['total'])}; trainable: {trainable}"))
    if r.get("built"):
        cut = ", ".join(f"{k}={v}" for k, v in r["depth_overrides"].items()) or "none"
        rows.append(("  parameters (checked)", f"{format_count(r['built']['total'])} "
                                               f"(cut: {cut})"))
    for s in r["stages"]:
        rows.append((f"  stage {s['stage']}", f"{s['steps']} step, loss {s['loss']:.4f}"))
    if r["outputs"] is not None:
        rows.append((f"  generate (beam {r['beam_size']})",
                     " | ".join(o[:40] for o in r["outputs"])))
    if r["status"] != "OK":
        rows.append(("  error", r["error"]))
    return rows


def cmd_check(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set)
    results = []
    for key in resolve_methods(args.methods):
        r = check_method(key, args.profile, overrides, args.full_depth)
        results.append(r)
        if not args.json:
            print(format_table(_rows(r), (f"method ({args.profile})", "check")), flush=True)
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True, default=str))
    failed = [r["method"] for r in results if r["status"] != "OK"]
    if failed and not args.json:
        print(f"signbench check: FAILED: {', '.join(failed)}")
    return 1 if failed else 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``check`` to ``signbench``'s subparsers."""
    p = subparsers.add_parser(
        "check", help="one training step per stage and one generate per method (CPU)")
    p.add_argument("--profile", default="paper", choices=["tiny", "paper"])
    p.add_argument("--methods", nargs="*", default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="method option for every checked method (repeatable)")
    p.add_argument("--full-depth", action="store_true",
                   help="keep every layer of the pretrained parts (needs far more memory)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)
