"""Leaderboard ingestion is all-or-nothing: every source (run JSON, outputs JSONL, benchmark
JSON, the committed sources) is validated and every output rendered before the first write, so a
bad input leaves ``results/`` byte-identical; and the committed ``results/`` are what a rebuild
from their sources gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.leaderboard import build_leaderboard
from harness.results import RunFileError

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
RUN = "hfa__synthetic-de__test__tiny__native__cpu"


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(RESULTS, out)
    return out


def new_run(tmp_path: Path, jsonl: str) -> Path:
    """A re-run of a committed configuration (same run file name) with the given outputs."""
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(RESULTS / "sources" / "runs" / f"{RUN}.json", runs / f"{RUN}.json")
    (runs / f"{RUN}.jsonl").write_text(jsonl, encoding="utf-8")
    return runs


def test_broken_outputs_line_leaves_results_byte_identical(
        results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The hostile case: ``signbench leaderboard --runs DIR`` where the run's outputs JSONL has a
    broken line; the good committed copy under results/sources/runs/ must survive."""
    good = (RESULTS / "sources" / "runs" / f"{RUN}.jsonl").read_text(encoding="utf-8")
    lines = good.splitlines()
    lines[5] = lines[5][: len(lines[5]) // 2]  # truncated mid-record
    runs = new_run(tmp_path, "\n".join(lines) + "\n")
    before = snapshot(results)
    assert main(["leaderboard", "--runs", str(runs), "--out", str(results), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{RUN}.jsonl: per-sample outputs, line 6: invalid JSON" in err
    assert err.count("\n") == 1  # one line, no traceback
    assert snapshot(results) == before


@pytest.mark.parametrize("line, message", [
    ('["a list"]', "line 3: expected a JSON object"),
    ('{"name": "x", "reference": "r"}', "line 3: field 'hypothesis': missing or not a string"),
    ('{"name": "synthetic_test_00000", "reference": "r", "hypothesis": "h"}',
     "line 3: field 'name': duplicate sample"),
])
def test_bad_outputs_records_are_named(results: Path, tmp_path: Path, line: str,
                                       message: str) -> None:
    lines = (RESULTS / "sources" / "runs" / f"{RUN}.jsonl").read_text(encoding="utf-8")
    lines = lines.splitlines()
    lines[2] = line
    runs = new_run(tmp_path, "\n".join(lines) + "\n")
    before = snapshot(results)
    with pytest.raises(RunFileError, match=message):
        build_leaderboard([runs / f"{RUN}.json"], [], results)
    assert snapshot(results) == before


def test_bad_committed_source_stops_before_new_inputs_are_copied(results: Path,
                                                                 tmp_path: Path) -> None:
    """A good input next to a damaged committed source: neither the input is copied nor any
    table written."""
    committed = results / "sources" / "runs" / "signx__synthetic-de__dev__tiny__native__cpu.jsonl"
    committed.write_text('{"name": "x"\n', encoding="utf-8")
    good = (RESULTS / "sources" / "runs" / f"{RUN}.jsonl").read_text(encoding="utf-8")
    runs = new_run(tmp_path, good.replace("wetter", "regen", 1))
    before = snapshot(results)
    with pytest.raises(RunFileError, match=committed.name):
        build_leaderboard([runs / f"{RUN}.json"], [], results)
    assert snapshot(results) == before


def test_committed_results_rebuild_byte_identical(results: Path) -> None:
    """``signbench leaderboard`` on the committed sources reproduces every committed file."""
    before = snapshot(results)
    report = build_leaderboard([], [], results)
    assert report.copied == ()
    after = snapshot(results)
    assert after == before
    assert {"leaderboard.md", "leaderboard-full.csv", "significance.md", "index.html"} <= set(after)
    assert json.loads((results / "sources" / "runs" / f"{RUN}.json").read_text())["outputs"]
