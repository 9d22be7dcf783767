"""SignX's pretrained stand-ins (issue 20): what it declares at each profile, that each declared
stand-in trains (tiny recipe) and loads strictly into the method built with its path, and that
the loaded parts hold the stand-in's weights."""

from __future__ import annotations

import pytest
import torch

from baselines.common.weights import read_state_dict
from baselines.signx import SignX
from harness.pretrain import Recipe, ensure_entries
from harness.text import GlossVocab, train_tokenizer

#: a few optimiser steps per kind: the tests check wiring, not quality
QUICK = {"pose": Recipe(epochs=1, lr=2e-3, batch_size=4, options={"clips": 8, "clip_len": 4}),
         "resnet": Recipe(epochs=1, lr=3e-3, batch_size=4, options={"frames": 8})}
SMALL = {"teacher_width": 4, "visual_width": 4}


def test_declared_standins_per_profile_and_pipeline():
    tiny = SignX.standins("tiny", {})
    assert [(s.field, s.kind) for s in tiny] == [("vid2pose_init", "pose")]
    cfg = tiny[0].config
    assert cfg["input"] == "clip" and cfg["targets"] == "poses" and cfg["resolution"] == 32
    assert cfg["kwargs"]["image_size"] == 32 and cfg["kwargs"]["dim"] == 64
    assert all(s.paper for s in tiny)
    paper = {s.field: s for s in SignX.standins("paper", {})}
    assert sorted(paper) == ["teacher_init", "vid2pose_init"]
    assert paper["vid2pose_init"].config["kwargs"]["dim"] == 384
    assert paper["vid2pose_init"].config["kwargs"]["depth"] == 12
    assert paper["teacher_init"].config["kwargs"] == {"base_width": 64}
    assert paper["teacher_init"].config["resolution"] == 224
    pixel = {s.field for s in SignX.standins("tiny", {"pipeline": "pixel",
                                                      "use_distillation": True})}
    assert pixel == {"teacher_init", "visual_init"}
    assert {s.field for s in SignX.standins("tiny", {"pipeline": "transformer"})} == \
        {"visual_init"}
    # overrides reach the declared architecture
    assert SignX.standins("tiny", {"v2p_dim": 32})[0].config["kwargs"]["dim"] == 32


def test_vid2pose_stage_only_from_a_random_start():
    vocab = GlossVocab.build(["A B", "C"])
    names = [s.name for s in SignX("tiny", gloss_vocab=vocab).stages()]
    assert names == ["pose2gloss", "vid2pose", "recognizer"]
    m = SignX("tiny", gloss_vocab=vocab)
    m.config.vid2pose_init = "x"  # a stage list only; nothing is loaded here
    assert [s.name for s in m.stages()] == ["pose2gloss", "recognizer"]
    m.config.v2p_finetune_epochs = 2
    assert [s.epochs for s in m.stages() if s.name == "vid2pose"] == [2]


@pytest.mark.parametrize("overrides", [{**SMALL, "use_distillation": True},
                                       {**SMALL, "pipeline": "pixel"}])
def test_standins_train_and_load_strictly(tmp_path, overrides):
    from conftest import synthetic_split

    entries = ensure_entries("signx", "tiny", overrides, root=tmp_path, train_size=16,
                             resolution=32, recipes=QUICK, progress=False)
    paths = {e.field: str(e.path) for e in entries}
    expected = ({"vid2pose_init", "teacher_init"} if overrides.get("pipeline") is None
                else {"visual_init"})
    assert set(paths) == expected
    train = synthetic_split("train", 8, resolution=32)
    vocab = GlossVocab.build([s.gloss for s in train])
    tok = train_tokenizer([s.text for s in train], vocab_size=200, lang="de")
    torch.manual_seed(0)
    m = SignX("tiny", tokenizer=tok, gloss_vocab=vocab, **overrides, **paths)
    parts = {"vid2pose_init": m.vid2pose if hasattr(m, "vid2pose") else None,
             "teacher_init": m.teacher.backbone if hasattr(m, "teacher") else None,
             "visual_init": getattr(m, "visual", None)}
    for field, path in paths.items():
        saved = read_state_dict(path)
        own = parts[field].state_dict()
        assert set(saved) == set(own)  # strict: the same keys
        for k, v in saved.items():
            assert torch.equal(own[k].to(v.dtype), v), (field, k)
    with pytest.raises(ValueError, match="vid2pose_init"):
        SignX("tiny", gloss_vocab=vocab, pipeline="pixel", vid2pose_init=next(iter(paths.values())))
