"""Tests for ``harness.results``: crash-safe writes, run schema validation, run file I/O.

A committed result that is half-written or silently wrong is worse than none, so the tests
simulate failures mid-write and check that validation errors say which file and which field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness import files
from harness.results import (
    SCHEMA,
    RunFileError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_run,
    run_filename,
    validate_run,
    write_run,
)


def make_run(**overrides: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "schema": SCHEMA,
        "method": "hypersign",
        "dataset": "phoenix14t",
        "lang": "de",
        "split": "test",
        "profile": "tiny",
        "backend": "triton",
        "device": "NVIDIA H100 80GB HBM3",
        "task": "translation",
        "accuracy": {
            "bleu1": 40.5,
            "bleu2": 30.25,
            "bleu3": 24.0,
            "bleu4": 20.125,
            "rouge_l": 45.0,
            "signature": "slt|tok:whitespace|bleu:1-4|rougeL:beta=1.2",
        },
        "efficiency": {
            "latency_ms": {
                "p50": 12.5,
                "p90": 20.0,
                "p99": 25.0,
                "mean": 13.0,
                "std": 2.0,
                "n": 64,
            },
            "fps": 300.0,
            "gpu_power_w": 250.0,
            "idle_power_w": 60.0,
            "energy_per_video_j": 3.1,
            "peak_memory_mb": 2048.0,
            "peak_rss_mb": 4096.0,
            "params": {"total": 12_345_678, "trainable": 1_000_000},
            "unavailable": {},
        },
        "training": {
            "epochs": 3,
            "steps": 300,
            "wall_s": 120.5,
            "final_losses": {"ce": 1.25, "kl": 0.5},
            "best_dev": {"bleu4": 21.0, "epoch": 2},
        },
        "environment": {
            "timestamp": "2025-01-02T03:04:05+00:00",
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "git_dirty": False,
            "python": "3.11.9",
            "gpu": {"name": "NVIDIA H100 80GB HBM3"},
        },
        "outputs": "hypersign__phoenix14t-de__test.jsonl",
        "config": {"lr": 1e-3, "note": "Gebärdensprache"},
    }
    run.update(overrides)
    return run


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------ atomic writes


def test_atomic_write_text_creates_parents_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.md"
    assert atomic_write_text(target, "héllo\nworld\n") == target
    assert target.read_bytes() == "héllo\nworld\n".encode()
    assert _leftovers(target.parent) == []
    # an ordinary file mode (umask applied), not mkstemp's 0600
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_bytes_replaces(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"\x89PNG new")
    assert target.read_bytes() == b"\x89PNG new"
    assert _leftovers(tmp_path) == []


def test_atomic_write_json_format(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    atomic_write_json(target, {"b": 1, "a": {"ü": "Gebärde"}})
    assert target.read_text(encoding="utf-8") == (
        '{\n  "a": {\n    "ü": "Gebärde"\n  },\n  "b": 1\n}\n'
    )


def test_json_dump_failure_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "run.json"
    atomic_write_json(target, {"v": 1})
    before = target.read_bytes()

    def broken_dump(obj: Any, f: Any, **kw: Any) -> None:
        f.write('{"v": 2, "half')  # partially written, then the process "crashes"
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(files.json, "dump", broken_dump)
    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write_json(target, {"v": 2})
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []
    # and with no previous file, none appears
    with pytest.raises(RuntimeError):
        atomic_write_json(tmp_path / "new.json", {"v": 3})
    assert not (tmp_path / "new.json").exists()
    assert _leftovers(tmp_path) == []


def test_replace_failure_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "t.md"
    atomic_write_text(target, "old\n")

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        atomic_write_text(target, "new\n")
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_nan_is_rejected_without_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "n.json", {"x": float("nan")})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ validation


def test_valid_run_passes_and_is_returned() -> None:
    run = make_run()
    assert validate_run(run, source="r.json") is run
    # optional / nullable parts
    validate_run(make_run(training=None, outputs=None, accuracy=None))
    rec = make_run(task="recognition", accuracy={"wer": 25.0, "sub": 10.0, "del": 8.0, "ins": 7.0})
    validate_run(rec)
    unavailable = make_run()
    unavailable["efficiency"].update(gpu_power_w=None, params=None, latency_ms=None)
    unavailable["efficiency"]["unavailable"] = {
        "gpu_power_w": "no CUDA device",
        "params": "not counted",
        "latency_ms": "not timed",
    }
    validate_run(unavailable)


def _set(obj: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        obj = obj[key]
    if value is _DELETE:
        del obj[last]
    else:
        obj[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("method", _DELETE, "field 'method': missing required field"),
        ("schema", _DELETE, "field 'schema': missing required field"),
        ("schema", "signbench.run/2", "field 'schema': unknown schema version 'signbench.run/2'"),
        ("schema", "something/1", "field 'schema': expected 'signbench.run/1'"),
        ("device", "", "field 'device': expected a non-empty string"),
        ("task", "captioning", "field 'task'"),
        ("accuracy.bleu4", "20", "field 'accuracy.bleu4': expected a finite number"),
        ("accuracy.bleu4", float("nan"), "field 'accuracy.bleu4'"),
        ("accuracy.signature", _DELETE, "field 'accuracy.signature': missing required field"),
        ("accuracy.wer", 12.0, "field 'accuracy.sub': missing required field"),
        ("efficiency.latency_ms.p50", _DELETE, "field 'efficiency.latency_ms.p50': missing"),
        ("efficiency.latency_ms.n", 6.5, "field 'efficiency.latency_ms.n'"),
        ("efficiency.params.total", True, "field 'efficiency.params.total'"),
        ("efficiency.fps", _DELETE, "field 'efficiency.fps': missing required field"),
        ("efficiency.gpu_power_w", None, "field 'efficiency.gpu_power_w': is null but"),
        ("efficiency.unavailable", _DELETE, "field 'efficiency.unavailable': missing"),
        ("training.steps", -1, "field 'training.steps'"),
        ("training.final_losses", [], "field 'training.final_losses': expected an object"),
        ("environment.timestamp", _DELETE, "field 'environment.timestamp': missing"),
        ("environment.git_dirty", "yes", "field 'environment.git_dirty'"),
        ("environment", None, "field 'environment': expected an object"),
        ("outputs", "/abs/out.jsonl", "field 'outputs': expected a path relative"),
        ("outputs", "../out.jsonl", "field 'outputs'"),
        ("config", [1], "field 'config'"),
    ],
)
def test_validation_errors_name_file_and_field(field: str, value: Any, expected: str) -> None:
    run = make_run()
    _set(run, field, value)
    with pytest.raises(RunFileError) as info:
        validate_run(run, source="runs/x.json")
    message = str(info.value)
    assert message.startswith("runs/x.json: "), message
    assert expected in message, message


def test_validation_rejects_non_object() -> None:
    with pytest.raises(RunFileError, match=r"^f\.json: top level: expected a JSON object"):
        validate_run([1, 2], source="f.json")


def test_recognition_requires_wer() -> None:
    run = make_run(task="recognition", accuracy={"sub": 1.0, "del": 1.0, "ins": 1.0})
    with pytest.raises(RunFileError, match=r"field 'accuracy\.wer': missing required field"):
        validate_run(run)


# ------------------------------------------------------------------------------ run files


def test_run_filename_is_slugged() -> None:
    assert run_filename(make_run()) == (
        "hypersign__phoenix14t-de__test__tiny__triton__nvidia-h100-80gb-hbm3.json"
    )
    name = run_filename(make_run(dataset="CSL-Daily", lang="zh", device="cpu", method="Sign_X"))
    assert name == "sign-x__csl-daily-zh__test__tiny__triton__cpu.json"


def test_variant_runs_get_their_own_file() -> None:
    base = run_filename(make_run())
    rgb = run_filename(make_run(variant="stream=rgb"))
    kp = run_filename(make_run(variant="stream=keypoints"))
    assert rgb == base.removesuffix(".json") + "__stream-rgb.json"
    assert len({base, rgb, kp}) == 3
    assert run_filename(make_run(variant=None)) == base
    with pytest.raises(RunFileError, match="variant"):
        validate_run(make_run(variant=3))


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    run = make_run()
    path = write_run(run, tmp_path / "runs")
    assert path == tmp_path / "runs" / run_filename(run)
    assert load_run(path) == run
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "Gebärdensprache" in text
    assert json.loads(text) == run
    assert _leftovers(path.parent) == []


def test_write_run_validates_first(tmp_path: Path) -> None:
    run = make_run()
    del run["efficiency"]
    with pytest.raises(RunFileError, match="field 'efficiency': missing required field"):
        write_run(run, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_load_run_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"schema": "signbench.run/1",', encoding="utf-8")
    with pytest.raises(RunFileError, match=r"broken\.json: invalid JSON at line 1"):
        load_run(bad)
    missing = tmp_path / "nope.json"
    with pytest.raises(RunFileError, match=r"nope\.json: cannot read file"):
        load_run(missing)
    wrong = tmp_path / "wrong.json"
    run = make_run()
    run["accuracy"]["bleu1"] = "high"
    wrong.write_text(json.dumps(run), encoding="utf-8")
    with pytest.raises(RunFileError, match=r"wrong\.json: field 'accuracy\.bleu1'"):
        load_run(wrong)


def test_long_variants_get_short_distinct_file_names():
    """Many ``--set`` overrides: the variant part is cut and hashed (OS name limit 255 bytes)."""
    from harness.results import MAX_VARIANT_SLUG, run_filename, variant_slug

    a = ",".join(f"option_number_{i}=[{i}, {i + 1}, {i + 2}]" for i in range(12))
    b = a + ",one_more=1"
    assert len(variant_slug(a)) <= MAX_VARIANT_SLUG and variant_slug(a) != variant_slug(b)
    assert variant_slug("stream=rgb") == "stream-rgb"
    run = {"method": "hfa", "dataset": "synthetic", "lang": "de", "split": "dev",
           "profile": "tiny", "backend": "native", "device": "cpu", "variant": a}
    assert len(run_filename(run)) < 200
