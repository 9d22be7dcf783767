"""SignX's studies: Table 6 (latent vs pixel vs Transformer pipelines) and Table 5 (modalities).

``signbench experiment signx-efficiency`` — trains the three pipelines of Table 6 on the same
data with the same schedule length per recogniser (``SignXConfig.pipeline`` = ``latent`` /
``pixel`` / ``transformer``; see ``docs/methods/signx.md``), then reports for each: test WER
(gloss decoder, entropy-penalised beam), FPS and power from ``harness.measure.measure_efficiency``
on one test video (``generate``: RGB in, glosses out; power is ``null`` with the reason on CPU),
and FPS relative to the Transformer baseline (the paper: 2.42 / 0.57 / 0.05 FPS).

``signbench experiment signx-modality-ablation`` — Table 5: trains the full latent pipeline once,
then for each pose format zeroes that format's Vid2Pose output before the pose encoder
(``zero_formats``), fine-tunes the recogniser for ``finetune_epochs`` (the paper: 1,000 steps) in
the corrupted latent space, and reports WER, ΔWER and relative degradation against the full model
(which is evaluated without fine-tuning, as in the paper's table; our choice).

Both take ``--set k=v`` overrides for the SignX config plus the data knobs ``train_size``,
``eval_size``, ``resolution``, ``batch_size``, ``epochs`` (recogniser epochs) and, for the
ablation, ``finetune_epochs``. Application layer: it drives ``harness.runner`` / ``train`` /
``evaluate`` around :mod:`baselines.signx`, which does not import it back.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from baselines.signx import REC_STAGE, SignX
from harness.evaluate import evaluate_split, measure_method
from harness.experiments import register_experiment
from harness.method import Stage
from harness.runner import build_method, build_text_resources, load_split, materialize
from harness.train import TrainConfig, Trainer

#: Tiny-profile experiment defaults: the splits and stage lengths of ``signbench run``'s tiny
#: SignX (256 / 32 videos, the method's own epochs), so each pipeline learns as much as the
#: leaderboard run does. A smaller setting (96 / 16 videos, 2 / 2 / 4 epochs) gave WER 100 for
#: every pipeline — only its FPS meant anything. Cost, one thread: signx-efficiency ≈ 280 s CPU
#: (three trainings), signx-modality-ablation ≈ 115 s. ``--set`` overrides win.
TINY_EXPERIMENT = {"train_size": 256, "eval_size": 32}
TINY_EXPERIMENT_METHOD: dict[str, int] = {}

DATA_KEYS = ("train_size", "eval_size", "resolution", "batch_size", "epochs", "finetune_epochs",
             "seed")


def _split_overrides(overrides: Mapping[str, Any] | None, profile: str = "tiny"
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    data = {k: v for k, v in (overrides or {}).items() if k in DATA_KEYS}
    method = {k: v for k, v in (overrides or {}).items() if k not in DATA_KEYS}
    if profile == "tiny":
        data = {**TINY_EXPERIMENT, **data}
        method = {**TINY_EXPERIMENT_METHOD, **method}
    return data, method


def _setup(profile: str, lang: str | None, data_kw: Mapping[str, Any], progress: bool
           ) -> dict[str, Any]:
    """Data splits (streams materialised once) and text resources shared by every variant."""
    defaults = {**SignX.data_defaults.get("tiny", {}), **({} if profile == "tiny" else
                                                          SignX.data_defaults.get(profile, {}))}
    lang = lang or "de"
    seed = int(data_kw.get("seed", 0))
    sizes = {"train": data_kw.get("train_size", defaults.get("train_size")),
             "dev": data_kw.get("eval_size", defaults.get("eval_size")),
             "test": data_kw.get("eval_size", defaults.get("eval_size"))}
    resolution = int(data_kw.get("resolution", defaults.get("resolution", 32)))
    splits = {s: materialize(load_split("synthetic", s, lang=lang, size=sizes[s],
                                        resolution=resolution, seed=seed),
                             ("frames", "poses"), desc=f"signx: load {s}", progress=progress)
              for s in sizes}
    resources = build_text_resources(SignX, splits["train"], lang)
    return {"splits": splits, "resources": resources, "lang": lang, "seed": seed,
            "batch_size": int(data_kw.get("batch_size", defaults.get("batch_size", 16))),
            "eval_batch_size": int(defaults.get("eval_batch_size", 32)),
            "resolution": resolution}


def _train(method: Any, setup: Mapping[str, Any], device: torch.device, progress: bool,
           stages: list[Any] | None = None) -> Any:
    """``Trainer.fit`` (which drives SignX's averaging hooks ``on_epoch_end`` / ``on_fit_end``)."""
    cfg = TrainConfig(batch_size=setup["batch_size"], eval_batch_size=setup["eval_batch_size"],
                      seed=setup["seed"], device=str(device), lang=setup["lang"],
                      progress=progress)
    trainer = Trainer(method, setup["splits"]["train"], setup["splits"]["dev"], cfg,
                      tokenizer=setup["resources"].tokenizer,
                      gloss_vocab=setup["resources"].gloss_vocab, stages=stages)
    return trainer.fit()


def _evaluate(method: Any, setup: Mapping[str, Any], device: torch.device, progress: bool,
              measure: bool = True, iters: int = 5) -> dict[str, Any]:
    gen = {"beam_size": method.beam_size, "length_penalty": method.length_penalty,
           "max_len": method.max_len}
    ev = evaluate_split(method, setup["splits"]["test"], lang=setup["lang"],
                        batch_size=setup["eval_batch_size"], device=device, progress=progress,
                        desc="signx: test", **gen)
    out: dict[str, Any] = {"wer": ev.scores["wer"]}
    if measure:
        out["efficiency"] = measure_method(method, setup["splits"]["test"], videos=1,
                                           device=device, warmup=1, iters=iters, **gen)
    return out


def _build(setup: Mapping[str, Any], profile: str, **overrides: Any) -> SignX:
    torch.manual_seed(setup["seed"])
    return build_method("signx", profile, setup["resources"], overrides)


@register_experiment("signx-efficiency",
                     help="SignX Table 6: FPS, power and WER of latent vs pixel vs Transformer "
                          "pipelines")
def efficiency_experiment(*, out: Path, device: torch.device, profile: str, lang: str | None,
                          overrides: Mapping[str, Any], progress: bool) -> dict[str, Any]:
    data_kw, method_kw = _split_overrides(overrides, profile)
    setup = _setup(profile, lang, data_kw, progress)
    if "epochs" in data_kw:
        method_kw["rec_epochs"] = int(data_kw["epochs"])
    labels = {"transformer": "Transformer + Visual Encoder",
              "pixel": "SignX (CSLR in Pixel Space)",
              "latent": "SignX (CSLR in Latent Space)"}
    rows, data = [], {}
    for pipeline in ("transformer", "pixel", "latent"):
        method = _build(setup, profile, **{**method_kw, "pipeline": pipeline})
        training = _train(method, setup, device, progress)
        res = _evaluate(method, setup, device, progress)
        eff = res["efficiency"]
        params = method.param_report()
        data[pipeline] = {"wer": res["wer"], "efficiency": eff, "params": params,
                          "train_wall_s": training.wall_s}
        rows.append({"method": labels[pipeline], "pipeline": pipeline, "FPS": eff.get("fps"),
                     "power (W)": eff.get("gpu_power_w"), "WER (%)": res["wer"],
                     "latency p50 (ms)": (eff.get("latency_ms") or {}).get("p50"),
                     "inference params (M)": params["inference"] / 1e6})
    base = rows[0]["FPS"] or None
    for row in rows:
        row["FPS vs Transformer"] = (row["FPS"] / base) if base and row["FPS"] else None
    reason = (data["latent"]["efficiency"].get("unavailable") or {}).get("gpu_power_w")
    notes = ("Paper (ASLLRP, GPU): 0.05 / 0.57 / 2.42 FPS, 26.22 / 29.20 / 24.58 W, "
             "43.26 / 32.78 / 26.59 WER for Transformer / pixel / latent. "
             "Same data, seed and recogniser epochs for the three pipelines; FPS = video frames "
             "per second of `generate` (RGB in, glosses out, entropy-penalised beam "
             f"{method.beam_size}) on one test video."
             + (f" Power unavailable: {reason}." if reason else ""))
    return {"title": "SignX Table 6: inference efficiency of latent vs pixel vs Transformer "
                     "pipelines",
            "columns": ["method", "pipeline", "FPS", "FPS vs Transformer", "power (W)",
                        "WER (%)", "latency p50 (ms)", "inference params (M)"],
            "rows": rows, "notes": notes, "data": data}


@register_experiment("signx-modality-ablation",
                     help="SignX Table 5: zero one pose format, fine-tune the recogniser, ΔWER")
def modality_ablation_experiment(*, out: Path, device: torch.device, profile: str,
                                 lang: str | None, overrides: Mapping[str, Any],
                                 progress: bool) -> dict[str, Any]:
    data_kw, method_kw = _split_overrides(overrides, profile)
    setup = _setup(profile, lang, data_kw, progress)
    if "epochs" in data_kw:
        method_kw["rec_epochs"] = int(data_kw["epochs"])
    finetune_epochs = int(data_kw.get("finetune_epochs", 2))
    method = _build(setup, profile, **{**method_kw, "pipeline": "latent"})
    _train(method, setup, device, progress)
    full = _evaluate(method, setup, device, progress, measure=False)["wer"]
    rows = [{"ablated modality": "SignX (full pipeline)", "WER (%)": full, "ΔWER": None,
             "relative degradation (%)": None}]
    state = copy.deepcopy(method.state_dict())
    rec_stage = next(s for s in method.stages() if s.name == REC_STAGE)
    ft_stage = Stage(REC_STAGE, finetune_epochs, lr=rec_stage.lr, trainable=rec_stage.trainable,
                     scheduler="constant", monitor="wer", losses=rec_stage.losses)
    data = {"full": full, "finetune_epochs": finetune_epochs}
    for name, _ in method.config.formats:
        method.load_state_dict(state)
        method.config.zero_formats = (name,)
        method.averager.clear()
        _train(method, setup, device, progress, stages=[ft_stage])
        wer = _evaluate(method, setup, device, progress, measure=False)["wer"]
        rows.append({"ablated modality": f"w/o {name}", "WER (%)": wer, "ΔWER": wer - full,
                     "relative degradation (%)": 100.0 * (wer - full) / full if full else None})
        data[name] = wer
    method.config.zero_formats = ()
    return {"title": "SignX Table 5: modality ablation (format zeroed, recogniser fine-tuned)",
            "columns": ["ablated modality", "WER (%)", "ΔWER", "relative degradation (%)"],
            "rows": rows, "data": data,
            "notes": ("Paper (ASLLRP): full 26.59; w/o SMPLer-X +3.06, DWPose +5.72, MediaPipe "
                      "+2.78, PrimeDepth +4.30, Sapiens +3.94. Each ablation starts from the "
                      f"trained full model and fine-tunes the recogniser for {finetune_epochs} "
                      "epoch(s) with the format's Vid2Pose output zeroed.")}


__all__ = ["efficiency_experiment", "modality_ablation_experiment"]
