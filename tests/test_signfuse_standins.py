"""SignFuse's pretrained stand-ins (issue 20; docs/methods/signfuse.md, "Pretrained stand-ins"):
what ``SignFuse.standins`` declares, that the declared stand-ins train (tiny sizes, a throw-away
cache) and that the method built with their paths loads them strictly — the loaded parts hold
the stand-ins' weights.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import baselines.signfuse as sf
from baselines import get_method
from baselines.common.resnet import ResNet
from baselines.signfuse.visual import IMAGENET_MEAN, IMAGENET_STD, VisualStream
from harness.pretrain import ensure_entries
from harness.pretrain.types import Recipe
from harness.text import TextTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(d_model=16, resnet_base_width=2, resnet_layers=(1, 1, 1, 1),
             stgcn_channels=(2, 4, 8, 8, 16), cmfa_layers=1, heads=2, hta_len=8, sign_tokens=4,
             llm_overrides={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                            "num_attention_heads": 2, "num_key_value_heads": 2})
#: recipes cut to seconds (the defaults are harness.pretrain's)
QUICK = {"resnet": Recipe(epochs=1, lr=1e-3, batch_size=8,
                          options={"frames": 32, "frames_per_video": 2}),
         "llama": Recipe(epochs=1, lr=5e-3, batch_size=8)}


def test_declares_the_papers_pretrained_parts():
    tiny = {s.field: s for s in sf.SignFuse.standins("tiny", {})}
    assert set(tiny) == {"resnet_init", "llm_init"}
    res, lm = tiny["resnet_init"], tiny["llm_init"]
    assert res.kind == "resnet" and "ResNet-50" in res.paper and "ImageNet" in res.paper
    assert lm.kind == "llama" and "LLaMA-2 7B" in lm.paper
    cfg = sf.SignFuseConfig()
    assert res.config["kwargs"] == {"layers": list(cfg.resnet_layers), "block": "bottleneck",
                                    "base_width": cfg.resnet_base_width}
    assert res.config["resolution"] == sf.model.TINY_DATA["resolution"]
    assert res.config["normalize"] == {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    assert res.config["stream"] == "frames" and res.config["call"] == "forward"
    assert lm.config == {"vocab_size": sf.SignFuse.tokenizer_vocab_size,
                         "tokenizer_kind": sf.SignFuse.tokenizer_kind, "profile": "tiny",
                         "overrides": {},
                         "prefix": {"tokens": cfg.sign_tokens, "target": cfg.align_target,
                                    "noise": cfg.llm_pretrain_noise, "prompt": cfg.prompt}}
    # the prefix follows the method's N_s and alignment target; off: a text-only causal LM
    interp = {s.field: s for s in sf.SignFuse.standins("tiny", {"align_target": "interp",
                                                               "sign_tokens": 5})}
    assert interp["llm_init"].config["prefix"] | {"target": "interp", "tokens": 5} == (
        interp["llm_init"].config["prefix"])
    plain = {s.field: s for s in sf.SignFuse.standins("tiny", {"llm_standin_prefix": False})}
    assert "prefix" not in plain["llm_init"].config
    # overrides flow into the declaration; a stream not in use declares nothing
    small = {s.field: s for s in sf.SignFuse.standins("tiny", SMALL)}
    assert small["resnet_init"].config["kwargs"]["base_width"] == 2
    assert small["llm_init"].config["overrides"] == SMALL["llm_overrides"]
    assert [s.field for s in sf.SignFuse.standins("tiny", {"streams": "skeletal"})] == [
        "llm_init"]
    # paper: ResNet-50 at full width on the paper resolution, the 7B-sized LLaMA
    paper = {s.field: s for s in sf.SignFuse.standins("paper", {})}
    assert paper["resnet_init"].config["kwargs"]["base_width"] == 64
    from harness.pretrain.data import PROFILE_DATA

    assert paper["resnet_init"].config["resolution"] == PROFILE_DATA["paper"]["resolution"]
    assert paper["llm_init"].config["profile"] == "paper"
    with torch.device("meta"):  # the declared part is exactly VisualStream's backbone
        part = ResNet(**paper["resnet_init"].config["kwargs"])
        own = VisualStream(512, 64).backbone
    assert {k: v.shape for k, v in part.state_dict().items()} == {
        k: v.shape for k, v in own.state_dict().items()}


def test_standins_train_and_load_strictly_into_the_method(tmp_path):
    entries = ensure_entries("signfuse", "tiny", SMALL, root=tmp_path, train_size=16,
                             resolution=32, recipes=QUICK, progress=False)
    paths = {e.field: str(e.path) for e in entries}
    assert set(paths) == {"resnet_init", "llm_init"}
    assert {e.status for e in entries} == {"trained"}
    tok = TextTokenizer.from_pretrained_dir(paths["llm_init"], lang="de")
    torch.manual_seed(0)
    model = get_method("signfuse", "tiny", tokenizer=tok, **SMALL, **paths)
    # the visual backbone holds the ResNet stand-in's weights, every one of them
    saved = load_file(f"{paths['resnet_init']}/model.safetensors")
    own = model.visual.backbone.state_dict()
    assert set(saved) == set(own)
    for k, v in saved.items():
        torch.testing.assert_close(own[k], v, rtol=0, atol=0)
    # the LLM's frozen weights are the llama stand-in's (LoRA wraps q / v; the base is kept)
    lm = load_file(f"{paths['llm_init']}/model.safetensors")
    emb = model.llm.get_input_embeddings().weight
    torch.testing.assert_close(emb, lm["model.embed_tokens.weight"], rtol=0, atol=0)
    assert emb.shape[0] == len(tok)
    # a random start differs (the check above is not vacuous)
    torch.manual_seed(0)
    fresh = get_method("signfuse", "tiny", tokenizer=tok, **SMALL)
    assert not torch.equal(fresh.visual.backbone.conv1.weight, own["conv1.weight"])
    # the aids those stand-ins replace are off: the paper's three stages only
    assert [s.name for s in model.stages()] == ["contrastive", "alignment", "finetune"]
    # a field the user sets is neither trained nor replaced
    kept = ensure_entries("signfuse", "tiny", {**SMALL, "resnet_init": paths["resnet_init"]},
                          root=tmp_path, train_size=16, resolution=32, recipes=QUICK,
                          progress=False)
    assert [(e.field, e.status) for e in kept] == [("llm_init", "reused")]


def test_the_stgcn_keypoint_standin_is_an_ablation_that_loads_strictly(tmp_path):
    """``stgcn_standin`` (off by default: the paper's ST-GCN starts random) declares a
    ``keypoint`` stand-in trained through ``StridedSTGCN`` — the method's ST-GCN reading every
    ``frame_stride``-th frame — whose weights load strictly through ``stgcn_init``."""
    from baselines.common.weights import save_weights
    from baselines.signfuse.stgcn import STGCN, StridedSTGCN
    from harness.pretrain.parts import build_part

    assert "stgcn_init" not in {s.field for s in sf.SignFuse.standins("tiny", SMALL)}
    decl = {s.field: s for s in sf.SignFuse.standins("tiny", {**SMALL, "stgcn_standin": True})}
    st = decl["stgcn_init"]
    assert st.kind == "keypoint" and st.config["stream"] == "keypoints"
    torch.manual_seed(3)
    part = build_part(st.config)
    assert isinstance(part, StridedSTGCN) and part.frame_stride == sf.SignFuseConfig().frame_stride
    plain = STGCN(SMALL["stgcn_channels"], 5, (2, 1, 1, 1), 0.2, hand_gain=3.0)
    plain.load_state_dict(part.state_dict(), strict=True)
    kp, mask = torch.randn(2, 24, 75, 3), torch.ones(2, 24, dtype=torch.bool)
    mask[1, 17:] = False
    part.eval()
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(part(kp, mask)[0], plain(kp[:, ::4], mask[:, ::4])[0])
    path = save_weights(part, tmp_path / "stgcn.safetensors")
    torch.manual_seed(0)
    model = get_method("signfuse", "tiny", tokenizer=None, **SMALL, stgcn_init=str(path))
    for k, v in part.state_dict().items():
        torch.testing.assert_close(model.skeletal.state_dict()[k], v, rtol=0, atol=0)
