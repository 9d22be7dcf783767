"""``signbench run`` starts from the pretrained stand-ins its method declares (issue 20 item 2, 4).

HyperSign at a small size declares one stand-in (its mBART, through ``init``): the first run
trains it into the cache and loads it through the very option a user's checkpoint takes, the run
JSON and the leaderboard name it by its manifest hash, a second run reuses it untouched, and a
user's own ``init`` is never replaced.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.leaderboard.runs import pretrained_parts
from harness.pretrain.cache import MANIFEST
from harness.runner import run_method

SMALL = dict(d_model=32, rgb_channels=(4, 8), rgb_pool=2, keypoint_hidden=32,
             mbart_layers=(1, 1), mbart_heads=2, mbart_ffn=64, mbart_max_positions=128,
             sst_tokens=16, sst_dim=16, pretrain_epochs=1, g2t_epochs=1, epochs=1,
             batch_size=8, warmup_steps=2, pretrain_warmup_steps=2, g2t_warmup_steps=2)
DATA = dict(train_size=16, eval_size=4, resolution=16, progress=False, measure_iters=1,
            batch_size=8)

WEIGHT = "model.encoder.layers.0.fc1.weight"

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.slow
def test_run_trains_loads_names_and_reuses_its_standins(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    captured = {}
    import harness.runner as runner

    build = runner.build_method

    def spy(key, profile, resources, overrides=None):
        method = build(key, profile, resources, overrides)
        captured["overrides"] = dict(overrides or {})
        captured["weight"] = method.mbart.state_dict()[WEIGHT].clone()  # before training
        return method

    monkeypatch.setattr(runner, "build_method", spy)
    runs = run_method("hypersign", out=tmp_path / "a", overrides=SMALL, standins=True,
                      standin_cache=cache, **DATA)
    standins = runs[0]["standins"]
    assert [s["field"] for s in standins["standins"]] == ["init"]
    folder = Path(standins["standins"][0]["path"])
    assert folder.parent == cache and (folder / MANIFEST).is_file()
    # loaded through init=, tokenizer included: the method's mBART holds the stand-in's weights
    assert captured["overrides"]["init"] == str(folder)
    assert runs[0]["config"]["text"]["tokenizer_from"] == str(folder)
    saved = load_file(str(folder / "model.safetensors"))
    assert torch.equal(captured["weight"], saved[WEIGHT])
    # named in the run JSON, the leaderboard and the checkpoint fingerprint; user overrides kept
    assert runs[0]["config"]["overrides"] == json.loads(json.dumps(SMALL))
    assert pretrained_parts(runs[0]) == f"stand-ins {standins['hash'][:8]}"
    meta = json.loads(next((tmp_path / "a").glob("*/checkpoints/*/meta.json")).read_text())
    assert standins["hash"] in json.dumps(meta["fingerprint"])

    before = (folder / MANIFEST).stat().st_mtime_ns
    again = run_method("hypersign", out=tmp_path / "b", overrides=SMALL, standins=True,
                       standin_cache=cache, **DATA)
    assert again[0]["standins"] == standins
    assert (folder / MANIFEST).stat().st_mtime_ns == before  # reused, not retrained
    assert sorted(p.name for p in cache.iterdir()) == [folder.name]

    # a user's own checkpoint goes through the same option and is never replaced
    mine = run_method("hypersign", out=tmp_path / "c", overrides={**SMALL, "init": str(folder)},
                      standins=True, standin_cache=tmp_path / "unused", **DATA)
    assert "standins" not in mine[0] and not (tmp_path / "unused").exists()
    assert pretrained_parts(mine[0]) == "checkpoints"

