"""SignFuse the method: the paper profile's parameter budget, override checks, stage freezing, the
fused-backend inference path, ablations, the tiny profile's aids (LLM and stream pre-training,
sign-token scale, frozen-encoder cache, BN statistics) and short learning runs.

The method is driven directly (collate → training_step / optimiser / generate); the runner is not
used here (``signbench run --methods signfuse`` is the end-to-end check). Its building blocks are
tested in ``tests/test_signfuse_modules.py``.
"""

from __future__ import annotations

import math
from functools import cache

import pytest
import torch
import torch.nn.functional as F
from conftest import stage_state

import baselines.signfuse as sf
from baselines import get_method, list_methods
from baselines.signfuse.sla import SLA
from baselines.signfuse.visual import VisualStream
from harness import ops
from harness.data import load_dataset
from harness.data.batching import collate
from harness.evaluate import MethodEvaluator
from harness.method import ConfigError, TrainState
from harness.text import train_tokenizer

# Smaller than tiny so the file runs in seconds on 2 CPU cores.
SMALL = dict(d_model=16, resnet_base_width=2, stgcn_channels=(2, 4, 8, 8, 16), cmfa_layers=1,
             heads=2, hta_len=8, sign_tokens=4, dropout=0.0, lora_dropout=0.0,
             llm_overrides={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                            "num_attention_heads": 2, "num_key_value_heads": 2})
STREAMS = ("frames", "keypoints")
#: the two tiny-only aids, off by default since the stand-ins (issue 20): ablations
AIDS = dict(stream_pretrain_epochs=8, llm_pretrain_epochs=5)


@cache
def _corpus():
    ds = load_dataset("synthetic", "train", lang="de", size=24, resolution=32, seed=0)
    samples = sorted((ds[i] for i in range(24)), key=lambda s: s.num_frames)[:8]
    tok = train_tokenizer([ds[i].text for i in range(24)], vocab_size=1000, lang="de")
    return samples, tok


def _batch(n: int = 4):
    samples, tok = _corpus()
    return collate(samples[:n], streams=STREAMS, text_tokenizer=tok)


def _model(**kw) -> sf.SignFuse:
    torch.manual_seed(0)
    return get_method("signfuse", "tiny", tokenizer=_corpus()[1], **{**SMALL, **kw})


def _state(model, name: str) -> TrainState:
    return stage_state(model, name)


# ------------------------------------------------------------------------------ paper profile


def test_paper_profile_on_meta_and_parameter_budget():
    _, tok = _corpus()
    with torch.device("meta"):
        model = get_method("signfuse", "paper", tokenizer=tok)
    rep = model.param_report()
    comps = rep["components"]
    d = 512
    lin = lambda i, o: i * o + o  # noqa: E731
    cmfa_layer = 6 * lin(d, d) + lin(2 * d, d) + 2 * d + lin(d, 4 * d) + lin(4 * d, d) + 2 * d
    assert comps["cmfa"] == 3 * cmfa_layer
    assert comps["sla"] == lin(d, 4096) + lin(4096, 4096) + 2 * 4096
    assert comps["lora"] == 32 * 2 * 16 * (4096 + 4096)  # r = 16 on q_proj and v_proj
    assert comps["visual"] == 23_508_032 + (2048 * 3 * d + d) + 2 * d
    hta = sum(d * k + d for k in (1, 5, 11)) + lin(3 * d, d) + 4 * d * d + 4 * d + 2 * d
    assert comps["hta"] == hta
    # the LLM is LLaMA-2-7B-sized (vocabulary trimmed to the tokenizer)
    assert model.llm.config.hidden_size == 4096 and model.llm.config.num_hidden_layers == 32
    trainable = rep["trainable_excluding_llm"]
    assert abs(trainable / 65.9e6 - 1) < 0.15, trainable
    # the finetune stage trains exactly that set
    model.apply_stage(model.stages()[-1])
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable
    assert [s.name for s in model.stages()] == ["contrastive", "alignment", "finetune"]
    assert [s.epochs for s in model.stages()] == [30, 20, 15]


# ------------------------------------------------------------------------------ training


def test_registered_and_overrides_checked():
    assert "signfuse" in list_methods()
    with pytest.raises(ConfigError, match="unknown override"):
        _model(no_such_knob=1)
    with pytest.raises(ConfigError, match="fusion"):
        _model(fusion="bogus")
    with pytest.raises(ValueError, match="scales"):
        _model(hta_scales=[3])


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_stage_freezing_really_freezes():
    model = _model(**AIDS)
    batch = _batch()
    stages = {s.name: s for s in model.stages()}
    assert list(stages) == ["stream_pretrain", "llm_pretrain", "contrastive", "alignment",
                            "finetune"]
    for name, stage in stages.items():
        trainable = set(model.apply_stage(stage))
        before = _snapshot(model)
        bn = model.skeletal.data_bn.running_mean.clone()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        model.train()
        out = model.training_step(batch, _state(model, name))
        assert set(stage.losses) <= set(out)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
        assert changed <= trainable, (name, sorted(changed - trainable)[:5])
        assert changed, name
        if name == "stream_pretrain":
            assert all(n.startswith(("skeletal.", "word_heads.")) for n in trainable)
        if name == "llm_pretrain":
            assert all(n.startswith("llm.") and "lora_" not in n for n in trainable)
        if name == "contrastive":
            assert changed & {n for n in trainable if n.startswith("visual.")}
            assert changed & {n for n in trainable if n.startswith("skeletal.")}
            assert not any(n.startswith(("llm.", "hta.", "sla.")) for n in trainable)
        if name == "alignment":
            assert not any(n.startswith(("visual.", "skeletal.", "llm.")) for n in trainable)
            assert torch.equal(model.skeletal.data_bn.running_mean, bn)  # eval-mode encoders
        if name == "finetune":
            llm = [n for n in trainable if n.startswith("llm.")]
            assert llm and all("lora_" in n for n in llm)
            assert set(llm) == set(model.lora_names)
            assert any(n.startswith("llm.") for n in changed)
            assert any(n.startswith("visual.") for n in changed)


def test_backend_switch_gives_same_generation():
    ok, reason = ops.availability("native", "cpu")
    if not ok:
        pytest.skip(reason)
    from harness.ops import gated_fusion

    model = _model().eval()
    batch = _batch()
    calls = []
    native = gated_fusion._FORWARD["native"]

    def counting(*args):
        calls.append(1)
        return native(*args)

    with ops.use_backend("torch"):
        ref = model.generate(batch, beam_size=2, max_len=8)
    gated_fusion._FORWARD["native"] = counting
    try:
        with ops.use_backend("native"):
            out = model.generate(batch, beam_size=2, max_len=8)
    finally:
        gated_fusion._FORWARD["native"] = native
    assert calls, "generation did not go through the fused gated blend"
    assert out == ref and len(out) == 4
    with ops.use_backend("torch"):
        e_ref = model.sign_embeddings(model.streams(batch))
    with ops.use_backend("native"):
        e_nat = model.sign_embeddings(model.streams(batch))
    torch.testing.assert_close(e_nat, e_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kw", [
    {"streams": "visual"}, {"streams": "skeletal"}, {"fusion": "concat"}, {"fusion": "add"},
    {"fusion": "v2s"}, {"fusion": "s2v"}, {"fusion": "nogate"},
])
def test_ablations_train_and_generate(kw):
    model = _model(**kw)
    batch = _batch(2)
    names = [s.name for s in model.stages()]
    if kw.get("streams") in ("visual", "skeletal"):
        assert "contrastive" not in names and model.inputs == (
            ("frames",) if kw["streams"] == "visual" else ("keypoints",))
        assert not hasattr(model, "cmfa")
    else:
        assert type(model.cmfa.layers[0].fusion).__name__ == "AblationFusion"
    model.apply_stage(model.stages()[-1])
    out = model.training_step(batch, _state(model, "finetune"))
    out["loss"].backward()
    assert math.isfinite(float(out["loss"].detach()))
    assert ("loss_contra" in out) == model.dual
    model.eval()
    assert len(model.generate(batch, beam_size=1, max_len=3)) == 2


def test_temporal_and_schedule_ablations():
    batch = _batch(2)
    model = _model(hta_scales=[1, 11])
    assert model.hta.scales == (1, 11) and len(model.hta.convs) == 2
    assert model.hta.proj.in_features == 2 * SMALL["d_model"]
    assert model.sign_embeddings(model.streams(batch)).shape == (2, 4, 32)
    model = _model(use_hta=False)
    assert not hasattr(model, "hta")
    assert model.sign_embeddings(model.streams(batch)).shape == (2, 4, 32)
    model = _model(training="single")
    stages = model.stages()
    assert [s.name for s in stages] == ["finetune"]
    assert stages[-1].epochs == sum(sf.SignFuseConfig().epochs)
    model = _model(training="single", **AIDS)
    stages = model.stages()
    assert [s.name for s in stages] == ["stream_pretrain", "llm_pretrain", "finetune"]  # aids kept
    assert stages[-1].epochs == sum(sf.SignFuseConfig().epochs)


@pytest.mark.slow
def test_tiny_run_learns():
    """Each stage's loss falls on 6 synthetic samples (LM pre-training, then fine-tuning)."""
    model = _model(**AIDS)
    batch = _batch(6)

    def run(name: str, steps: int, key: str) -> tuple[float, float]:
        stage = next(s for s in model.stages() if s.name == name)
        model.apply_stage(stage)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        state = _state(model, name)
        values = []
        for _ in range(steps):
            out = model.training_step(batch, state)
            values.append(float(out[key].detach()))
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
        return values[0], min(values[-3:])

    first, last = run("llm_pretrain", 10, "loss_lm")
    assert last < 0.7 * first, (first, last)
    # the optimised objective (L_LM + λ2 L_align + λ1 L_contra) falls; L_align alone may rise
    # at first now that the sign tokens start at the LM's embedding scale (its value is small)
    first, last = run("finetune", 6, "loss")
    assert last < first, (first, last)


def test_resnet_init_loads_local_weights(tmp_path):
    from baselines.common.weights import save_weights

    torch.manual_seed(1)
    source = VisualStream(16, 2)
    path = save_weights(source.backbone, tmp_path / "resnet.safetensors")
    model = _model(resnet_init=str(path))
    torch.testing.assert_close(model.visual.backbone.conv1.weight, source.backbone.conv1.weight)
    with pytest.raises(ValueError, match="shape mismatch"):
        _model(resnet_init=str(path), resnet_base_width=4)


def test_llm_pretrain_reads_a_text_prefix_and_prefix_use_report():
    model = _model(**AIDS)
    batch = _batch(4)
    state = _state(model, "llm_pretrain")
    prefix = model.pretrain_prefix(batch)
    assert prefix.shape == (4, SMALL["sign_tokens"], 32)
    model.config.llm_pretrain_noise = 0.0
    torch.testing.assert_close(model.pretrain_prefix(batch), model.align_target(batch))
    with torch.no_grad():
        with_text = float(model.training_step(batch, state)["loss"])
        model.config.llm_pretrain_prefix = "none"
        prompt_only = float(model.training_step(batch, state)["loss"])
    assert with_text != prompt_only  # the stand-in sign tokens reach the LM
    samples, _ = _corpus()
    cpu = torch.device("cpu")
    extra = model.extra_metrics("dev", samples[:4], device=cpu, batch_size=4,
                                evaluator=MethodEvaluator(model, cpu))
    assert set(extra["lm_loss"]) == {"real", "shuffled", "prompt_only"}
    assert all(math.isfinite(v) for v in extra["lm_loss"].values())


def test_sign_tokens_start_at_the_llm_embedding_scale():
    """Regression (tiny profile did not learn): the SLA's output LayerNorm had gain 1, so every
    sign token had RMS 1 while the LM's input embeddings have RMS ≈ 0.02 — the sign tokens
    swamped the frozen LM and ‖E_sign − E_text‖² only measured that gap. Now they match."""
    model = _model()
    model.eval()
    rms = model.embedding_rms()
    ref = float(model.llm.get_input_embeddings().weight.detach().pow(2).mean().sqrt())
    assert rms == pytest.approx(ref)
    with torch.no_grad():
        e_sign = model.sign_embeddings(model.streams(_batch(4)))
    e_rms = float(e_sign.pow(2).mean().sqrt())
    assert 0.5 * rms < e_rms < 2.0 * rms, (e_rms, rms)
    with pytest.raises(ValueError, match="out_scale"):
        SLA(8, 8, 2, out_scale=0.0)


def test_align_loss_is_per_token_squared_norm():
    model = _model()
    batch = _batch(3)
    e_sign = torch.randn(3, SMALL["sign_tokens"], 32)
    target = model.align_target(batch)
    ref = sum(float(((e_sign[b, i] - target[b, i]) ** 2).sum())
              for b in range(3) for i in range(SMALL["sign_tokens"])) / (3 * SMALL["sign_tokens"])
    assert float(model.align_loss(e_sign, batch)) == pytest.approx(ref, rel=1e-5)


def test_alignment_stage_caches_frozen_stream_features_exactly():
    model = _model()
    batch = _batch(4)
    stages = {s.name: s for s in model.stages()}
    model.apply_stage(stages["alignment"])
    model.train()
    state = _state(model, "alignment")
    first = model.training_step(batch, state)
    assert model._cache_streams and len(model._stream_cache) == len(batch.names)
    assert all(n in model._stream_cache for n in batch.names)
    # a second step must not run the (frozen) encoders again, and must give the same features
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1))
             for m in (model.visual, model.skeletal)]
    torch.manual_seed(1)
    model.eval()  # no dropout: the cached and fresh paths must agree exactly
    model._in_training_step = True
    cached = model.streams(batch)
    model._in_training_step = False
    assert not calls
    fresh = model.streams(batch)  # outside training_step: never the cache
    assert calls
    for h in hooks:
        h.remove()
    for key in ("v", "s"):
        (fc, mc), (ff, mf) = cached[key], fresh[key]
        n = fc.shape[1]
        assert torch.equal(mc, mf[:, :n]) and not mf[:, n:].any()
        # the cache computes each sample alone (SampleCache.fetch): the batch's GEMM shapes
        # differ, so only the last bits may
        torch.testing.assert_close(fc, ff[:, :n], rtol=0, atol=1e-5)
    model.train()
    again = model.training_step(batch, state)
    assert torch.isfinite(again["loss"]) and torch.isfinite(first["loss"])
    # a stage that trains the encoders drops the cache
    model.apply_stage(stages["finetune"])
    assert not model._cache_streams and len(model._stream_cache) == 0
    # and outside training_step (generate, reports) the cache is never read or filled
    model.apply_stage(stages["alignment"])
    model.streams(batch)
    assert len(model._stream_cache) == 0


def test_a_samples_streams_do_not_depend_on_the_batch_padding():
    # the ST-GCN's graph conv + BN + ReLU makes padded steps non-zero; they must not reach
    # valid outputs through the temporal conv (they did, by up to 0.04, before the fix)
    from baselines.common.sample_cache import one_sample

    model = _model().eval()
    batch = _batch(6)
    with torch.no_grad():
        full = model._compute_streams(batch)
        for i in range(len(batch.names)):
            alone = model._compute_streams(one_sample(batch, i))
            for key, (f, m) in alone.items():
                n = int(m.sum())
                assert int(full[key][1][i].sum()) == n
                torch.testing.assert_close(full[key][0][i, :n], f[0, :n], rtol=0, atol=1e-5)


def test_encoder_bn_statistics_are_the_stage_average():
    """Tiny profile: the stream encoders' BN running statistics are reset when a stage starts
    training them and then are the cumulative average of that stage's batches, so the frozen
    (eval-mode) encoders of the next stage see the statistics they were trained with — with the
    default momentum 0.1 and init statistics the eval-mode skeletal features were nearly
    constant across samples (docs/methods/signfuse.md, "Encoder BatchNorm statistics")."""
    model = _model()
    stages = {s.name: s for s in model.stages()}
    norms = model._encoder_norms()
    assert norms and all(bn.momentum is None for bn in norms)
    assert get_method("signfuse", "paper", tokenizer=None, d_model=16, heads=2,
                      stgcn_channels=(2, 4, 8, 8, 16), resnet_base_width=2, hta_len=8,
                      sign_tokens=4, cmfa_layers=1, llm_profile="tiny",
                      ).config.bn_momentum == 0.1
    bn = model.skeletal.data_bn
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
    model.apply_stage(stages["contrastive"])
    assert float(bn.running_mean.abs().max()) == 0.0 and int(bn.num_batches_tracked) == 0
    model.train()
    batches = [_batch(4), collate(_corpus()[0][4:8], streams=STREAMS,
                                  text_tokenizer=_corpus()[1])]
    means = []
    for b in batches:
        means.append(bn.running_mean.clone() * 0)
        before = bn.running_mean.clone() * int(bn.num_batches_tracked)
        with torch.no_grad():
            model.training_step(b, _state(model, "contrastive"))
        means[-1] = bn.running_mean * int(bn.num_batches_tracked) - before
    torch.testing.assert_close(bn.running_mean, (means[0] + means[1]) / 2)
    assert int(bn.num_batches_tracked) == 2
    # the next epoch of that stage starts a new average (round 6: only the last epoch counts)
    from dataclasses import replace as dc_replace

    with torch.no_grad():
        model.training_step(batches[1], dc_replace(_state(model, "contrastive"), epoch=1))
    assert int(bn.num_batches_tracked) == 1
    torch.testing.assert_close(bn.running_mean, means[1])
    with torch.no_grad():
        model.training_step(batches[0], dc_replace(_state(model, "contrastive"), epoch=1))
    assert int(bn.num_batches_tracked) == 2  # same epoch: the average goes on
    # a frozen-encoder stage keeps them
    kept = bn.running_mean.clone()
    model.apply_stage(stages["alignment"])
    model.training_step(batches[0], _state(model, "alignment"))
    assert torch.equal(bn.running_mean, kept)


@cache
def _text_batch(n: int = 64):
    """``n`` other training sentences (keypoints only, 16 px): the LM pre-training set."""
    ds = load_dataset("synthetic", "train", lang="de", size=n, resolution=16, seed=1)
    return collate([ds[i] for i in range(n)], streams=("keypoints",),
                   text_tokenizer=_corpus()[1])


def test_pipeline_learns_a_video_dependent_mapping():
    """After a short training the LM predicts each sample's sentence better from its *own* video
    than from another sample's (sign tokens rolled by one in the batch); before it did not.

    LM pre-trained behind text stand-in tokens on 64 *other* sentences (so it reads its prefix
    instead of memorising the 8 test sentences), then 40 ``alignment`` steps (L_align + L_LM;
    frozen encoders, CMFA / HTA / SLA trained) on 8 fixed samples. What breaks it: detaching
    E_sign (no gradient reaches the adapter), an SLA / HTA that pools away the per-sample
    content (e.g. a constant output), or an LM that ignores the prefix (prompt-only
    pre-training on the 8 test sentences: measured real = shuffled).
    """
    model = _model(**AIDS)
    batch = _batch(8)

    def train(name: str, data, steps: int) -> None:
        stage = next(s for s in model.stages() if s.name == name)
        model.apply_stage(stage)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        state = _state(model, name)
        for _ in range(steps):
            loss = model.training_step(data, state)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()

    def use() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            out = model.prefix_use(batch)
        model.train()
        return out

    train("llm_pretrain", _text_batch(), 60)
    model.apply_stage(next(s for s in model.stages() if s.name == "alignment"))
    before = use()
    assert abs(before["real"] - before["shuffled"]) < 0.05, before
    train("alignment", batch, 40)
    after = use()
    assert after["real"] < after["shuffled"] - 0.1, after
    assert after["real"] < before["real"] - 0.3, (before, after)


# ------------------------------------------------------------------------------ stream_pretrain


def test_stream_pretrain_stage_trains_only_the_stream_and_its_head():
    """The tiny-only aid (docs/methods/signfuse.md, "Stream pre-training"): first stage, trains
    the ST-GCN and its word-presence head only, and its loss equals an independent BCE against
    the multi-hot of the sentence's tokens computed from the tokenizer directly."""
    model = _model(stream_pretrain_epochs=1, llm_pretrain_epochs=1,
                   stgcn_dropout=0.0)  # deterministic forward
    tok = _corpus()[1]
    batch = _batch(4)
    stages = model.stages()
    assert [s.name for s in stages][:2] == ["stream_pretrain", "llm_pretrain"]
    trainable = set(model.apply_stage(stages[0]))
    assert trainable and all(n.startswith(("skeletal.", "word_heads.s.")) for n in trainable)
    assert any(n.startswith("word_heads.") for n in trainable)
    model.train()
    # independent reference first (train-mode BN: the output uses batch statistics only)
    k = model.config.frame_stride
    with torch.no_grad():
        feats, mask = model.skeletal(batch.inputs["keypoints"][:, ::k],
                                     batch.masks["keypoints"][:, ::k])
        vocab = model.llm.get_input_embeddings().weight.shape[0]
        special = {tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id}
        total = 0.0
        for i, text in enumerate(batch.texts):
            words = {t for t in tok.encode(text, add_special=False) if t not in special}
            y = torch.tensor([1.0 if v in words else 0.0 for v in range(vocab)])
            n = int(mask[i].sum())
            z = model.word_heads["s"].proj(feats[i, :n].max(0).values)
            total = total + float(F.binary_cross_entropy_with_logits(z, y, reduction="sum"))
    calls = []
    hook = model.visual.register_forward_hook(lambda *a: calls.append(1))
    out = model.training_step(batch, _state(model, "stream_pretrain"))
    hook.remove()
    assert not calls  # the visual stream is not aided by default: it is not even run
    assert float(out["loss"].detach()) == pytest.approx(total / len(batch.texts), rel=1e-4)
    before = _snapshot(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= trainable and any(n.startswith("skeletal.") for n in changed)
    # off by default in the paper profile: no stage, no head, parameter budget untouched
    paper = get_method("signfuse", "paper", tokenizer=None, d_model=16, heads=2,
                       stgcn_channels=(2, 4, 8, 8, 16), resnet_base_width=2, hta_len=8,
                       sign_tokens=4, cmfa_layers=1, llm_profile="tiny")
    assert "stream_pretrain" not in [s.name for s in paper.stages()]
    assert not hasattr(paper, "word_heads")
    report = model.param_report()
    assert report["components"]["aid"] == sum(
        p.numel() for n, p in model.named_parameters() if n.startswith("word_heads."))
