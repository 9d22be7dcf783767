"""SignBind-LLM's declared stand-ins: they train, load strictly into the method built with their
paths, and the loaded parts are the stand-ins' weights."""

from __future__ import annotations

import pytest
import torch

from baselines.common.weights import read_state_dict
from baselines.signbind import SignBind
from harness.pretrain import ensure_entries
from harness.pretrain.types import Recipe
from harness.text import PseudoGlossExtractor, TextTokenizer

SMALL = dict(frame_dim=32, frame_depth=1, lip_dim=16, router_dim=32, expert_dim=32,
             fusion_dim=32, fusion_layers=2, dropout=0.0)
QUICK = {"vit": Recipe(epochs=1, lr=1e-3, batch_size=16,
                       options={"frames": 32, "frames_per_video": 4}),
         "llama": Recipe(epochs=1, lr=1e-3, batch_size=16)}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    entries = ensure_entries("signbind", "tiny", SMALL, root=root, train_size=16, resolution=32,
                             recipes=QUICK, progress=False)
    return {e.field: e for e in entries}


def test_declares_the_papers_parts_at_the_methods_sizes():
    tiny = {s.field: s for s in SignBind.standins("tiny", {})}
    assert {f: s.kind for f, s in tiny.items()} == {
        "frame_encoder_init": "vit", "lip_encoder_init": "vit", "llm_init": "llama"}
    assert "DINOv2" in tiny["frame_encoder_init"].paper and "LLaMA-2" in tiny["llm_init"].paper
    frame, lips = tiny["frame_encoder_init"].config, tiny["lip_encoder_init"].config
    assert frame["stream"] == "frames" and frame["target"] == "keypoints"
    assert lips["stream"] == "lips" and lips["target"] == "mouth"
    assert frame["kwargs"]["img_size"] == frame["resolution"] == 32
    paper = {s.field: s for s in SignBind.standins("paper", {})}
    assert paper["frame_encoder_init"].config["kwargs"]["embed_dim"] == 384
    assert paper["frame_encoder_init"].config["normalize"]["mean"][0] == pytest.approx(0.485)
    assert paper["llm_init"].config["profile"] == "paper"
    no_lips = SignBind.standins("tiny", {"use_lipreading": False})
    assert [s.field for s in no_lips] == ["frame_encoder_init", "llm_init"]


def test_standins_train_and_load_strictly_into_the_method(trained):
    assert set(trained) == {"frame_encoder_init", "lip_encoder_init", "llm_init"}
    paths = {f: str(e.path) for f, e in trained.items()}
    tok = TextTokenizer.from_pretrained_dir(paths["llm_init"])
    pg = PseudoGlossExtractor("en", backend="rules").fit(["a test sentence", "another one"])
    torch.manual_seed(0)
    method = SignBind("tiny", tokenizer=tok, pseudo_gloss=pg, **SMALL, **paths)
    for module, field in ((method.frame_encoder, "frame_encoder_init"),
                          (method.lip_encoder, "lip_encoder_init")):
        saved = read_state_dict(paths[field])
        own = module.state_dict()
        assert set(saved) == set(own)  # strict: exactly the part's keys
        for k, v in saved.items():
            assert torch.equal(own[k], v), k
    saved = read_state_dict(paths["llm_init"])
    base = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
            for n, p in method.llm.state_dict().items() if "lora_" not in n}
    key = "model.embed_tokens.weight"
    assert torch.equal(base[key], saved[key])


def test_a_mismatching_vit_fails_to_load(trained):
    with pytest.raises(ValueError, match=r"shape mismatch|missing key"):
        SignBind("tiny", **{**SMALL, "frame_dim": 64},
                 frame_encoder_init=str(trained["frame_encoder_init"].path))
