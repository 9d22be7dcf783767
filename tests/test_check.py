"""``signbench check``: every method at paper size takes one optimiser step per training stage and
one beam-search generate on CPU; a failure is reported and exits 1."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

import baselines
from harness.cli import main


def run_check(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", *argv])
    return code, out.getvalue()


def mbart_layer_params(d: int, ffn: int) -> tuple[int, int]:
    """(encoder layer, decoder layer) parameters of an mBART layer, by hand."""
    attn = 4 * (d * d + d)
    mlp = d * ffn + ffn + ffn * d + d
    return attn + mlp + 2 * 2 * d, 2 * attn + mlp + 3 * 2 * d


#: the five built-in methods (other test modules register toy methods of their own)
BUILTIN = sorted(m.rsplit(".", 1)[1] for m in baselines.BUILTIN_METHODS)


@pytest.mark.slow
def test_paper_check_all_methods():
    code, out = run_check("--profile", "paper", "--json", "--methods", *BUILTIN)
    results = {r["method"]: r for r in json.loads(out)}
    failed = {k: r.get("traceback") for k, r in results.items() if r["status"] != "OK"}
    assert code == 0 and not failed, failed
    assert sorted(results) == BUILTIN
    for key, r in results.items():
        assert r["status"] == "OK" and r["resolution"] == 224, key
        assert r["stages"] and all(s["steps"] == 1 and s["loss"] == s["loss"]
                                   for s in r["stages"]), (key, r["stages"])
        assert [s["stage"] for s in r["stages"]] == [s["stage"]
                                                     for s in r["full_depth"]["stages"]]
        assert len(r["outputs"]) == 2 and r["beam_size"] > 1, key
        assert r["depth_overrides"], key  # the pretrained parts were cut ...
        assert r["built"]["total"] < r["full_depth"]["total"], key  # ... and counted at full
        assert 0 < r["peak_rss_mb"] < 24 * 1024, key
    # HyperSign: the cut removes exactly 11 + 11 mBART-large layers (d 1024, FFN 4096)
    enc, dec = mbart_layer_params(1024, 4096)
    hs = results["hypersign"]
    assert hs["full_depth"]["total"] - hs["built"]["total"] == 11 * enc + 11 * dec


def test_failure_is_reported_and_exits_1():
    code, out = run_check("--profile", "tiny", "--methods", "hypersign", "--set", "d_model=-1")
    assert code == 1
    assert "FAILED" in out and "HyperSignConfig.d_model must be > 0, got -1" in out


def test_tiny_check_one_method_text_table():
    code, out = run_check("--profile", "tiny", "--methods", "signx")
    assert code == 0, out
    assert "signx" in out and "OK" in out and "peak RSS" in out
    for stage in ("pose2gloss", "vid2pose", "recognizer"):
        assert f"stage {stage}" in out and "1 step" in out
    assert "generate (beam" in out
