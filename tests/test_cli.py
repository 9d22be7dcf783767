"""The signbench command line: info, score and leaderboard, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sacrebleu.metrics import BLEU

from harness.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "score"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def direct_bleu4(hyp_file: Path, ref_file: Path, char_level: bool) -> float:
    """BLEU-4 of the slt protocol computed straight with sacrebleu (independent of harness)."""
    hyps = hyp_file.read_text(encoding="utf-8").splitlines()
    refs = ref_file.read_text(encoding="utf-8").splitlines()
    if char_level:
        hyps = [" ".join(h.replace(" ", "")) for h in hyps]
        refs = [" ".join(r.replace(" ", "")) for r in refs]
    bleu = BLEU(max_ngram_order=4, tokenize="none", smooth_method="floor", smooth_value=0.0,
                effective_order=True)
    return bleu.corpus_score(hyps, [refs]).score


@pytest.mark.parametrize(("lang", "char_level"), [("de", False), ("zh", True)])
def test_score_slt_matches_sacrebleu(capsys, lang, char_level):
    hyp, ref = EXAMPLES / f"{lang}.hyp", EXAMPLES / f"{lang}.ref"
    code, out, _ = run_cli(capsys, "score", "--hyp", str(hyp), "--ref", str(ref),
                           "--lang", lang, "--json")
    assert code == 0
    scores = json.loads(out)
    assert scores["bleu4"] == pytest.approx(direct_bleu4(hyp, ref, char_level))
    assert scores["signature"].startswith("signbench-slt|tok:" + ("char" if char_level else
                                                                    "whitespace"))


@pytest.mark.parametrize(("lang", "tokenize"), [("de", "13a"), ("zh", "zh")])
def test_score_sacrebleu_protocol(capsys, lang, tokenize):
    hyp, ref = EXAMPLES / f"{lang}.hyp", EXAMPLES / f"{lang}.ref"
    code, out, _ = run_cli(capsys, "score", "--hyp", str(hyp), "--ref", str(ref),
                           "--lang", lang, "--protocol", "sacrebleu", "--json")
    assert code == 0
    scores = json.loads(out)
    hyps = hyp.read_text(encoding="utf-8").splitlines()
    refs = ref.read_text(encoding="utf-8").splitlines()
    expected = BLEU(tokenize=tokenize).corpus_score(hyps, [refs]).score
    assert scores["bleu4"] == pytest.approx(expected)
    assert "chrf" in scores


def test_score_table_output(capsys):
    code, out, _ = run_cli(capsys, "score", "--hyp", str(EXAMPLES / "de.hyp"),
                           "--ref", str(EXAMPLES / "de.ref"))
    assert code == 0
    assert "bleu4" in out and "rouge_l" in out and "signature: signbench-slt" in out


def test_score_recognition_with_cleanup(capsys):
    # ref 1 after cleanup: DONNERSTAG SUED REGION GEWITTER; hyp 1 collapses REGION REGION:
    # 0 errors. ref 2: MORGEN NORD FREUNDLICH WARM vs hyp MORGEN NORD WARM WIND:
    # two edits (jiwer aligns them as two substitutions) over 8 reference words = 25 %.
    code, out, _ = run_cli(capsys, "score", "--task", "recognition", "--cleanup", "phoenix14t",
                           "--hyp", str(EXAMPLES / "gloss.hyp"),
                           "--ref", str(EXAMPLES / "gloss.ref"), "--json")
    assert code == 0
    scores = json.loads(out)
    assert scores["wer"] == pytest.approx(25.0)
    assert scores["sub"] == pytest.approx(25.0)
    assert scores["del"] == 0.0 and scores["ins"] == 0.0


def test_score_control(capsys, tmp_path):
    """--control: one sentence for every line scores the same against shuffled references
    (the sentence prior); recomputed here with the library function."""
    from harness.metrics import shuffled_reference_control, translation_scores

    refs = (EXAMPLES / "de.ref").read_text(encoding="utf-8").splitlines()
    hyp = tmp_path / "prior.hyp"
    hyp.write_text("\n".join([refs[0]] * len(refs)) + "\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, "score", "--hyp", str(hyp), "--ref",
                           str(EXAMPLES / "de.ref"), "--control", "--json")
    assert code == 0
    scores = json.loads(out)
    assert scores["control"]["distinct_outputs"] == 1
    assert scores["control"]["bleu4"] == pytest.approx(scores["bleu4"])
    expected = shuffled_reference_control(
        "translation", [refs[0]] * len(refs), refs, lambda h, r: translation_scores(h, r))
    # a constant output ties under every re-pairing: the permutation test's p is exactly 1
    assert scores["control"] == pytest.approx({**expected, "permutations": 199, "p_value": 1.0})
    code, out, _ = run_cli(capsys, "score", "--hyp", str(EXAMPLES / "de.hyp"), "--ref",
                           str(EXAMPLES / "de.ref"), "--control")
    assert code == 0 and "bleu4 (shuffled refs)" in out and "distinct outputs" in out
    assert "p (bleu4, 199 permuted refs)" in out
    one = tmp_path / "one.txt"
    one.write_text("a b c\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "score", "--hyp", str(one), "--ref", str(one), "--control")
    assert code != 0 and "--control needs at least 2 sentences" in err


def test_score_errors_are_one_line(capsys, tmp_path):
    ref = EXAMPLES / "de.ref"
    code, _, err = run_cli(capsys, "score", "--hyp", str(tmp_path / "nope.txt"), "--ref", str(ref))
    assert code == 2 and "hypothesis file not found" in err and "Traceback" not in err

    short = tmp_path / "short.hyp"
    short.write_text("nur eine zeile\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "score", "--hyp", str(short), "--ref", str(ref))
    assert code == 2 and "has 1 lines" in err and "has 4" in err

    latin1 = tmp_path / "latin1.hyp"
    latin1.write_bytes("a\nb\nc\nüber\n".encode("latin-1"))
    code, _, err = run_cli(capsys, "score", "--hyp", str(latin1), "--ref", str(ref))
    assert code == 2 and "not UTF-8" in err and "line 4" in err

    code, _, err = run_cli(capsys, "score", "--hyp", str(ref), "--ref", str(ref),
                           "--cleanup", "phoenix14t")
    assert code == 2 and "--task recognition" in err


def test_info_json(capsys):
    code, out, _ = run_cli(capsys, "info", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["backends"]["cpu"]["torch"]["available"] is True
    assert info["native"]["built"] is True
    if not info["cuda_available"]:
        assert info["gpu"] is None and info["gpu_reason"]
        assert info["backends"]["cuda"]["native"]["available"] is False


def test_info_table_runs_as_console_script():
    result = subprocess.run([sys.executable, "-m", "harness.cli", "info"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ops backend" in result.stdout and "cpu/native" in result.stdout


def test_leaderboard_from_benchmark_json(capsys, tmp_path):
    bench = {
        "machine_info": {"node": "x"}, "commit_info": {"id": "abcdef0123", "dirty": False},
        "datetime": "2026-11-21T10:00:00", "version": "5.2.3",
        "benchmarks": [
            {"name": f"t[{b}]", "fullname": f"t[{b}]", "group": None, "params": {},
             "stats": {"median": m, "mean": m, "min": m, "max": m, "stddev": 0.0, "rounds": 5,
                       "iqr": 0.0, "ops": 1 / m},
             "extra_info": {"op": "axpy", "mode": "fwd", "backend": b, "dtype": "float32",
                            "shape": "n=8", "device": "cpu", "kind": "kernel"}}
            for b, m in (("eager", 4e-6), ("native", 1e-6))
        ],
    }
    src = tmp_path / "bench-cpu.json"
    src.write_text(json.dumps(bench), encoding="utf-8")
    out_dir = tmp_path / "results"
    code, out, _ = run_cli(capsys, "leaderboard", "--runs", "--bench", str(src),
                           "--out", str(out_dir))
    assert code == 0 and "Kernel benchmarks" in out
    table = (out_dir / "kernels.md").read_text(encoding="utf-8")
    assert "4.00" in table  # eager 4 µs / native 1 µs
    assert (out_dir / "sources" / "benchmarks" / "bench-cpu.json").is_file()
    first = (out_dir / "kernels.csv").read_bytes()
    assert run_cli(capsys, "leaderboard", "--runs", "--out", str(out_dir))[0] == 0
    assert (out_dir / "kernels.csv").read_bytes() == first


def test_leaderboard_bad_json_names_file(capsys, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    code, _, err = run_cli(capsys, "leaderboard", "--runs", "--bench", str(bad),
                           "--out", str(tmp_path / "r"))
    assert code == 2 and "broken.json" in err
