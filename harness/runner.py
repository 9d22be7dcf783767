"""``run_method``: data → tokenizer → method → training → dev/test scores → efficiency → run JSONs.

One call runs one registered method end to end and writes, under :func:`run_directory`
(``<out>/<method>__<dataset>-<lang>__<profile>__<backend>__<device>[__<variant>]/``), the text
tokenizer and the gloss / pseudo-gloss vocabularies the method needs, ``checkpoints/``
(``last``, ``best``) and, per split (``dev``, ``test``), the per-sample JSONL and the run JSON
(schema ``signbench.run/1``; :func:`run_path` gives its path). :func:`run_methods` runs several
methods, recording each failure as a value; :func:`summarize` prints one line per run.

Settings resolve in this order: explicit arguments, then the method's attributes (batch sizes),
then its optional ``data_defaults = {"tiny": {...}, "paper": {...}}``, then :data:`PROFILE_DATA`
(``tiny``: 256 train / 32 eval samples at resolution 32; ``paper``: the whole corpus at 64; text
language ``de``). ``tiny`` is sized so the default ``signbench run`` (every method, synthetic
corpus) fits 15 minutes on 2 CPU cores, ~2 minutes per method.

Optional method hooks (all defaulted, none required by ``SLTMethod``): ``batch_size`` /
``eval_batch_size``, ``beam_size``, ``length_penalty``, ``max_len``, ``extra_metrics(...)``,
``tokenizer_vocab_size``, ``tokenizer_kind``, ``needs_pseudo_gloss``, ``needs_train_texts``,
``data_defaults``, ``normalize_frames`` and ``param_report()``.

Distributed: under ``torchrun`` every rank loads data and trains; rank 0 alone evaluates,
measures and writes; the other ranks return an empty list.

Design notes: docs/components.md (section "harness.runner").
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from harness.data.sample import Sample
from harness.pretrain.data import (  # one layer down; the runner re-exports them
    PROFILE_DATA,
    data_setting,
    load_split,
)
from harness.results import atomic_write_json, run_filename, slug, variant_slug, write_run

#: In-memory stream cache limit per run (bytes); samples past it are loaded lazily each time.
CACHE_LIMIT_BYTES = 4 * 2**30
SPLITS_EVALUATED = ("dev", "test")


# --------------------------------------------------------------------------------------- helpers


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → ``cuda`` when available, else ``cpu``; bad names raise ``ValueError``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: only cpu and cuda are supported")
    return dev


def device_name(device: torch.device) -> str:
    """The run JSON's ``device``: ``"cpu"`` or the GPU name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def method_class(key: str) -> Any:
    """The class registered under ``key`` (or the builder itself when it is a function)."""
    import baselines
    from harness.method import builder_class, plugin_error, registered

    known = baselines.list_methods()
    if key not in known:
        if (problem := plugin_error(key)) is not None:
            raise problem  # an installed plug-in that cannot be used, and why
        raise ValueError(f"unknown method {key!r}; registered methods: "
                         f"{', '.join(known) or 'none'}")
    return builder_class(registered()[key])


def run_directory(out: str | Path, run: Mapping[str, Any]) -> Path:
    """``<out>/<method>__<dataset>-<lang>__<profile>__<backend>__<device>[__<variant>]``."""
    parts = [slug(run["method"]), f"{slug(run['dataset'])}-{slug(run['lang'])}",
             slug(run["profile"]), slug(run["backend"]), slug(run["device"])]
    if run.get("variant"):
        parts.append(variant_slug(run["variant"]))
    return Path(out) / "__".join(parts)


def variant_name(overrides: Mapping[str, Any] | None) -> str | None:
    """The run's ``variant``: its method overrides as ``k=v,k=v`` (sorted), or None."""
    if not overrides:
        return None
    return ",".join(f"{k}={overrides[k]}" for k in sorted(overrides))


def run_path(out: str | Path, run: Mapping[str, Any]) -> Path:
    """Where :func:`run_method` wrote ``run``."""
    return run_directory(out, run) / run_filename(run)


def _json_safe(obj: Any) -> Any:
    """Plain JSON (tuples → lists, odd types → str, non-finite floats → None)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    return str(obj)


def _stream_bytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_stream_bytes(v) for v in value.values())
    return 0


def materialize(samples: Sequence[Sample], streams: Sequence[str], desc: str = "load",
                progress: bool = True, limit_bytes: int = CACHE_LIMIT_BYTES) -> list[Sample]:
    """Samples whose ``streams`` are loaded once and held in memory (up to ``limit_bytes``)."""
    out: list[Sample] = []
    used = 0
    for s in tqdm(samples, desc=desc, unit="sample", disable=not progress, leave=False):
        if used >= limit_bytes:
            out.append(s)
            continue
        loaders = dict(s.loaders)
        for stream in streams:
            if s.has(stream):
                value = s.load(stream)
                used += _stream_bytes(value)
                loaders[stream] = (lambda v=value: v)
        out.append(Sample(name=s.name, num_frames=s.num_frames, signer=s.signer, gloss=s.gloss,
                          text=s.text, fingerspelling=s.fingerspelling, source=s.source,
                          loaders=loaders))
    return out


@dataclass
class TextResources:
    """What the runner trains on the train split for a method (``None`` when not needed)."""

    tokenizer: Any = None
    gloss_vocab: Any = None
    pseudo_gloss: Any = None
    train_texts: list[str] | None = None
    saved: dict[str, str] = field(default_factory=dict)


#: method options naming a Hugging Face language-model folder whose tokenizer comes with it
PRETRAINED_TEXT_OPTIONS = ("init", "llm_init")


def pretrained_tokenizer_dir(overrides: Mapping[str, Any] | None) -> Path | None:
    """The folder of ``init=`` / ``llm_init=`` when it holds a ``tokenizer.json``, else None."""
    for option in PRETRAINED_TEXT_OPTIONS:
        value = (overrides or {}).get(option)
        if isinstance(value, (str, Path)) and (Path(value) / "tokenizer.json").is_file():
            return Path(value)
    return None


def build_text_resources(cls: Any, train: Sequence[Sample], lang: str,
                         save_dir: Path | None = None,
                         overrides: Mapping[str, Any] | None = None) -> TextResources:
    """Tokenizer / gloss vocabulary / pseudo-gloss extractor fitted on the train split; the
    tokenizer is the pretrained model's own when ``init=`` / ``llm_init=`` in ``overrides``
    names a folder with one (``saved["tokenizer_from"]`` records it)."""
    from harness.text import GlossVocab, PseudoGlossExtractor, TextTokenizer, train_tokenizer

    res = TextResources()
    texts = [s.text for s in train if s.text]
    if cls.needs_text:
        if not texts:
            raise ValueError("the method needs text, but the training split has none")
        pretrained = pretrained_tokenizer_dir(overrides)
        if pretrained is not None:
            res.tokenizer = TextTokenizer.from_pretrained_dir(pretrained, lang)
            res.saved["tokenizer_from"] = str(pretrained)
        else:
            res.tokenizer = train_tokenizer(texts, vocab_size=cls.tokenizer_vocab_size,
                                            lang=lang, kind=cls.tokenizer_kind)
        if save_dir is not None:
            res.saved["tokenizer"] = str(res.tokenizer.save(save_dir / "tokenizer"))
    if cls.needs_gloss or cls.task == "recognition":
        glosses = [s.gloss for s in train if s.gloss]
        if not glosses:
            raise ValueError("the method needs glosses, but the training split has none")
        res.gloss_vocab = GlossVocab.build(glosses)
        if save_dir is not None:
            res.saved["gloss_vocab"] = str(res.gloss_vocab.save(save_dir / "gloss_vocab.json"))
    if cls.needs_train_texts:
        res.train_texts = texts
    if cls.needs_pseudo_gloss:
        res.pseudo_gloss = PseudoGlossExtractor(lang).fit(texts)
        if save_dir is not None:
            res.saved["pseudo_gloss"] = str(res.pseudo_gloss.save(save_dir / "pseudo_gloss.json"))
    return res


def build_method(key: str, profile: str, resources: TextResources,
                 overrides: Mapping[str, Any] | None = None) -> Any:
    """``baselines.get_method`` with the text resources the method needs; bad overrides raise
    ``ValueError`` naming them."""
    import baselines

    cls = method_class(key)
    kwargs = dict(overrides or {})
    if cls.needs_text and resources.tokenizer is not None:
        kwargs["tokenizer"] = resources.tokenizer
    if cls.needs_gloss and resources.gloss_vocab is not None:
        kwargs["gloss_vocab"] = resources.gloss_vocab
    if cls.needs_pseudo_gloss:
        kwargs["pseudo_gloss"] = resources.pseudo_gloss
    if cls.needs_train_texts:
        kwargs["train_texts"] = resources.train_texts
    try:
        return baselines.get_method(key, profile, **kwargs)
    except TypeError as e:
        raise ValueError(f"method {key!r} cannot be built with overrides "
                         f"{sorted(overrides or {})}: {e}") from None


def _setting(name: str, explicit: Any, cls: Any, method: Any, profile: str) -> Any:
    """``data_setting``, with the built method's own attribute (e.g. ``batch_size``) before
    the class's data defaults."""
    if explicit is None and method is not None and getattr(method, name, None) is not None:
        return getattr(method, name)
    return data_setting(name, cls, profile, explicit)


def standins_enabled(explicit: bool | None) -> bool:
    """``explicit``, else ``$SIGNBENCH_STANDINS`` (``0`` / ``false`` / ``no`` / ``off``: off)."""
    if explicit is not None:
        return explicit
    return os.environ.get("SIGNBENCH_STANDINS", "1").strip().lower() not in (
        "0", "false", "no", "off")


def _standins(key: str, profile: str, overrides: Mapping[str, Any] | None,
              enabled: bool | None, cache: str | Path | None, **data: Any
              ) -> tuple[dict[str, str], dict[str, Any] | None]:
    """({field: stand-in path} to add to the overrides, the run JSON's ``standins``) — or
    nothing when off or when the method declares none (every field set by the user)."""
    if not standins_enabled(enabled):
        return {}, None
    from harness.pretrain import ensure_standins

    options = data.pop("data_options")
    root = data.pop("root")
    paths, summary = ensure_standins(key, profile, overrides, root=cache, data_root=root,
                                     data_options=options, **data)
    return (paths, summary) if summary["standins"] else ({}, None)


# ------------------------------------------------------------------------------------------ run


def run_method(key: str, dataset: str = "synthetic", lang: str | None = None,
               profile: str = "tiny",
               backend: str | None = None, device: str = "auto", epochs: int | None = None,
               out: str | Path = "runs", seed: int = 0, train_size: int | None = None,
               eval_size: int | None = None, resolution: int | None = None,
               resume: bool = False, overrides: Mapping[str, Any] | None = None, *,
               root: str | Path | None = None, batch_size: int | None = None,
               checkpoint_every_steps: int | None = None, measure_iters: int | None = None,
               data_options: Mapping[str, Any] | None = None,
               standins: bool | None = None, standin_cache: str | Path | None = None,
               progress: bool = True, callbacks: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Train, evaluate (dev, test), measure and write run JSONs for method ``key``.

    Returns the run dicts (already validated and written; :func:`run_path` gives each file).
    Sizes/resolution/language default per profile (docs/components.md, "harness.runner");
    ``data_options`` go to a real dataset's reader (docs/data.md); ``callbacks`` are handed to
    the trainer (``TrainConfig.callbacks``). ``standins``: start the method from the
    pretrained stand-ins it declares (``SLTMethod.standins``), trained into ``standin_cache``
    first when missing (``harness.pretrain``); ``None`` = on unless ``$SIGNBENCH_STANDINS`` is
    ``0``. A field the user set in ``overrides`` (a real checkpoint) is never replaced.
    """
    from harness import ops
    from harness.data.needs import check_streams, required_annotations
    from harness.evaluate import evaluate_split, measure_method
    from harness.measure import capture_environment
    from harness.method import scale_epochs
    from harness.ops.dispatch import resolve as resolve_backend
    from harness.train import TrainConfig, Trainer, distributed, train_config_dict

    if profile not in PROFILE_DATA:
        raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILE_DATA)}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    cls = method_class(key)
    if overrides and getattr(cls, "config_class", None) is not None:
        # typed now (ConfigError naming the field otherwise): the variant name is canonical,
        # --set use_sst=False and use_sst=false name the same run
        overrides = cls.coerce_overrides(overrides)
    dev = resolve_device(device)
    if backend is not None:
        resolve_backend(backend, dev)  # unknown / unavailable backend: a clear error now
    backend_name = resolve_backend(backend, dev)
    info = distributed.init_distributed(dev)
    if dev.type == "cuda" and info.enabled:
        dev = torch.device("cuda", info.local_rank)

    train_size = _setting("train_size", train_size, cls, None, profile)
    eval_size = _setting("eval_size", eval_size, cls, None, profile)
    resolution = _setting("resolution", resolution, cls, None, profile)
    lang = str(_setting("lang", lang, cls, None, profile))
    identity = {"method": key, "dataset": dataset, "lang": lang, "profile": profile,
                "backend": backend_name, "device": device_name(dev),
                "variant": variant_name(overrides)}
    run_dir = run_directory(out, identity)

    annotations = required_annotations(cls)
    options = None if dataset == "synthetic" else {**(data_options or {}), "require": annotations}
    splits = {split: load_split(dataset, split, lang=lang, seed=seed, root=root,
                                size=train_size if split == "train" else eval_size,
                                resolution=resolution, options=options)
              for split in ("train", *SPLITS_EVALUATED)}
    check_streams(key, dataset, splits, (), annotations=annotations)
    standin_args = dict(dataset=dataset, lang=lang, train_size=train_size,
                        resolution=resolution, seed=seed, root=root, data_options=options)
    if info.is_main:  # rank 0 trains what is missing; the others then find it in the cache
        standin_paths, standin_summary = _standins(key, profile, overrides, standins,
                                                   standin_cache, progress=progress,
                                                   **standin_args)
    distributed.barrier()
    if not info.is_main:
        standin_paths, standin_summary = _standins(key, profile, overrides, standins,
                                                   standin_cache, progress=False,
                                                   **standin_args)
    build_overrides = {**(overrides or {}), **standin_paths}
    resources = build_text_resources(cls, splits["train"], lang,
                                     run_dir if info.is_main else None, build_overrides)
    torch.manual_seed(seed)  # method initialisation is part of the seeded run
    method = build_method(key, profile, resources, build_overrides)
    streams = tuple(method.inputs) or ("keypoints",)
    check_streams(key, dataset, splits, streams, method.pose_formats, hints=method.stream_hints)
    data = {split: materialize(samples, streams, desc=f"{key}: load {split}",
                               progress=progress and info.is_main)
            for split, samples in splits.items()}

    stages = scale_epochs(method.stages(), epochs)
    cfg = TrainConfig(
        batch_size=int(_setting("batch_size", batch_size, cls, method, profile)),
        eval_batch_size=int(_setting("eval_batch_size", None, cls, method, profile)),
        seed=seed, device=str(dev), checkpoint_dir=run_dir / "checkpoints", resume=resume,
        checkpoint_every_steps=checkpoint_every_steps,
        length_penalty=float(method.length_penalty),
        max_len=int(method.max_len), lang=lang, dataset=dataset,
        progress=progress, callbacks=list(callbacks),
        # the checkpoint fingerprint: --resume refuses a checkpoint written with other settings
        settings=_json_safe({"dataset": dataset, "lang": lang, "profile": profile,
                             "backend": backend_name, "resolution": resolution,
                             "train_size": train_size, "eval_size": eval_size,
                             "monitor_size": _setting("monitor_size", None, cls, None, profile),
                             "overrides": dict(overrides or {}),
                             "data_options": dict(data_options or {}),
                             "standins": standin_summary["hash"] if standin_summary else None}))
    backend_ctx = ops.use_backend(backend) if backend is not None else contextlib.nullcontext()
    with backend_ctx:
        # checkpoint selection reads the first monitor_size dev videos (a beam search of the
        # whole dev split every epoch would dominate a tiny run); dev and test are scored whole
        monitor_size = _setting("monitor_size", None, cls, method, profile)
        monitor = data["dev"] if monitor_size is None else data["dev"][:int(monitor_size)]
        trainer = Trainer(method, data["train"], monitor, cfg,
                          tokenizer=resources.tokenizer, gloss_vocab=resources.gloss_vocab,
                          stages=stages)
        result = trainer.fit()
        if not info.is_main:
            distributed.barrier()
            return []

        beam = int(method.beam_size)
        gen = {"beam_size": beam, "length_penalty": cfg.length_penalty, "max_len": cfg.max_len}
        evaluations = {}
        for split in SPLITS_EVALUATED:
            run_name = run_filename({**identity, "split": split})
            evaluations[split] = evaluate_split(
                method, data[split], lang=lang, dataset=dataset,
                batch_size=cfg.eval_batch_size, device=dev, progress=progress,
                outputs_path=run_dir / (run_name.removesuffix(".json") + ".jsonl"),
                desc=f"{key}: evaluate {split}", **gen)
        iters = int(measure_iters or PROFILE_DATA[profile]["measure_iters"])
        efficiency = measure_method(method, data["test"], videos=1, device=dev,
                                    warmup=2, iters=iters, **gen)
        extras = {split: _extra_metrics(method, split, data[split], dev, cfg.eval_batch_size)
                  for split in SPLITS_EVALUATED}
    distributed.barrier()

    environment = capture_environment()
    training = _json_safe(result.summary())
    config = _json_safe({
        "method": method.config_dict(),
        "overrides": dict(overrides or {}),
        "stages": [asdict(s) for s in stages],
        "train": train_config_dict(cfg),
        "generation": gen,
        "data": {"train_size": len(data["train"]), "dev_size": len(data["dev"]),
                 "monitor_size": len(monitor),
                 "test_size": len(data["test"]), "resolution": resolution, "seed": seed,
                 "streams": list(streams), "options": dict(data_options or {})},
        "text": resources.saved,
        "epochs_requested": epochs,
    })
    runs = []
    for split, ev in evaluations.items():
        run = {"schema": "signbench.run/1", **identity, "split": split, "task": method.task,
               "accuracy": _json_safe(ev.scores), "efficiency": efficiency,
               "training": training, "environment": environment,
               "outputs": ev.outputs_path.name, "config": config}
        if standin_summary is not None:
            run["standins"] = standin_summary
        if ev.control is not None:
            run["control"] = _json_safe(ev.control)
        if extras[split] is not None:
            run["extra"] = extras[split]
        write_run(run, run_dir)
        runs.append(run)
    return runs


def _extra_metrics(method: Any, split: str, samples: Sequence[Sample], device: torch.device,
                   batch_size: int) -> dict[str, Any] | None:
    """The method's optional ``extra_metrics`` for a split (JSON-safe), or None without the hook.

    A method reports figures beyond the task's scores here (SignBind-LLM's letter accuracy and
    gate statistics, SignX's recognition WER next to its translation scores); the run JSON keeps
    them under ``extra``.
    """
    from harness.evaluate import MethodEvaluator

    method.eval()
    with torch.no_grad():
        extra = method.extra_metrics(split, samples, device=device, batch_size=batch_size,
                                     evaluator=MethodEvaluator(method, device))
    if extra is None:
        return None
    if not isinstance(extra, Mapping):
        raise TypeError(f"{type(method).__name__}.extra_metrics must return a dict, got "
                        f"{type(extra).__name__}")
    return _json_safe(extra)


@dataclass
class Failure:
    """A method that failed, recorded as a value (``signbench run`` goes on with the others)."""

    method: str
    error: str
    kind: str
    traceback: str
    path: Path | None = None


def failure_path(out: str | Path, key: str) -> Path:
    return Path(out) / "failures" / f"{slug(key)}.json"


def run_methods(keys: Sequence[str], *, out: str | Path = "runs",
                **kwargs: Any) -> tuple[list[dict[str, Any]], list[Failure]]:
    """:func:`run_method` for each key; a failure is written to ``<out>/failures/<key>.json`` and
    printed, and the next method runs. A later success removes the method's old failure file."""
    runs: list[dict[str, Any]] = []
    failures: list[Failure] = []
    for key in keys:
        try:
            runs += run_method(key, out=out, **kwargs)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # failures are recorded as values
            failure = Failure(method=key, error=str(e) or type(e).__name__,
                              kind=type(e).__name__, traceback=traceback.format_exc())
            failure.path = atomic_write_json(failure_path(out, key), {
                "method": key, "error": failure.error, "type": failure.kind,
                "traceback": failure.traceback,
                "settings": _json_safe({k: v for k, v in kwargs.items()})})
            failures.append(failure)
            print(f"signbench: {key} FAILED ({failure.kind}: {failure.error}); "
                  f"details in {failure.path}", flush=True)
        else:
            failure_path(out, key).unlink(missing_ok=True)
    return runs, failures


def summarize(runs: Sequence[Mapping[str, Any]]) -> str:
    """One line per run: method, split, main score, latency."""
    lines = []
    for r in runs:
        acc = r.get("accuracy") or {}
        main = (f"BLEU-4 {acc['bleu4']:.2f}" if "bleu4" in acc
                else f"WER {acc['wer']:.2f}" if "wer" in acc else "no score")
        lat = (r.get("efficiency") or {}).get("latency_ms") or {}
        p50 = f"{lat['p50']:.1f} ms" if "p50" in lat else "n/a"
        lines.append(f"{r['method']:<12} {r['split']:<5} {main:<14} latency p50 {p50}")
    return "\n".join(lines)


def dumps(obj: Any) -> str:
    return json.dumps(_json_safe(obj), indent=2, sort_keys=True, ensure_ascii=False)
