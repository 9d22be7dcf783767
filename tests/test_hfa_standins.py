"""HFA's pretrained stand-ins (issue 20): the declared DINOv2-ViT (``vit_init``) and mBART-cc25
(``init``) stand-ins train at tiny sizes, load strictly into the method built with their paths,
the loaded parts hold the stand-ins' weights (ψ_te included), the aids they replace are off by
default, and a stand-in of another size is refused.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import synthetic_split

from baselines import get_method
from baselines.common.weights import read_state_dict
from baselines.hfa import HFA, HFAConfig
from harness.pretrain import ensure_standins
from harness.text import PseudoGlossExtractor, TextTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SMALL = dict(img_size=14, vit_dim=32, vit_depth=1, vit_heads=2, vit_lora_blocks=1, frame_dim=32,
             temporal_dim=32, temporal_heads=2, temporal_ffn=64, d_model=32, mbart_layers=(1, 1),
             mbart_heads=2, mbart_ffn=64, mbart_max_positions=128)


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    paths, summary = ensure_standins("hfa", "tiny", SMALL, root=root, train_size=16,
                                     resolution=16, progress=False)
    return paths, summary


def test_declares_the_papers_parts():
    tiny, paper = HFA.standins("tiny", {}), HFA.standins("paper", {})
    for decl in (tiny, paper):
        assert [(s.field, s.kind) for s in decl] == [("vit_init", "vit"), ("init", "mbart")]
        assert "DINOv2" in decl[0].paper and "mBART" in decl[1].paper
        vit = decl[0].config
        assert vit["normalize"]["mean"] == [0.485, 0.456, 0.406] and vit["readouts"] == ["cls"]
    assert tiny[0].config["resolution"] == 28 and paper[0].config["resolution"] == 224
    assert paper[0].config["kwargs"]["embed_dim"] == 384 and paper[1].config["size"]["d_model"] \
        == 1024
    # the stand-ins replace the tiny-only warm-ups: both are off by default
    assert HFAConfig().frame_pretrain_epochs == 0 and HFAConfig().text_pretrain_epochs == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no texts: hash-vector prototypes
        first = get_method("hfa", "tiny", **SMALL).stages()[0].name
    assert first == "pretrain"


def test_standins_load_strictly_with_their_weights(standins):
    paths, summary = standins
    assert set(paths) == {"vit_init", "init"} and summary["hash"]
    train = synthetic_split("train", 16, seed=0)
    tok = TextTokenizer.from_pretrained_dir(paths["init"], "de")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pg = PseudoGlossExtractor("de").fit([s.text for s in train])
    m = get_method("hfa", "tiny", tokenizer=tok, pseudo_gloss=pg,
                   train_texts=[s.text for s in train], **SMALL, **paths)
    vit_file = read_state_dict(paths["vit_init"])
    own = m.vit.state_dict()
    assert set(vit_file) == set(own)
    assert all(torch.equal(own[k], v) for k, v in vit_file.items())
    mbart_file = read_state_dict(paths["init"])
    enc = "model.encoder.layers.0.self_attn.k_proj.weight"
    assert torch.equal(m.mbart.state_dict()[enc], mbart_file[enc])
    # the frozen text encoder ψ_te is the stand-in's encoder
    assert torch.equal(m.text_encoder.state_dict()[enc.removeprefix("model.encoder.")],
                       mbart_file[enc])
    assert m.mbart.get_input_embeddings().weight.shape[0] == tok.vocab_size


def test_a_standin_of_another_size_is_refused(standins):
    paths, _ = standins
    with pytest.raises(ValueError, match="shape mismatch"):
        get_method("hfa", "tiny", **{**SMALL, "vit_dim": 64, "vit_init": paths["vit_init"]})
