"""The language-model stand-ins (``harness.pretrain.text``): they load where the methods load
real checkpoints, and their objective trains (loss below a fresh model's on the train texts)."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_pretrain_cache import LLAMA, MBART, MBART_SIZE, SMALL, TOY_KEY

import harness.pretrain as pt
from baselines.common.llm import build_llama, text_prefix
from baselines.common.mbart import MBartSize, build_mbart
from harness.method import StandIn
from harness.pretrain.data import load_pretrain_data
from harness.pretrain.text import (
    MASK,
    SoftPrefix,
    llama_loss,
    mbart_loss,
    noise_text,
    prefix_eval,
)
from harness.runner import pretrained_tokenizer_dir
from harness.text import TextTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{field: folder} of both toy stand-ins (10 epochs of 4 steps over the 32 texts), and the
    training texts."""
    root = tmp_path_factory.mktemp("lm")
    with pytest.MonkeyPatch.context() as mp:
        for kind in ("llama", "mbart"):
            recipe = replace(pt.RECIPES[kind], epochs=10, batch_size=8, lr=1e-2)
            mp.setitem(pt.RECIPES, kind, recipe)
        paths, _ = pt.ensure_standins(TOY_KEY, "tiny", {}, root=root, **SMALL)
    data = load_pretrain_data("synthetic", lang="de", train_size=32, resolution=16, seed=0)
    return paths, list(data.texts)


def _no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. a vocabulary resize
        return fn(*args, **kwargs)


def test_llama_loads_back_and_learned_the_texts(folders):
    paths, texts = folders
    folder = paths["llm_init"]
    assert pretrained_tokenizer_dir({"llm_init": folder}) is not None  # the runner's pick
    tok = TextTokenizer.from_pretrained_dir(folder, "de")
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.decode(tok.encode(texts[0])) == texts[0]
    size = LLAMA.config["overrides"]
    model = _no_warnings(build_llama, len(tok), profile="tiny", init=folder, **size)
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 1
    torch.manual_seed(0)
    fresh = build_llama(len(tok), profile="tiny", **size)
    trained, untrained = llama_loss(model, tok, texts), llama_loss(fresh, tok, texts)
    assert trained < untrained - 1.0, (trained, untrained)


def test_mbart_loads_back_and_learned_to_denoise(folders):
    paths, texts = folders
    folder = paths["init"]
    tok = TextTokenizer.from_pretrained_dir(folder, "de")
    assert tok.tokenizer.token_to_id(MASK) == tok.vocab_size - 1  # added after the vocabulary
    size = MBartSize(**MBART_SIZE)
    model = _no_warnings(build_mbart, size, tok.vocab_size, tok, init=folder)
    assert model.get_input_embeddings().weight.shape[0] == tok.vocab_size
    torch.manual_seed(0)
    fresh = build_mbart(size, tok.vocab_size, tok)
    trained = mbart_loss(model, tok, texts, "de", seed=7)
    untrained = mbart_loss(fresh, tok, texts, "de", seed=7)
    assert trained < untrained - 1.0, (trained, untrained)
    with pytest.raises(ValueError, match="does not match"):  # another size is refused
        build_mbart(MBartSize(**{**MBART_SIZE, "d_model": 64}), tok.vocab_size, tok, init=folder)


def test_noise_masks_poisson_spans_and_permutes_sentences():
    words = list("abcdefghijklmnopqrst")
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(50):
        out = noise_text(" ".join(words), "de", rng)
        kept = [w for w in out if w is not None]
        assert kept == [w for w in words if w in kept]  # order kept, one sentence
        assert all(a is not None or b is not None for a, b in itertools.pairwise(out))
        counts.append(len(words) - len(kept))
    assert 0.25 < np.mean(counts) / len(words) <= 0.36  # ~35 % of the words masked
    same = [noise_text("x y z w", "de", np.random.default_rng(3)) for _ in range(2)]
    assert same[0] == same[1]  # seeded
    two = "eins zwei drei. vier fünf sechs."
    orders = {" ".join(w for w in noise_text(two, "de", np.random.default_rng(s),
                                                mask_ratio=0.0) if w) for s in range(20)}
    assert orders == {"eins zwei drei. vier fünf sechs.", "vier fünf sechs. eins zwei drei."}


def test_unknown_config_keys_are_refused(tmp_path):
    data = load_pretrain_data("synthetic", lang="de", train_size=8, resolution=16, seed=0)
    bad = StandIn("llm_init", "llama", {"vocab_size": 100, "hidden": 3})
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['hidden'\]"):
        pt.TRAINERS["llama"](bad, data, tmp_path, recipe=pt.recipe_for("llama", 0),
                             progress=False)
    bad = StandIn("init", "mbart", {"size": {**MBART_SIZE, "width": 3}})
    with pytest.raises(ValueError, match="unknown size field"):
        pt.TRAINERS["mbart"](bad, data, tmp_path, recipe=pt.recipe_for("mbart", 0),
                             progress=False)
    assert MBART.kind == "mbart"


def _prefix_standin(prefix: dict | None) -> StandIn:
    config = {**LLAMA.config, **({"prefix": prefix} if prefix is not None else {})}
    return StandIn("llm_init", "llama", config)


def test_llama_with_a_soft_prefix_learns_to_read_it(tmp_path):
    """With ``prefix`` the stand-in's loss comes to depend on the prefix: untrained, the
    sentence's own noise-free prefix and another sentence's give the same loss; trained, its own
    gives less than half (the manifest reports both)."""
    data = load_pretrain_data("synthetic", lang="de", train_size=32, resolution=16, seed=0)
    prefix = {"tokens": 4, "target": "interp", "noise": 0.5, "prompt": "übersetze:"}
    recipe = replace(pt.recipe_for("llama", 0), epochs=40, batch_size=8, lr=1e-2)
    report = pt.TRAINERS["llama"](_prefix_standin(prefix), data, tmp_path, recipe=recipe,
                                  progress=False)
    initial, final = report.extra["prefix_loss"]["initial"], report.extra["prefix_loss"]["final"]
    assert abs(initial["own"] - initial["shuffled"]) < 0.05 * initial["own"], initial
    assert final["own"] < 0.5 * final["shuffled"], final  # it reads the prefix
    assert report.extra["eval_loss"]["final"] == final["own"]
    tok = TextTokenizer.from_pretrained_dir(tmp_path, "de")
    model = build_llama(len(tok), profile="tiny", init=tmp_path, **LLAMA.config["overrides"])
    again = prefix_eval(model, tok, list(data.texts), SoftPrefix.from_config(prefix, "x"))
    assert again == pytest.approx(final, rel=1e-5)  # what was saved is what was measured


@pytest.mark.parametrize(("prefix", "match"), [
    ({"target": "mean"}, "needs 'tokens'"),
    ({"tokens": 4, "width": 2}, "needs 'tokens' and only"),
    ({"tokens": 0}, "tokens must be >= 1"),
    ({"tokens": 4, "target": "max"}, "target one of"),
    ({"tokens": 4, "noise": -1}, "noise >= 0"),
])
def test_bad_prefix_configs_are_refused(tmp_path, prefix, match):
    data = load_pretrain_data("synthetic", lang="de", train_size=8, resolution=16, seed=0)
    with pytest.raises(ValueError, match=match):
        pt.TRAINERS["llama"](_prefix_standin(prefix), data, tmp_path,
                             recipe=pt.recipe_for("llama", 0), progress=False)


def test_text_prefix_mean_and_interp():
    torch.manual_seed(0)
    lm = build_llama(50, profile="tiny", **LLAMA.config["overrides"])
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = ids != 0
    emb = lm.get_input_embeddings().weight.detach()
    mean = text_prefix(lm, ids, mask, 3, "mean")
    assert mean.shape == (2, 3, 32)
    torch.testing.assert_close(mean[0, 2], emb[[5, 6, 7]].mean(0))
    torch.testing.assert_close(mean[1, 0], emb[[8, 9]].mean(0))
    interp = text_prefix(lm, ids, mask, 3, "interp")
    torch.testing.assert_close(interp[0], emb[[5, 6, 7]])  # 3 tokens → 3 positions: themselves
    torch.testing.assert_close(interp[1, 1], (emb[8] + emb[9]) / 2)
    assert not interp.requires_grad
    with pytest.raises(ValueError, match="how must be one of"):
        text_prefix(lm, ids, mask, 3, "first")
