"""``harness.experiments``: registration, the built-in experiment list, result checks, JSON +
markdown records, the CLI, and SignX's two studies (Tables 5 and 6) end to end."""

from __future__ import annotations

import argparse
import json

import pytest

from harness import experiments
from harness.cli.experiment import add_parser as add_experiment_command
from harness.experiments import register_experiment, run_experiment, validate_result

CALLS: list[dict] = []

if "toy-study" not in experiments._EXPERIMENTS:

    @register_experiment("toy-study", help="two pipelines of a toy study")
    def _toy(*, out, device, profile, lang, overrides, progress):
        CALLS.append({"out": out, "device": str(device), "profile": profile, "lang": lang,
                      "overrides": overrides})
        scale = float(overrides.get("scale", 1.0))
        return {"title": "Toy study", "columns": ["pipeline", "FPS", "WER"],
                "rows": [{"pipeline": "latent", "FPS": 2.5 * scale, "WER": 20.0},
                         {"pipeline": "pixel", "FPS": 0.5 * scale, "WER": None}],
                "notes": "ratios are what matter", "data": {"ratio": 5.0}}


def test_run_experiment_writes_json_and_markdown(tmp_path):
    record, json_path, md_path = run_experiment(
        "toy-study", out=tmp_path / "runs", results=tmp_path / "results", device="cpu",
        overrides={"scale": 2})
    assert json_path == tmp_path / "runs" / "experiments" / "toy-study.json"
    stored = json.loads(json_path.read_text())
    assert stored == record
    assert stored["schema"] == "signbench.experiment/1"
    assert stored["rows"][0] == {"pipeline": "latent", "FPS": 5.0, "WER": 20.0}
    assert stored["settings"]["device_name"] == "cpu"
    assert stored["environment"]["git_commit"] is not None or "git_commit" in stored["environment"]
    assert CALLS[-1]["out"] == tmp_path / "runs" / "experiments" / "toy-study"
    assert CALLS[-1]["overrides"] == {"scale": 2}
    md = md_path.read_text()
    assert md_path == tmp_path / "results" / "experiments" / "toy-study.md"
    assert "# Toy study" in md and "| latent" in md and "—" in md  # None shows as a dash
    assert "sources/experiments/toy-study.json" in md
    assert (tmp_path / "results" / "sources" / "experiments" / "toy-study.json").is_file()


@pytest.mark.parametrize(("result", "message"), [
    ([], "expected a dict"),
    ({"title": "t", "columns": ["a"]}, "no 'rows'"),
    ({"title": "t", "columns": [], "rows": []}, "non-empty list"),
    ({"title": "t", "columns": ["a"], "rows": [{"b": 1}]}, r"rows\[0\] has keys \['b'\]"),
])
def test_bad_results_are_rejected(result, message):
    with pytest.raises((TypeError, ValueError), match=message):
        validate_result("x", result)


def test_unknown_and_duplicate_names():
    with pytest.raises(ValueError, match=r"unknown experiment 'nope'.*toy-study"):
        run_experiment("nope", results=None)
    with pytest.raises(ValueError, match="registered twice"):
        register_experiment("toy-study")(lambda **kw: {})
    with pytest.raises(ValueError, match="lower-case"):
        register_experiment("Bad Name")


def test_builtin_experiments_are_listed_explicitly():
    assert experiments.BUILTIN_EXPERIMENTS == ("harness.experiments.signx",)
    names = [e.name for e in experiments.list_experiments()]
    assert {"signx-efficiency", "signx-modality-ablation"} <= set(names)


def test_cli_lists_and_runs(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="signbench")
    add_experiment_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["experiment", "--list"])
    assert args.func(args) == 0
    assert "toy-study" in capsys.readouterr().out
    args = parser.parse_args(["experiment", "toy-study", "--device", "cpu", "--quiet",
                              "--out", str(tmp_path / "r"), "--results", str(tmp_path / "res"),
                              "--set", "scale=3"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "7.5" in out and "wrote" in out


def test_table5_and_table6_experiments_run_end_to_end(tmp_path):
    """Both SignX experiments train, evaluate and tabulate at a miniature size: three pipelines
    with FPS ratios to the Transformer baseline (Table 6), and one row per zeroed pose format with
    ΔWER against the full model (Table 5)."""
    from harness.data.synthetic import POSE_FORMATS
    from harness.experiments import run_experiment
    from harness.experiments.signx import TINY_EXPERIMENT

    assert TINY_EXPERIMENT["train_size"] >= 256  # the committed tables' setting, not a toy one
    mini = {"train_size": 6, "eval_size": 2, "batch_size": 3, "p2g_epochs": 1, "v2p_epochs": 1,
            "rec_epochs": 1}
    record, _, md = run_experiment("signx-efficiency", out=tmp_path, results=tmp_path / "res",
                                   device="cpu", overrides=mini, progress=False)
    rows = record["rows"]
    assert [r["pipeline"] for r in rows] == ["transformer", "pixel", "latent"]
    assert all(r["FPS"] > 0 and r["WER (%)"] >= 0 for r in rows)
    for row in rows:
        assert row["FPS vs Transformer"] == pytest.approx(row["FPS"] / rows[0]["FPS"])
    assert md is not None and md.read_text().count("| SignX (CSLR in") == 2

    record, _, _ = run_experiment("signx-modality-ablation", out=tmp_path, results=None,
                                  device="cpu", overrides={**mini, "finetune_epochs": 1},
                                  progress=False)
    rows = record["rows"]
    full = rows[0]["WER (%)"]
    assert [r["ablated modality"] for r in rows[1:]] == [f"w/o {n}" for n in POSE_FORMATS]
    for row in rows[1:]:
        assert row["ΔWER"] == pytest.approx(row["WER (%)"] - full)
