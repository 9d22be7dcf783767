"""Tests for the one-time control migration (``harness.leaderboard.migrate``) and for the
leaderboard only reading the control it stored: rendering computes no control or p-value."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_leaderboard import make_run, md_rows, read_csv, write_json

import harness.evaluate
from harness.files import dumps_json
from harness.leaderboard import build_leaderboard
from harness.leaderboard.migrate import main, migrate_runs
from harness.results import RunFileError, load_json, load_run

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "results" / "sources" / "runs"
CONTROL_COLUMNS = ("distinct outputs", "BLEU-4 shuffled refs", "WER shuffled refs",
                   "p (permuted refs)")
SENTENCES = ["am montag regnet es im norden", "im süden scheint die sonne",
             "morgen wird es kalt und windig", "die temperatur steigt auf zehn grad"]


def write_outputs(path: Path, hypotheses: list[str]) -> Path:
    lines = [json.dumps({"name": f"s{i}", "reference": r, "hypothesis": h})
             for i, (h, r) in enumerate(zip(hypotheses, SENTENCES, strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_canonical(path: Path, run: dict[str, Any]) -> Path:
    path.write_text(dumps_json(run), encoding="utf-8")
    return path


def test_migration_fills_what_the_leaderboard_computed(tmp_path: Path) -> None:
    """Committed runs with their control removed (translation, recognition) or only its p-value
    (a control stored before the permutation test): the migration writes back the very bytes
    committed. Those controls are the ones the leaderboard computed at render time before the
    migration stored them (the tables rebuilt from the migrated sources were byte-identical)."""
    cases = {
        "hypersign__synthetic-de__dev__tiny__native__cpu.json": ("control",),
        "signx__synthetic-de__test__tiny__native__cpu.json": ("control",),
        "hfa__synthetic-de__dev__tiny__native__cpu.json": ("control.p_value",
                                                            "control.permutations"),
    }
    for name, removed in cases.items():
        run = load_run(COMMITTED / name)
        shutil.copy(COMMITTED / run["outputs"], tmp_path / run["outputs"])
        for field in removed:
            parent = run if field == "control" else run["control"]
            del parent[field.rsplit(".", 1)[-1]]
        write_canonical(tmp_path / name, run)
    migrated = migrate_runs([tmp_path])
    assert sorted(p.name for p in migrated) == sorted(cases)
    for name in cases:
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name


def test_rendering_reads_and_never_computes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """An unmigrated run shows the control cells a run without outputs shows (empty / —), a
    stored control without a p-value keeps an empty p, and neither the JSONL nor the control
    functions are touched."""
    def computed(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the leaderboard computed a control")

    monkeypatch.setattr(harness.evaluate, "control_of", computed)
    monkeypatch.setattr(harness.evaluate, "permutation_test_of", computed)
    write_outputs(tmp_path / "broken.jsonl", SENTENCES)  # read for the CI only
    stored = {"shuffles": 5, "seed": 0, "samples": 4, "distinct_outputs": 3, "bleu4": 1.5,
              "rouge_l": 9.0}
    runs = [
        write_json(tmp_path / "a.json", make_run(outputs="broken.jsonl")),
        write_json(tmp_path / "b.json", make_run(split="dev")),
        write_json(tmp_path / "c.json", make_run(split="train", outputs="broken.jsonl",
                                                 control=stored)),
    ]
    out = tmp_path / "out"
    build_leaderboard(runs, [], out)
    rows = {r["split"]: r for r in read_csv(out / "leaderboard-full.csv")}
    cells = {split: [row[c] for c in CONTROL_COLUMNS] for split, row in rows.items()}
    assert cells == {"test": ["", "", "", ""], "dev": ["", "", "", ""],
                     "train": ["3/4", "1.5", "", ""]}
    # headline: BLEU-4 shuffled refs and p (columns 6 and 7)
    md = {row[3]: row[6:8] for row in md_rows(out / "leaderboard.md", "## Translation")}
    assert md["test"] == md["dev"] == ["—"] * 2


def test_migration_is_idempotent_and_leaves_other_runs_alone(tmp_path: Path) -> None:
    write_outputs(tmp_path / "out.jsonl", [SENTENCES[0]] * 2 + SENTENCES[2:])
    older = write_canonical(tmp_path / "older.json", make_run(outputs="out.jsonl"))
    no_outputs = write_canonical(tmp_path / "none.json", make_run(split="dev"))
    missing = write_canonical(tmp_path / "missing.json",
                              make_run(split="train", outputs="gone.jsonl"))
    write_json(tmp_path / "tokenizer.json", {"model": {"type": "BPE"}})  # not a run: skipped
    untouched = {p: p.read_bytes() for p in (no_outputs, missing)}

    assert migrate_runs([tmp_path]) == [older]
    control = load_json(older)["control"]
    assert (control["distinct_outputs"], control["samples"]) == (3, 4)
    assert control["permutations"] == 199 and 0 < control["p_value"] <= 1
    assert {p: p.read_bytes() for p in untouched} == untouched
    migrated = older.read_bytes()
    assert migrate_runs([tmp_path]) == [] and migrate_runs([older]) == []
    assert older.read_bytes() == migrated


def test_bad_outputs_stop_the_migration_before_anything_is_written(tmp_path: Path) -> None:
    write_outputs(tmp_path / "good.jsonl", SENTENCES)
    (tmp_path / "bad.jsonl").write_text('{"name": "s0"}\n', encoding="utf-8")
    good = write_canonical(tmp_path / "a.json", make_run(outputs="good.jsonl"))
    write_canonical(tmp_path / "b.json", make_run(split="dev", outputs="bad.jsonl"))
    before = good.read_bytes()
    with pytest.raises(RunFileError, match=r"bad\.jsonl: per-sample outputs"):
        migrate_runs([tmp_path])
    assert good.read_bytes() == before


def test_migrate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_outputs(tmp_path / "out.jsonl", SENTENCES)
    run = write_canonical(tmp_path / "r.json", make_run(outputs="out.jsonl"))
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"migrated {run}\n1 run(s) migrated\n"
    assert main([str(tmp_path / "gone.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("migrate: error: ") and "gone.json" in err and err.count("\n") == 1


def test_committed_sources_are_migrated(tmp_path: Path) -> None:
    """``python -m harness.leaderboard.migrate`` on a copy of ``results/sources/runs`` has
    nothing left to do: every committed run with outputs stores its control and p-value."""
    runs = shutil.copytree(COMMITTED, tmp_path / "runs")
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.leaderboard.migrate", str(runs)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "0 run(s) migrated\n", "")
    for path in sorted(COMMITTED.glob("*.json")):
        run = load_run(path)
        if run["outputs"]:
            assert "p_value" in run["control"], path.name
