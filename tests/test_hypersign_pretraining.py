"""HyperSign's pre-trained parts: the S2G (CTC) and G2T stages, frozen extractors and their
feature cache, the gloss bridge, the encoders' keypoint normalisation and VL-mapper skip path, and
mBART initialised from a local checkpoint.

The method is driven directly (collate → training_step / generate); nothing here uses the trainer
or the runner. The corpus, batch and ``make`` come from ``tests/test_hypersign.py``.
"""

from __future__ import annotations

import pytest
import test_hypersign
import torch
from test_hypersign import STREAMS, make

import baselines.hypersign as hs
from baselines.common import mbart as mb
from harness.data.batching import collate
from harness.method import ConfigError, TrainState
from harness.text import train_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
corpus = test_hypersign.corpus  # the same module-scoped fixtures
batch = test_hypersign.batch


_REAL_ENCODE = mb.encode


def _record_encode(seen, model, x, mask):
    seen["x"] = x.detach().clone()
    return _REAL_ENCODE(model, x, mask)


# ------------------------------------------------------------------------------ mBART init


def test_mbart_init_from_local_checkpoint_trims_vocabulary(corpus, tmp_path):
    """``init=PATH``: layers come from the checkpoint; embedding rows follow the piece strings."""
    train = corpus[0]
    big = train_tokenizer([s.text for s in train], vocab_size=300, lang="de")
    small = train_tokenizer([s.text for s in train[:8]], vocab_size=60, lang="de")
    torch.manual_seed(0)
    size = mb.MBartSize(d_model=32, encoder_layers=1, decoder_layers=1, heads=2, ffn=64,
                        max_positions=64)
    ckpt = mb.build_mbart(size, 0, big)
    ckpt.save_pretrained(tmp_path)
    big.save(tmp_path)  # tokenizer.json next to the checkpoint
    model = mb.build_mbart(size, 0, small, init=tmp_path)
    assert model.config.vocab_size == small.vocab_size
    old = ckpt.get_input_embeddings().weight
    new = model.get_input_embeddings().weight
    big_vocab = big.tokenizer.get_vocab()
    shared = 0
    for piece, idx in small.tokenizer.get_vocab().items():
        if piece in big_vocab:
            torch.testing.assert_close(new[idx], old[big_vocab[piece]])
            shared += 1
        else:  # a piece the checkpoint lacks starts from the mean embedding
            torch.testing.assert_close(new[idx], old.mean(0))
    assert shared > small.vocab_size // 2
    assert model.lm_head.weight.data_ptr() == new.data_ptr()  # still tied
    torch.testing.assert_close(model.model.encoder.layers[0].fc1.weight,
                               ckpt.model.encoder.layers[0].fc1.weight)
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        mb.build_mbart(size, 0, small, init=tmp_path / "missing")


# ------------------------------------------------------------------------------ stage 1 (S2G)


@pytest.fixture(scope="module")
def gloss_vocab(corpus):
    from harness.text import GlossVocab

    return GlossVocab.build([s.gloss for s in corpus[0]])


def test_stage_structure_with_glosses(corpus, gloss_vocab):
    m = make(corpus[2], gloss_vocab=gloss_vocab)
    assert m.needs_gloss
    pre, g2t, trans = m.stages()
    assert pre.name == hs.PRETRAIN_STAGE and pre.losses == ("ctc_v", "ctc_k", "ctc_f")
    assert pre.monitor == "loss" and trans.monitor == "bleu4" and trans.name == "hypersign"
    assert g2t.name == hs.G2T_STAGE and g2t.losses == ("loss_g2t",) and g2t.monitor == "loss"
    trained_g2t = set(m.apply_stage(g2t))
    assert any(n.startswith("gloss_embedding.") for n in trained_g2t)
    assert all(n.startswith(("gloss_embedding.", "mbart.")) for n in trained_g2t)
    trained = set(m.apply_stage(pre))
    assert trained and all(n.startswith(("rgb_encoder.", "keypoint_encoder.", "rgb_ctc.",
                                         "keypoint_ctc.", "fused_ctc.")) for n in trained)
    assert any(n.startswith("rgb_ctc.") for n in trained)
    assert any(n.startswith("fused_ctc.") for n in trained)
    assert any(n.startswith("keypoint_encoder.") for n in trained)
    trained2 = set(m.apply_stage(trans))
    assert not any(n.startswith(("rgb_encoder.", "keypoint_encoder.", "rgb_ctc.",
                                 "keypoint_ctc.", "fused_ctc.")) for n in trained2)
    assert any(n.startswith("rgb_mapper.") for n in trained2)
    assert any(n.startswith("mbart.") for n in trained2)
    # the bridge (default) trains the gloss embeddings on; bridge="none" freezes them
    assert any(n.startswith("gloss_embedding.") for n in trained2)
    m_nb = make(corpus[2], gloss_vocab=gloss_vocab, bridge="none")
    assert not any(n.startswith("gloss_embedding.") for n in m_nb.apply_stage(m_nb.stages()[2]))
    m_ft = make(corpus[2], gloss_vocab=gloss_vocab, freeze_extractors=False)
    assert any(n.startswith("keypoint_encoder.") for n in m_ft.apply_stage(m_ft.stages()[2]))
    # no glosses: the translation stage alone; pretrain_epochs / g2t_epochs = 0 drop a stage
    assert [s.name for s in make(corpus[2]).stages()] == ["hypersign"]
    assert [s.name for s in make(corpus[2], gloss_vocab=gloss_vocab,
                                 pretrain_epochs=0).stages()] == [hs.G2T_STAGE, "hypersign"]
    assert [s.name for s in make(corpus[2], gloss_vocab=gloss_vocab, pretrain_epochs=0,
                                 g2t_epochs=0).stages()] == ["hypersign"]
    assert not make(corpus[2]).bridge_on and not hasattr(make(corpus[2]), "gloss_embedding")
    single = make(corpus[2], gloss_vocab=gloss_vocab, stream="keypoints")
    assert single.stages()[0].losses == ("ctc_k",)
    assert single.stages()[2].name == "single-keypoints"
    aux = make(corpus[2], gloss_vocab=gloss_vocab, ctc_weight=0.5)
    assert aux.stages()[2].losses == ("loss_tv", "loss_tk", "ctc_v", "ctc_k", "ctc_f", "kl_enc",
                                      "kl_dec", "sst")
    # the auxiliary CTC loss fine-tunes the extractors and their heads
    assert any(n.startswith("keypoint_ctc.") for n in aux.apply_stage(aux.stages()[2]))


def test_pretrain_step_is_ctc_and_trains_only_extractors(corpus, gloss_vocab):
    train, _, tok = corpus
    m = make(tok, gloss_vocab=gloss_vocab).train()
    pre = m.stages()[0]
    b = collate(train[:5], streams=STREAMS, text_tokenizer=tok, gloss_vocab=gloss_vocab)
    m.apply_stage(pre)
    st = TrainState(stage=pre, stage_index=0, epoch=0, step=0, total_steps=10, global_step=0)
    torch.manual_seed(0)
    out = m.training_step(b, st)
    assert set(out) == {"loss", "ctc_v", "ctc_k", "ctc_f"}
    torch.testing.assert_close(out["loss"].detach(), out["ctc_v"] + out["ctc_k"] + out["ctc_f"])
    # independent reference: per-sample CTC (sum over time of the alignment lattice), / target
    # length, averaged — on the keypoint extractor output recomputed here in eval mode
    m.eval()
    with torch.no_grad():
        x, mask = m.keypoint_encoder(b.inputs["keypoints"], b.masks["keypoints"])
        lp = torch.log_softmax(m.keypoint_ctc(x), -1)
        ref = []
        for i in range(len(b)):
            n, g = int(mask[i].sum()), int(b.gloss_lengths[i])
            ctc = torch.nn.CTCLoss(blank=0, reduction="sum")
            ref.append(ctc(lp[i, :n, None], b.gloss_ids[i:i + 1, :g], torch.tensor([n]),
                           torch.tensor([g])) / g)
        st_eval = m.pretrain_step(b)
    torch.testing.assert_close(st_eval["ctc_k"], torch.stack(ref).mean(), rtol=1e-4, atol=1e-4)
    m.train()
    for p in m.parameters():
        p.grad = None
    out["loss"].backward()
    with_grad = {n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum()}
    assert with_grad and all(n.startswith(("rgb_encoder.", "keypoint_encoder.", "rgb_ctc.",
                                           "keypoint_ctc.", "fused_ctc.")) for n in with_grad)


def test_translation_stage_runs_frozen_extractors_as_feature_extraction(corpus, gloss_vocab,
                                                                        batch):
    m = make(corpus[2], gloss_vocab=gloss_vocab, encoder_dropout=0.5).train()
    trans = m.stages()[2]
    m.apply_stage(trans)
    st = TrainState(stage=trans, stage_index=2, epoch=0, step=0, total_steps=10, global_step=0)
    out = m.training_step(batch, st)
    out["loss"].backward()
    assert all(p.grad is None for n, p in m.named_parameters()
               if n.startswith(("rgb_encoder.", "keypoint_encoder.")))
    assert m.rgb_encoder.training  # restored after the eval-mode extraction
    # eval-mode extraction: dropout (0.5 here) off, so two passes give the same features
    f1, f2 = (m.extract(batch)["k"][0] for _ in range(2))
    torch.testing.assert_close(f1, f2)


def test_frozen_extractor_outputs_are_cached_in_training_only(corpus, gloss_vocab, batch):
    m = make(corpus[2], gloss_vocab=gloss_vocab).train()
    m.apply_stage(m.stages()[2])  # translation: frozen extractors
    first = m.extract(batch)  # computed, then cached per sample
    assert len(m._feature_cache) == 2 * len(batch)
    calls = []
    hook = m.rgb_encoder.register_forward_hook(lambda *a: calls.append(1))
    again = m.extract(batch)  # from the cache: the encoder does not run
    assert not calls
    for key in ("v", "k"):
        (x1, m1), (x2, m2) = first[key], again[key]
        assert torch.equal(m1[:, :m2.shape[1]], m2) and not m1[:, m2.shape[1]:].any()
        torch.testing.assert_close(x1[:, :x2.shape[1]] * m2[..., None], x2 * m2[..., None])
    m.eval()
    m.extract(batch)  # evaluation always runs the extractors (latency includes them)
    assert len(calls) == 1
    m.load_state_dict(m.state_dict())  # new weights invalidate the cache
    assert not m._feature_cache
    m.train()
    m.extract(batch)
    m.apply_stage(m.stages()[0])  # a new stage too (and stage 1 trains them: no caching)
    assert not m._feature_cache
    m.extract(batch)  # a miss extracts each sample alone (its row never depends on the batch)
    assert not m._feature_cache and len(calls) == 1 + len(batch) + 1
    hook.remove()
    nocache = make(corpus[2], gloss_vocab=gloss_vocab, cache_features=False).train()
    nocache.apply_stage(nocache.stages()[2])
    nocache.extract(batch)
    assert not nocache._feature_cache


def test_keypoint_normalisation_is_signer_invariant():
    from baselines.common.encoders import keypoint_feature_width, normalize_keypoints

    torch.manual_seed(0)
    kp = torch.rand(2, 7, 75, 3) * 0.5 + 0.25
    kp[..., 2] = 1.0
    kp[0, 3, 5, 2] = 0.0  # one undetected joint
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    feats = normalize_keypoints(kp, mask)
    assert feats.shape == (2, 7, keypoint_feature_width(75)) == (2, 7, 309)
    assert torch.all(feats[1, 5:] == 0)
    # a signer twice as large standing elsewhere: same features
    moved = kp.clone()
    moved[..., :2] = kp[..., :2] * 1.7 + torch.tensor([0.1, -0.2])
    torch.testing.assert_close(normalize_keypoints(moved, mask), feats, rtol=1e-4, atol=1e-4)
    # body part: shoulder midpoint at 0 on average, mean shoulder width 1
    body = feats[0, :, :225].view(7, 75, 3)[..., :2]
    torch.testing.assert_close(((body[:, 53] + body[:, 54]) / 2).mean(0), torch.zeros(2),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close((body[:, 53] - body[:, 54]).norm(dim=-1).mean(),
                               torch.tensor(1.0))
    # hand part: wrist-relative (wrist = 0), and the undetected joint is zero in both parts
    hands = feats[0, :, 225:].view(7, 2, 21, 2)
    assert torch.all(hands[:, :, 0] == 0)
    assert torch.all(body[3, 5] == 0) and torch.all(hands[3, 0, 5] == 0)
    assert normalize_keypoints(kp, mask, "image").shape == (2, 7, 225)


def test_vl_mapper_has_a_skip_path():
    from baselines.common.encoders import VLMapper

    mapper = VLMapper(8, 8)
    for p in mapper.net.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 3, 8)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    out, _ = mapper(x, mask)
    torch.testing.assert_close(out, x * mask[..., None])


# ------------------------------------------------------------------------------ G2T and bridge


def test_g2t_step_matches_mbart_on_gloss_embeddings(corpus, gloss_vocab):
    """Stage gloss2text = mBART's own seq2seq cross-entropy with the gloss embedding rows as
    ``inputs_embeds`` (independent reference: ``MBartForConditionalGeneration(labels=...)``)."""
    train, _, tok = corpus
    m = make(tok, gloss_vocab=gloss_vocab, label_smoothing=0.0).eval()
    g2t = m.stages()[1]
    b = collate(train[:5], streams=("keypoints",), text_tokenizer=tok, gloss_vocab=gloss_vocab)
    st = TrainState(stage=g2t, stage_index=1, epoch=0, step=0, total_steps=10, global_step=0)
    with torch.no_grad():
        out = m.training_step(b, st)
        assert set(out) == {"loss", "loss_g2t"}
        gmask = torch.arange(b.gloss_ids.shape[1])[None] < b.gloss_lengths[:, None]
        labels = b.text_ids[:, 1:].masked_fill(~b.text_mask[:, 1:], -100)
        ref = m.mbart(inputs_embeds=m.gloss_embedding(b.gloss_ids) * gmask[..., None],
                      attention_mask=gmask.long(), decoder_input_ids=b.text_ids[:, :-1],
                      decoder_attention_mask=b.text_mask[:, :-1].long(), labels=labels).loss
    torch.testing.assert_close(out["loss"], ref, rtol=1e-4, atol=1e-4)
    # the padded gloss positions do not matter: a different pad embedding, same loss
    with torch.no_grad():
        m.gloss_embedding.weight[gloss_vocab.pad_id] += 5.0
        torch.testing.assert_close(m.training_step(b, st)["loss"], out["loss"], rtol=1e-5,
                                   atol=1e-5)


def test_gloss_bridge_feeds_posteriors_times_gloss_embeddings(corpus, gloss_vocab, monkeypatch):
    train, _, tok = corpus
    m = make(tok, gloss_vocab=gloss_vocab, stream="keypoints").eval()
    b = collate(train[:4], streams=("keypoints",), text_tokenizer=tok, gloss_vocab=gloss_vocab)
    seen = {}
    monkeypatch.setattr(mb, "encode",
                        lambda model, x, mask: _record_encode(seen, model, x, mask))
    m.generate(b, beam_size=1, max_len=3)
    with torch.no_grad():
        x, mask = m.keypoint_encoder(b.inputs["keypoints"], b.masks["keypoints"])
        post = torch.softmax(m.keypoint_ctc(x), -1)
        expected = (m.keypoint_mapper(x, mask)[0]
                    + torch.einsum("bnc,cd->bnd", post, m.gloss_embedding.weight)
                    * mask[..., None])
    torch.testing.assert_close(seen["x"], expected, rtol=1e-5, atol=1e-5)
    plain = make(tok, gloss_vocab=gloss_vocab, stream="keypoints", bridge="none").eval()
    plain.load_state_dict(m.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain.inference_features(b)[0],
                                   m.keypoint_mapper(x, mask)[0])


def test_auxiliary_ctc_is_added_to_the_translation_loss(corpus, gloss_vocab):
    train, _, tok = corpus
    m = make(tok, gloss_vocab=gloss_vocab, stream="keypoints", ctc_weight=0.5).eval()
    trans = m.stages()[2]
    b = collate(train[:4], streams=("keypoints",), text_tokenizer=tok, gloss_vocab=gloss_vocab)
    st = TrainState(stage=trans, stage_index=2, epoch=0, step=0, total_steps=10, global_step=0)
    with torch.no_grad():
        out = m.training_step(b, st)
        ctc = m.pretrain_step(b)["ctc_k"]
    torch.testing.assert_close(out["ctc_k"], ctc)
    torch.testing.assert_close(out["loss"], out["loss_t"] + 0.5 * ctc, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bridge_fusion", ["joint", "average"])
def test_fused_bridge(corpus, gloss_vocab, batch, bridge_fusion):
    """Dual stream at inference: F_f + p_f · E_gloss (padded positions zero), with p_f the joint
    CTC head's posteriors over [x_v; x_k] (default) or ½(p_v + p_k) (the ablation)."""
    m = make(corpus[2], gloss_vocab=gloss_vocab, bridge_fusion=bridge_fusion).eval()
    assert hasattr(m, "fused_ctc") == (bridge_fusion == "joint")
    with torch.no_grad():
        x, mask = m.inference_features(batch)
        xv, mv = m.rgb_encoder(batch.inputs["frames"], batch.masks["frames"])
        xk, _ = m.keypoint_encoder(batch.inputs["keypoints"], batch.masks["keypoints"])
        if bridge_fusion == "joint":
            pf = torch.softmax(m.fused_ctc(torch.cat([xv, xk], -1)), -1)
        else:
            pf = 0.5 * (torch.softmax(m.rgb_ctc(xv), -1) + torch.softmax(m.keypoint_ctc(xk), -1))
        ff = m.fuse(m.rgb_mapper(xv, mv)[0], m.keypoint_mapper(xk, mv)[0], mv)
        expected = ff + pf @ m.gloss_embedding.weight * mv[..., None]
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    assert torch.all(x[~mask] == 0)
    assert m.stages()[0].losses == (("ctc_v", "ctc_k", "ctc_f") if bridge_fusion == "joint"
                                    else ("ctc_v", "ctc_k"))
    with pytest.raises(ConfigError, match="bridge_fusion"):
        make(corpus[2], gloss_vocab=gloss_vocab, bridge_fusion="max")
