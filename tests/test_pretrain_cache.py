"""The stand-in cache (``harness.pretrain``): train once, reuse, hashes, atomic install, the CLI.

The toy method ``toy_standins`` (defined here; ``test_pretrain_text`` imports it) declares a
tiny ``llama`` (``llm_init``) and a tiny ``mbart`` (``init``) stand-in over a 32-sample split at
resolution 16, so every test trains in seconds.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

import pytest
import torch

import baselines
import harness.pretrain as pt
from harness.cli import main
from harness.method import SLTMethod, Stage, StandIn, registered
from harness.pretrain.cache import (
    MANIFEST,
    SCHEMA,
    cache_root,
    combined_hash,
    folder_name,
    standin_hash,
)

TOY_KEY = "toy_standins"
LLAMA = StandIn("llm_init", "llama", {
    "vocab_size": 200, "tokenizer_kind": None, "profile": "tiny",
    "overrides": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                  "num_attention_heads": 2, "num_key_value_heads": 2}}, paper="LLaMA-2 7B")
MBART_SIZE = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "heads": 2, "ffn": 64,
              "dropout": 0.0, "attention_dropout": 0.0, "max_positions": 64}
MBART = StandIn("init", "mbart", {"vocab_size": 200, "tokenizer_kind": None, "size": MBART_SIZE},
                paper="mBART-large-cc25")
SMALL: dict[str, Any] = {"dataset": "synthetic", "lang": None, "train_size": None,
                         "resolution": None, "seed": 0, "progress": False}


class ToyStandIns(SLTMethod):
    """Declares the two tiny LM stand-ins. These tests only look at its class, but it is in
    the registry while the whole suite runs, so commands that build every method (``params``,
    ``check``) must be able to build it: one linear layer, one stage."""

    key = TOY_KEY
    data_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"train_size": 32, "resolution": 16, "lang": "de"}}

    def __init__(self, profile: str = "tiny", **_: Any) -> None:
        super().__init__(profile)
        self.proj = torch.nn.Linear(2, 2)

    def stages(self) -> list[Stage]:
        return [Stage("train", 1)]

    @classmethod
    def standins(cls, profile, overrides):
        return [LLAMA, MBART]


if TOY_KEY not in registered():
    baselines.register(TOY_KEY)(ToyStandIns)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

MANIFEST_FIELDS = {"schema", "version", "kind", "field", "paper", "config", "corpus", "recipe",
                   "hash", "seed", "git_commit", "git_dirty", "date", "versions", "files",
                   "size_bytes", "parameters", "loss", "wall_seconds"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both toy stand-ins trained once into a fresh cache: (root, paths, summary)."""
    root = tmp_path_factory.mktemp("standins")
    paths, summary = pt.ensure_standins(TOY_KEY, "tiny", {}, root=root, **SMALL)
    return root, paths, summary


def test_trains_each_declared_standin_with_a_full_manifest(trained):
    root, paths, summary = trained
    assert set(paths) == {"llm_init", "init"}
    for entry in summary["standins"]:
        folder = root / folder_name(entry["kind"], entry["hash"])
        assert paths[entry["field"]] == entry["path"] == str(folder)
        manifest = json.loads((folder / MANIFEST).read_text())
        assert set(manifest) >= MANIFEST_FIELDS
        assert manifest["schema"] == SCHEMA and manifest["hash"] == entry["hash"]
        assert manifest["kind"] == entry["kind"] and manifest["field"] == entry["field"]
        assert manifest["paper"] == entry["paper"]
        assert manifest["corpus"]["train_size"] == 32 and manifest["corpus"]["resolution"] == 16
        assert manifest["corpus"]["lang"] == "de" and manifest["corpus"]["texts"] == 32
        assert manifest["recipe"]["seed"] == manifest["seed"] == 0
        assert manifest["parameters"] > 0 and manifest["wall_seconds"] > 0
        assert "config.json" in manifest["files"] and "tokenizer.json" in manifest["files"]
        assert all(size == (folder / f).stat().st_size for f, size in manifest["files"].items())
        assert manifest["size_bytes"] == sum(manifest["files"].values())
        loss = manifest["loss"]
        assert len(loss["epochs"]) == manifest["recipe"]["epochs"]
        assert loss["final"] == loss["epochs"][-1] and loss["first"] > loss["last"]
    assert summary["hash"] == combined_hash({e["field"]: e["hash"] for e in summary["standins"]})
    assert not list(root.glob(".tmp-*")) and not list(root.glob(".old-*"))


def test_second_call_reuses_without_training(trained, monkeypatch):
    root, paths, summary = trained
    stamps = {f: (p, (root / p / MANIFEST).stat().st_mtime_ns) for f, p in paths.items()}

    def refuse(*args, **kwargs):
        raise AssertionError("a cached stand-in was trained again")

    monkeypatch.setitem(pt.TRAINERS, "llama", refuse)
    monkeypatch.setitem(pt.TRAINERS, "mbart", refuse)
    t0 = time.perf_counter()
    again, summary2 = pt.ensure_standins(TOY_KEY, "tiny", {}, root=root, **SMALL)
    assert time.perf_counter() - t0 < 5
    assert again == paths and summary2 == summary
    assert all((root / p / MANIFEST).stat().st_mtime_ns == m for p, m in stamps.values())
    entries = pt.ensure_entries(TOY_KEY, "tiny", {}, root=root, **SMALL)
    assert {e.status for e in entries} == {"reused"}


def test_fields_the_user_set_are_not_trained(trained, monkeypatch):
    root, _, _ = trained
    monkeypatch.setitem(pt.TRAINERS, "mbart", lambda *a, **k: pytest.fail("trained init"))
    paths, summary = pt.ensure_standins(TOY_KEY, "tiny", {"init": "/my/mbart"}, root=root,
                                        **SMALL)
    assert set(paths) == {"llm_init"} and [e["field"] for e in summary["standins"]] == [
        "llm_init"]
    assert pt.ensure_standins(TOY_KEY, "tiny", {"init": "a", "llm_init": "b"}, root=root,
                              **SMALL) == ({}, {"hash": None, "standins": []})


def test_the_hash_covers_config_corpus_and_recipe():
    corpus = {"dataset": "synthetic", "lang": "de", "train_size": 32, "texts_sha256": "ab"}
    recipe = pt.recipe_for("llama", 0)
    base = standin_hash(LLAMA, corpus, recipe)
    wider = StandIn("llm_init", "llama", {**LLAMA.config, "vocab_size": 300})
    assert standin_hash(wider, corpus, recipe) != base
    assert standin_hash(LLAMA, {**corpus, "train_size": 64}, recipe) != base
    assert standin_hash(LLAMA, corpus, pt.recipe_for("llama", 1)) != base
    # the option name and the paper are not part of it: two methods share one folder
    renamed = StandIn("other_init", "llama", dict(LLAMA.config), paper="something else")
    assert standin_hash(renamed, corpus, recipe) == base
    assert folder_name("llama", base) == f"llama-{base[:12]}"
    assert combined_hash({"a": "1", "b": "2"}) == combined_hash([("b", "2"), ("a", "1")])
    assert combined_hash({"a": "1"}) != combined_hash({"a": "2"}) and combined_hash({}) is None


def test_a_crash_mid_training_leaves_no_stand_in(tmp_path, monkeypatch):
    def crash(standin, data, out_dir, *, recipe, progress):
        (out_dir / "config.json").write_text("{}")  # half-written
        raise RuntimeError("killed mid-training")

    monkeypatch.setitem(pt.TRAINERS, "llama", crash)
    with pytest.raises(RuntimeError, match="killed mid-training"):
        pt.ensure_standins(TOY_KEY, "tiny", {"init": "x"}, root=tmp_path, **SMALL)
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary folder, no manifest


def test_force_replaces_and_stale_temporaries_are_removed(tmp_path):
    from harness.pretrain.cache import ensure
    from harness.pretrain.types import PretrainData, TrainReport

    calls = []

    def fake(standin, data, out_dir, *, recipe, progress):
        calls.append(out_dir.name)
        (out_dir / "weights.bin").write_bytes(b"x" * (len(calls) + 1))
        return TrainReport([2.0, 1.0], [1.5], parameters=3, files=["weights.bin"])

    data = PretrainData(samples=[], lang="de", texts=["a b"], corpus={"texts_sha256": "0"})
    recipe = pt.recipe_for("llama", 0)
    name = folder_name("llama", standin_hash(LLAMA, data.corpus, recipe))
    (tmp_path / f".tmp-{name}-999999999").mkdir()  # left by a killed process
    first = ensure(LLAMA, data, fake, recipe, root=tmp_path)
    assert first.status == "trained" and first.final_loss == 1.5 and first.size_bytes == 2
    assert ensure(LLAMA, data, fake, recipe, root=tmp_path).status == "reused"
    forced = ensure(LLAMA, data, fake, recipe, root=tmp_path, force=True)
    assert forced.status == "trained" and forced.path == first.path and len(calls) == 2
    assert (forced.path / "weights.bin").read_bytes() == b"xxx"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_cache_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNBENCH_CACHE", str(tmp_path / "env"))
    assert cache_root(tmp_path / "out") == tmp_path / "out"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("SIGNBENCH_CACHE")
    assert str(cache_root()).endswith(".cache/signbench/standins")


def test_cli_trains_then_reuses(tmp_path, capsys):
    argv = ["pretrain", "--methods", TOY_KEY, "--out", str(tmp_path), "--set", "init=x",
            "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "llm_init" in out and "llama" in out and "1 trained, 0 reused" in out
    assert len(list(tmp_path.glob("llama-*/manifest.json"))) == 1
    assert main(argv) == 0
    assert "0 trained, 1 reused" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--methods", "no_such_method"], "unknown method(s) no_such_method"),
    (["--dataset", "no_such_data"], "unknown dataset 'no_such_data'"),
    (["--lang", "xx"], "language 'xx'"),
    (["--out", "{file}/sub"], "stand-in cache"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, message):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    argv = [a.replace("{file}", str(blocker)) for a in argv]
    if "--methods" not in argv:
        argv += ["--methods", TOY_KEY]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "cache")]
    assert main(["pretrain", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("signbench: error: ") and message in err and "\n" not in err
