"""``signbench params``: every method at both profiles through the CLI, and the paper figures."""

from __future__ import annotations

import json

import pytest

import baselines
from harness.cli import main

#: LLaMA-2-7B's published parameter count (the Hugging Face model at vocabulary 32,000)
LLAMA2_7B_PARAMS = 6_738_415_616
#: the five built-in methods (other test modules register toy methods of their own)
BUILTIN = sorted(m.rsplit(".", 1)[1] for m in baselines.BUILTIN_METHODS)


@pytest.fixture(scope="module")
def paper_json() -> list[dict]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["params", "--profile", "paper", "--json", "--methods", *BUILTIN]) == 0
    return json.loads(out.getvalue())


def test_paper_json_has_every_method(paper_json):
    assert sorted(r["method"] for r in paper_json) == BUILTIN
    for r in paper_json:
        assert r["profile"] == "paper"
        assert r["total"] > 10_000_000, r["method"]
        assert r["stages"] and all(0 < s["trainable"] <= r["total"] for s in r["stages"])


def test_paper_figures_within_15_percent(paper_json):
    by_key = {r["method"]: r["paper"] for r in paper_json}
    # the figures the papers state: HFA's Table 3 (four), SignFuse's 65.9M, the LLaMA-2 7B
    assert len(by_key["hfa"]) == 4
    assert "trainable excluding the LLM" in by_key["signfuse"]
    for key, figures in by_key.items():
        for name, fig in figures.items():
            assert fig["ratio"] == pytest.approx(fig["ours"] / fig["paper"])
            assert 0.85 <= fig["ratio"] <= 1.15, (key, name, fig)
    # the LM backbone at LLaMA-2's vocabulary is exactly LLaMA-2-7B
    for key in ("signfuse", "signbind"):
        assert by_key[key]["LLM backbone"]["ours"] == LLAMA2_7B_PARAMS


def test_tiny_table_lists_every_method_with_paper_lines(capsys):
    assert main(["params", "--profile", "tiny"]) == 0
    out = capsys.readouterr().out
    for key in baselines.list_methods():
        assert f"\n{key} " in out
    assert "paper: fine_tuning trainable" in out and "ratio" in out
    assert "states no parameter count" in out  # HyperSign / SignX state none


def test_unknown_method_is_one_line_error(capsys):
    assert main(["params", "--methods", "nope"]) == 2
    assert "unknown method(s) nope" in capsys.readouterr().err
