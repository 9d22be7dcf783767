"""Runner / evaluator / CLI tests on the toy method of ``tests/test_trainer.py`` (tiny sizes)."""

from __future__ import annotations

import argparse
import json
from typing import ClassVar

import pytest
import torch
from test_trainer import TOY_KEY, ToySeq2Seq

import baselines
from harness.cli import build_parser
from harness.cli.common import parse_overrides
from harness.cli.params import param_counts
from harness.cli.profile import nsys_command
from harness.method import SLTMethod, registered
from harness.results import load_run, validate_run
from harness.runner import failure_path, run_method, run_methods, run_path

FAIL_KEY = "toy_failing"
if FAIL_KEY not in registered():

    class _Failing(ToySeq2Seq):
        key = FAIL_KEY

        def training_step(self, batch, state):
            raise RuntimeError("toy failure inside training_step")

    baselines.register(FAIL_KEY)(_Failing)

SMALL = {"train_size": 48, "eval_size": 8, "resolution": 16, "seed": 0, "progress": False,
         "measure_iters": 2}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _parser() -> argparse.ArgumentParser:
    return build_parser()


def test_run_method_writes_valid_runs_and_outputs(tmp_path):
    runs = run_method(TOY_KEY, out=tmp_path, device="cpu", epochs=3,
                      overrides={"epochs": [1, 2]}, **SMALL)
    assert [r["split"] for r in runs] == ["dev", "test"]
    for run in runs:
        path = run_path(tmp_path, run)
        assert path.is_file()
        stored = load_run(path)
        validate_run(stored)
        assert stored["method"] == TOY_KEY and stored["task"] == "translation"
        # 48 samples / tiny batch 16 = 3 steps per epoch, 3 epochs
        assert stored["training"]["epochs"] == 3 and stored["training"]["steps"] == 9
        assert "slt" in stored["accuracy"]["signature"]
        assert stored["efficiency"]["params"]["total"] > 0
        assert stored["efficiency"]["latency_ms"]["n"] == 2
        assert stored["config"]["data"]["test_size"] == 8
        outputs = path.parent / stored["outputs"]
        rows = [json.loads(line) for line in outputs.read_text().splitlines()]
        assert len(rows) == 8 and set(rows[0]) == {"name", "reference", "hypothesis"}
        # the shuffled-reference control of exactly these outputs
        control = stored["control"]
        assert control["samples"] == 8 and control["shuffles"] == 5
        assert control["distinct_outputs"] == len({r["hypothesis"] for r in rows})
        assert control["permutations"] == 199 and 0.0 < control["p_value"] <= 1.0
        assert all(r["name"].startswith(f"synthetic_{run['split']}_") for r in rows)
    run_dir = run_path(tmp_path, runs[0]).parent
    assert (run_dir / "tokenizer").is_dir()
    assert (run_dir / "checkpoints" / "best.json").is_file()


def test_failure_is_recorded_and_others_continue(tmp_path, capsys):
    runs, failures = run_methods([FAIL_KEY, TOY_KEY], out=tmp_path, device="cpu", epochs=2,
                                 **SMALL)
    assert [f.method for f in failures] == [FAIL_KEY]
    record = json.loads(failure_path(tmp_path, FAIL_KEY).read_text())
    assert "toy failure inside training_step" in record["error"]
    assert record["type"] == "RuntimeError"
    assert {r["method"] for r in runs} == {TOY_KEY}
    assert f"{FAIL_KEY} FAILED" in capsys.readouterr().out


def test_cli_run_end_to_end(tmp_path, capsys):
    out, results = tmp_path / "runs", tmp_path / "results"
    args = _parser().parse_args([
        "run", "--methods", TOY_KEY, FAIL_KEY, "--device", "cpu", "--epochs", "2",
        "--out", str(out), "--results", str(results), "--train-size", "48", "--eval-size", "8",
        "--resolution", "16", "--quiet", "--set", "epochs=[1, 1]", "--set", "lr=0.003"])
    code = args.func(args)
    printed = capsys.readouterr()
    assert code == 1  # the failing toy method makes the whole run non-zero
    assert (results / "leaderboard.md").is_file()
    assert TOY_KEY in printed.out and "1/2 methods succeeded" in printed.out
    assert FAIL_KEY in printed.err
    run = load_run(next(out.rglob("toy-seq2seq__*__test__*.json")))
    assert run["config"]["overrides"] == {"epochs": [1, 1], "lr": 0.003}


def test_bad_inputs_give_clear_errors(tmp_path):
    parser = _parser()
    args = parser.parse_args(["run", "--methods", "nope", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match=r"unknown method.*nope.*registered methods"):
        args.func(args)
    for bad in (["novalue"], ["=3"], ["a b=1"], ["x=1", "x=2"]):
        with pytest.raises(ValueError, match="--set"):
            parse_overrides(bad)
    assert parse_overrides(["a=1", "b=mixup", "c=true", "d=[1,2]", "e=0.5"]) == {
        "a": 1, "b": "mixup", "c": True, "d": [1, 2], "e": 0.5}
    with pytest.raises(ValueError, match="cannot be built with overrides"):
        run_method(TOY_KEY, out=tmp_path, device="cpu", overrides={"no_such_option": 1},
                   **SMALL)
    with pytest.raises(ValueError, match="unknown device"):
        run_method(TOY_KEY, out=tmp_path, device="tpu9", **SMALL)
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--epochs", "0"])


def test_params_on_meta_device():
    report = param_counts(TOY_KEY, profile="tiny")
    torch.manual_seed(0)
    from harness.data import load_dataset
    from harness.runner import build_text_resources

    res = build_text_resources(ToySeq2Seq, load_dataset("synthetic", "train", size=200), "de")
    reference = sum(p.numel() for p in ToySeq2Seq(tokenizer=res.tokenizer).parameters())
    assert report["total"] == reference
    assert [s["stage"] for s in report["stages"]] == ["warmup", "main"]
    assert all(s["trainable"] == reference for s in report["stages"])
    assert set(report["report"]) == {"frontend", "encoder", "decoder", "head"}


def test_params_and_profile_cli(capsys):
    parser = _parser()
    args = parser.parse_args(["params", "--profile", "tiny", "--methods", TOY_KEY])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert TOY_KEY in out and "trainable in stage main" in out and "frontend" in out
    args = parser.parse_args(["profile", "--method", TOY_KEY, "--device", "cpu",
                              "--batches", "2", "--batch-size", "2"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "batch 1:" in out
    assert "nsys profile --trace=cuda,nvtx --nvtx-domain-include=signbench" in out
    assert "--method toy_seq2seq" in nsys_command(TOY_KEY, "triton", "cuda", "tiny", 3)


EXTRA_KEY = "toy_extra"
if EXTRA_KEY not in registered():

    class _WithExtras(ToySeq2Seq):
        """The toy method with a default language and the ``extra_metrics`` hook."""

        key = EXTRA_KEY
        data_defaults: ClassVar[dict] = {"tiny": {"lang": "en"}}

        def extra_metrics(self, split, samples, *, device, batch_size, evaluator):
            assert not self.training and not torch.is_grad_enabled()
            return {"split": split, "n": len(samples), "ratio": float("nan")}

    baselines.register(EXTRA_KEY)(_WithExtras)


def test_method_language_default_and_extra_metrics(tmp_path):
    runs = run_method(EXTRA_KEY, out=tmp_path, device="cpu", epochs=2, **SMALL)
    for run in runs:
        stored = load_run(run_path(tmp_path, run))
        assert stored["lang"] == "en"  # the method's default when no language is given
        # the hook's figures land under "extra", per split, JSON-safe (NaN -> null)
        assert stored["extra"] == {"split": run["split"], "n": 8, "ratio": None}
    explicit = run_method(EXTRA_KEY, out=tmp_path, device="cpu", epochs=2, lang="de",
                          **SMALL)
    assert {r["lang"] for r in explicit} == {"de"}  # an explicit language wins
    plain = run_method(TOY_KEY, out=tmp_path, device="cpu", epochs=2, **SMALL)
    assert plain[0]["lang"] == "de" and "extra" not in plain[0]


def test_train_texts_reach_methods_that_ask_for_them():
    from harness.runner import build_text_resources, load_split

    train = load_split("synthetic", "train", lang="de", size=12, resolution=16, seed=0)

    class Wants(SLTMethod):
        needs_text = False
        needs_train_texts = True

    class DoesNot(SLTMethod):
        needs_text = False

    assert build_text_resources(Wants, train, "de").train_texts == [s.text for s in train]
    assert build_text_resources(DoesNot, train, "de").train_texts is None
