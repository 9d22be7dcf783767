"""Tests for ``harness.metrics.significance``, ``harness.leaderboard.stats`` and ``signbench
compare``: CIs and paired p-values against sacrebleu's own command line on the same files, ROUGE-L
and WER CIs against a hand-written bootstrap over the same sentence indices, and the errors for
runs that cannot be compared."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.leaderboard.stats import compare_runs
from harness.metrics import recognition_scores, translation_scores
from harness.metrics.significance import N_BOOTSTRAP, SEED, confidence_intervals, paired_tests

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "results" / "sources" / "runs"
SYSTEMS = ("hypersign", "hfa", "signfuse")


def run_file(method: str, split: str = "test", ext: str = "json") -> Path:
    return RUNS / f"{method}__synthetic-de__{split}__tiny__native__cpu.{ext}"


def outputs(method: str, split: str = "test") -> tuple[list[str], list[str]]:
    records = [json.loads(line) for line in
               run_file(method, split, "jsonl").read_text(encoding="utf-8").splitlines()]
    return [r["hypothesis"] for r in records], [r["reference"] for r in records]


def sacrebleu_cli(tmp_path: Path, refs: list[str], *systems: list[str], extra: list[str]
                  ) -> object:
    """sacrebleu's command line (``python -m sacrebleu``) on files, as JSON."""
    ref = tmp_path / "ref.txt"
    ref.write_text("".join(f"{r}\n" for r in refs), encoding="utf-8")
    hyp_files = []
    for i, hyps in enumerate(systems):
        hyp_files.append(tmp_path / f"sys{i}.txt")
        hyp_files[-1].write_text("".join(f"{h}\n" for h in hyps), encoding="utf-8")
    cmd = [sys.executable, "-m", "sacrebleu", str(ref), "-i", *map(str, hyp_files), "-m", "bleu",
           "-tok", "none", "-s", "floor", "--smooth-value", "0", "-f", "json", "-w", "4", *extra]
    env = {**os.environ, "SACREBLEU_SEED": str(SEED)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


def test_bleu_ci_matches_sacrebleu_command_line(tmp_path: Path) -> None:
    hyps, refs = outputs("hypersign")
    ours = confidence_intervals("translation", hyps, refs, lang="de")["bleu4"]
    cli = sacrebleu_cli(tmp_path, refs, hyps, extra=["--confidence", "-cin", str(N_BOOTSTRAP)])
    assert isinstance(cli, dict)
    assert round(ours["score"], 4) == cli["score"]
    assert round(ours["mean"], 4) == cli["confidence_mean"]
    assert round(ours["ci"], 4) == cli["confidence_var"]
    assert "bs:1000" in ours["signature"] and f"seed:{SEED}" in ours["signature"]
    # the same BLEU-4 as the run's metric, and the run JSON's stored score
    assert ours["score"] == pytest.approx(translation_scores(hyps, refs, "de")["bleu4"])


@pytest.mark.parametrize("test, flag", [("bs", "--paired-bs"), ("ar", "--paired-ar")])
def test_paired_p_values_match_sacrebleu_command_line(tmp_path: Path, test: str, flag: str
                                                      ) -> None:
    systems = [outputs(m) for m in SYSTEMS]
    refs = systems[0][1]
    cli = sacrebleu_cli(tmp_path, refs, *(h for h, _ in systems), extra=[flag])
    ours = paired_tests("translation", [(m, h) for m, (h, _) in zip(SYSTEMS, systems,
                                                                     strict=True)],
                        refs, lang="de", test=test)["bleu4"]
    assert isinstance(cli, list) and len(cli) == len(SYSTEMS)
    assert ours["p_values"][0] is None and cli[0]["BLEU"]["p_value"] is None
    for mine, theirs, score in zip(ours["p_values"][1:], cli[1:], ours["scores"][1:],
                                   strict=True):
        assert mine == pytest.approx(theirs["BLEU"]["p_value"], abs=1e-12)
        assert score == pytest.approx(theirs["BLEU"]["score"], abs=1e-9)
    assert f"{test}:{N_BOOTSTRAP if test == 'bs' else 10000}" in ours["signature"]


def _reference_ci(values: list[float], n: int) -> tuple[float, float]:
    """sacrebleu's CI convention by hand: mean and half the central-95 % width."""
    s = np.sort(np.asarray(values))
    lo = len(s) // 40
    return float(s.mean()), float(0.5 * (s[len(s) - lo - 1] - s[lo]))


def _indices(n: int) -> np.ndarray:
    return np.random.default_rng(SEED).choice(n, size=(N_BOOTSTRAP, n), replace=True)


def test_rouge_l_ci_resamples_the_same_sentences() -> None:
    """Each resample's ROUGE-L, from translation_scores on the resampled corpus, over the very
    indices sacrebleu draws for BLEU."""
    hyps, refs = outputs("hfa")
    ours = confidence_intervals("translation", hyps, refs, lang="de")["rouge_l"]
    per_sentence = [translation_scores([h], [r], "de")["rouge_l"] for h, r in
                    zip(hyps, refs, strict=True)]
    resampled = [float(np.mean([per_sentence[i] for i in idx])) for idx in _indices(len(hyps))]
    mean, ci = _reference_ci(resampled, len(hyps))
    assert ours["score"] == pytest.approx(translation_scores(hyps, refs, "de")["rouge_l"])
    assert ours["mean"] == pytest.approx(mean, abs=1e-3)  # sacrebleu sums float32 statistics
    assert ours["ci"] == pytest.approx(ci, abs=1e-3)


def test_wer_ci_resamples_the_same_sentences() -> None:
    """Each resample's WER from recognition_scores (jiwer, corpus-pooled) on the resampled
    corpus, over sacrebleu's indices."""
    hyps, refs = outputs("signx")
    ours = confidence_intervals("recognition", hyps, refs)["wer"]
    assert ours["score"] == pytest.approx(recognition_scores(hyps, refs)["wer"])
    resampled = [recognition_scores([hyps[i] for i in idx], [refs[i] for i in idx])["wer"]
                 for idx in _indices(len(hyps))]
    mean, ci = _reference_ci(resampled, len(hyps))
    assert ours["mean"] == pytest.approx(mean, abs=1e-3)
    assert ours["ci"] == pytest.approx(ci, abs=1e-3)
    assert "metric:wer" in ours["signature"] and "bs:1000" in ours["signature"]


def test_matrix_is_every_system_as_baseline() -> None:
    systems = [outputs(m) for m in SYSTEMS]
    comps = compare_runs("translation", list(SYSTEMS), [h for h, _ in systems], systems[0][1],
                         lang="de")
    assert [c.metric for c in comps] == ["bleu4", "rouge_l"]
    bleu = comps[0]
    for i in range(3):
        assert bleu.p_values[i][i] is None
        order = [i, *(j for j in range(3) if j != i)]
        direct = paired_tests("translation", [(SYSTEMS[j], systems[j][0]) for j in order],
                              systems[0][1], lang="de")["bleu4"]["p_values"]
        assert [bleu.p_values[i][j] for j in order[1:]] == direct[1:]


def test_compare_command(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(run_file(m)) for m in SYSTEMS]
    assert main(["compare", *paths, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["metric"] for d in data] == ["bleu4", "rouge_l"]
    assert data[0]["runs"] == list(SYSTEMS)
    assert data[0]["p_values"][0][1] == pytest.approx(1 / 1001)  # hypersign vs hfa: all 1000
    assert main(["compare", *paths]) == 0
    out = capsys.readouterr().out
    assert "paired bootstrap resampling" in out and "signature: nrefs:1|bs:1000" in out


def test_compare_rejects_runs_that_differ(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    a, dev = run_file("hypersign"), run_file("hfa", "dev")
    assert main(["compare", str(a), str(dev)]) == 2
    err = capsys.readouterr().err
    assert "field 'split' is 'dev'" in err and "same split" in err and err.count("\n") == 1
    # same split, other samples: a copy of hfa's run whose outputs JSONL names another sample
    shutil.copy(run_file("hfa"), tmp_path / run_file("hfa").name)
    lines = run_file("hfa", ext="jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[2])
    lines[2] = json.dumps({**record, "name": "somewhere_else"})
    (tmp_path / run_file("hfa", ext="jsonl").name).write_text("\n".join(lines) + "\n",
                                                             encoding="utf-8")
    assert main(["compare", str(a), str(tmp_path / run_file("hfa").name)]) == 2
    err = capsys.readouterr().err
    assert "name other samples" in err and "sample 3 is 'somewhere_else'" in err
    assert main(["compare", str(a)]) == 2
    assert "at least two" in capsys.readouterr().err


def test_chinese_is_scored_per_character() -> None:
    """The ``slt`` protocol's CJK handling carries over: the CI's point estimates are the run
    metrics' BLEU-4 and ROUGE-L, and the ROUGE-L signature names character tokens."""
    refs = ["今天北京天气晴朗", "明天上海有小雨", "后天南方气温升高", "周末北方有大风",
            "今晚东部多云", "下周西部降温"]
    hyps = ["今天北京天气晴", "明天上海有雨", "后天南方气温下降", "周末北方有风", "今晚多云",
            "下周西部升温"]
    cis = confidence_intervals("translation", hyps, refs, lang="zh")
    expected = translation_scores(hyps, refs, "zh")
    assert cis["bleu4"]["score"] == pytest.approx(expected["bleu4"])
    assert cis["rouge_l"]["score"] == pytest.approx(expected["rouge_l"])
    assert "tok:char" in cis["rouge_l"]["signature"]
    assert cis["bleu4"]["score"] > 0  # not one unsplit "word" per sentence


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        confidence_intervals("dance", ["a"], ["a"])
    with pytest.raises(ValueError, match="at least two systems"):
        paired_tests("translation", [("a", ["x"])], ["x"])
    with pytest.raises(ValueError, match="unknown test"):
        paired_tests("translation", [("a", ["x"]), ("b", ["y"])], ["x"], test="t")
    with pytest.raises(ValueError):
        confidence_intervals("translation", ["a", "b"], ["a"])  # counts differ
