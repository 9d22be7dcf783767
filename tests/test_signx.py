"""SignX: stage shapes, stage-2 freezing, pruning, entropy-penalised beam, CTC checks,
checkpoint averaging, backend switch, and a tiny run whose WER falls."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from conftest import stage_state, synthetic_split
from torch import nn

from baselines.signx.averaging import TopKAverager, average_state_dicts
from baselines.signx.decode import attention_entropy, entropy_beam_search
from baselines.signx.recognizer import (
    AdaptiveFeaturePruning,
    CTCLengthError,
    PoseAwareFeatureCompilation,
    ctc_loss_checked,
    gloss_prior_weights,
)
from harness.data.batching import collate
from harness.data.synthetic import POSE_FORMATS
from harness.method import ConfigError
from harness.text import GlossVocab, train_tokenizer

SMALL = dict(teacher_width=4, visual_width=4, frame_stride=2, rec_epochs=1,
             use_distillation=True)


@pytest.fixture(scope="module")
def corpus():
    train = synthetic_split("train", 48, resolution=32)
    dev = synthetic_split("dev", 8, resolution=32)
    vocab = GlossVocab.build([s.gloss for s in train])
    tok = train_tokenizer([s.text for s in train], vocab_size=300, lang="de")
    return train, dev, vocab, tok


def _method(corpus, **kw):
    import baselines

    _, _, vocab, tok = corpus
    torch.manual_seed(0)
    return baselines.get_method("signx", "tiny", tokenizer=tok, gloss_vocab=vocab,
                                **{**SMALL, **kw})


def _batch(corpus, n=4, split=0):
    train, _, vocab, tok = corpus
    return collate(train[:n], streams=("frames", "poses"), text_tokenizer=tok, gloss_vocab=vocab)


def _state(method, name, step=0):
    return stage_state(method, name, step=step)


def test_stage_shapes(corpus):
    m = _method(corpus)
    b = _batch(corpus)
    assert [s.name for s in m.stages()] == ["teacher", "pose2gloss", "vid2pose", "recognizer"]
    poses, mask = m._poses(b)
    assert sum(p.shape[-1] for p in poses.values()) == 1959
    z = m.pose2gloss.encoder(poses, mask)
    assert z.shape == (*mask.shape, m.config.latent_dim)
    frames, fmask = m._frames(b)
    pred, v_temp = m.vid2pose(frames, fmask)
    assert {k: v.shape[-1] for k, v in pred.items()} == POSE_FORMATS
    assert v_temp.shape[:2] == fmask.shape
    enc = m.recognizer.encode(z, mask)
    t = mask.shape[1]
    assert enc["states"].shape[:2] == (len(b), (t // 2) // 2)
    assert torch.equal(enc["lengths"], (mask.sum(1) // 2) // 2)
    assert enc["ctc"].shape[-1] == len(m.gloss_vocab.itos)
    assert m.teacher(frames, fmask).shape == (*fmask.shape, len(m.gloss_vocab.itos))
    for stage in m.stages():
        m.apply_stage(stage)
        out = m.training_step(b, _state(m, stage.name))
        assert torch.isfinite(out["loss"]) and all(k in out for k in stage.losses)
    m.eval()
    hyps = m.generate(b, beam_size=2, max_len=5)
    assert len(hyps) == len(b) and all(isinstance(h, str) for h in hyps)


def test_stage2_freezes_pose2gloss(corpus):
    m = _method(corpus)
    b = _batch(corpus)
    stage = next(s for s in m.stages() if s.name == "vid2pose")
    trainable = m.apply_stage(stage)
    assert trainable and all(n.startswith("vid2pose.") for n in trainable)
    before = {n: p.detach().clone() for n, p in m.pose2gloss.named_parameters()}
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    out = m.training_step(b, _state(m, "vid2pose"))
    out["loss"].backward()
    opt.step()
    assert all(p.grad is None for p in m.pose2gloss.parameters())
    assert any(p.grad is not None for p in m.vid2pose.parameters())
    assert all(torch.equal(before[n], p) for n, p in m.pose2gloss.named_parameters())
    # inference reads RGB only: poses removed from the batch change nothing
    m.eval()
    enc_a = m.encode_batch(b)["states"]
    b.inputs.pop("poses")
    assert torch.equal(enc_a, m.encode_batch(b)["states"])


def test_pruning_mask_keeps_shapes():
    torch.manual_seed(0)
    prune = AdaptiveFeaturePruning(8, keep_ratio=0.5)
    scale = torch.tensor([5.0, 0.01, 4.0, 0.02, 3.0, 0.03, 2.0, 0.04])
    z = torch.randn(3, 50, 8) * scale
    mask = torch.ones(3, 50, dtype=torch.bool)
    prune.observe(z, mask)
    info = prune.prune()
    assert info["kept"] == 4
    assert prune.mask.tolist() == [1, 0, 1, 0, 1, 0, 1, 0]
    out = prune(z)
    assert out.shape == z.shape
    assert torch.all(out[..., 1::2] == 0) and torch.equal(out[..., 0::2], z[..., 0::2])


def test_compilation_whitening_and_frame_drop():
    comp = PoseAwareFeatureCompilation(4, gamma=0.5, rho=0.0).eval()
    z = torch.randn(1, 3, 4)
    mask = torch.ones(1, 3, dtype=torch.bool)
    out, m = comp(z, mask)
    n = torch.nn.functional.layer_norm(z, (4,))
    expect = n.clone()
    for t in (1, 2):
        expect[0, t] = n[0, t] - 0.5 * (n[0, t] * n[0, t - 1]).mean() * n[0, t - 1]
    assert torch.allclose(out, expect, atol=1e-5) and m.all()
    drop = PoseAwareFeatureCompilation(4, rho=0.5).train()
    out, m = drop(torch.randn(2, 200, 4), torch.ones(2, 200, dtype=torch.bool))
    assert out.shape == (2, 200, 4) and 0.3 < m.float().mean() < 0.7
    assert torch.all(out[~m] == 0)


def test_entropy_penalty_changes_beam_ranking():
    # vocab {0: BOS, 1: EOS, 2: A, 3: B}; "A" is likelier but attends diffusely, "B" sharply.
    def step(prefix, rows):
        n = prefix.shape[0]
        last = prefix[:, -1]
        logp = torch.full((n, 4), -1e9)
        attn = torch.full((n, 4), 0.25)
        first = last == 0
        logp[first, 2], logp[first, 3] = math.log(0.6), math.log(0.4)
        logp[~first, 1] = 0.0  # EOS after one token
        sharp = last == 3
        attn[sharp] = torch.tensor([0.97, 0.01, 0.01, 0.01])
        return logp, attn

    plain = entropy_beam_search(step, 1, bos_id=0, eos_id=1, beam_size=2, max_len=4, alpha=0.0)
    penal = entropy_beam_search(step, 1, bos_id=0, eos_id=1, beam_size=2, max_len=4, alpha=1.0)
    assert plain == [[2]] and penal == [[3]]
    assert attention_entropy(torch.full((4,), 0.25)).item() == pytest.approx(math.log(4))


def test_max_lengths_cap_repetitions():
    # a decoder stuck repeating token 2 (never EOS unless forced): the cap bounds each sample
    def step(prefix, rows):
        logp = torch.full((prefix.shape[0], 3), -1e9)
        logp[:, 2], logp[:, 1] = 0.0, -5.0
        return logp, torch.full((prefix.shape[0], 4), 0.25)

    free = entropy_beam_search(step, 2, bos_id=0, eos_id=1, beam_size=2, max_len=6)
    capped = entropy_beam_search(step, 2, bos_id=0, eos_id=1, beam_size=2, max_len=6,
                                 max_lengths=torch.tensor([0, 3]))
    assert free == [[2] * 6, [2] * 6]
    assert capped == [[], [2, 2, 2]]
    with pytest.raises(ValueError, match="max_lengths"):
        entropy_beam_search(step, 2, bos_id=0, eos_id=1, max_lengths=torch.tensor([1]))


def test_ctc_head_finite_and_clear_error():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 5, requires_grad=True)
    targets = torch.tensor([[3, 4, 3], [2, 1, 1]])
    loss = ctc_loss_checked(logits, torch.tensor([6, 3]), targets, torch.tensor([3, 1]))
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(CTCLengthError, match=r"#1: T=2 < L=3"):
        ctc_loss_checked(logits, torch.tensor([6, 2]), targets, torch.tensor([3, 3]))


def test_checkpoint_averaging_averages():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9)}
    avg = average_state_dicts([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and int(avg["n"]) == 3
    with pytest.raises(ValueError, match="shape"):
        average_state_dicts([a, {"w": torch.zeros(3), "n": torch.tensor(1)}])
    lin = nn.Linear(1, 1, bias=False)
    keep = TopKAverager(k=2, mode="min")
    for wer, value in [(50.0, 1.0), (30.0, 2.0), (70.0, 10.0), (40.0, 4.0)]:
        lin.weight.data.fill_(value)
        keep.consider(wer, lin)
    assert keep.metrics == [30.0, 40.0]
    keep.apply(lin)
    assert lin.weight.item() == pytest.approx(3.0)


def test_gloss_prior_weights_favour_rare_glosses():
    w = gloss_prior_weights([9, 1], 5)
    assert w[0] == 1 and w[1] == 1 and w[2] == 1 and w[4] > w[3]
    assert (w[3] + w[4]) / 2 == pytest.approx(1.0)


def test_backend_switch_same_outputs(corpus):
    from harness.ops import backends, use_backend

    if "native" not in backends():
        pytest.skip("native backend not built here")
    m = _method(corpus).eval()
    b = _batch(corpus, n=3)
    with use_backend("torch"):
        ref = m.encode_batch(b)["states"]
        hyp_ref = m.generate(b, beam_size=2, max_len=4)
    with use_backend("native"):
        out = m.encode_batch(b)["states"]
        hyp = m.generate(b, beam_size=2, max_len=4)
    assert torch.allclose(ref, out, atol=1e-4)
    assert hyp == hyp_ref


def test_bad_inputs_raise_clear_errors(corpus):
    with pytest.raises(ConfigError, match="unknown override"):
        _method(corpus, not_a_field=1)
    with pytest.raises(ConfigError, match="zero_formats"):
        _method(corpus, zero_formats=("dwpose", "nope"))
    m = _method(corpus)
    b = _batch(corpus, n=2)
    b.inputs["poses"]["dwpose"] = b.inputs["poses"]["dwpose"][..., :10]
    with pytest.raises(ValueError, match=r"dwpose.*expected"):
        m.training_step(b, _state(m, "pose2gloss"))


@pytest.mark.slow
def test_tiny_run_wer_falls(corpus):
    """The recogniser on ground-truth pose latents learns: dev WER falls with training."""
    from harness.evaluate import generate_split, score
    from harness.method import Stage
    from harness.train import TrainConfig, Trainer

    train, dev, vocab, tok = corpus
    m = _method(corpus, recognizer_input="poses", use_distillation=False,
                use_translation=False, rec_lr=3e-3, rec_warmup=5, beam_size=1,
                gloss_output="ctc")

    def wer() -> float:
        out = generate_split(m, dev, batch_size=8, beam_size=1, max_len=12, progress=False)
        return score("recognition", out.hypotheses, out.references)["wer"]

    before = wer()
    stage = Stage("recognizer", 20, lr=3e-3, trainable=("recognizer.",), scheduler="constant",
                  warmup_steps=5, monitor="loss", losses=("loss_ce", "loss_ctc"))
    trainer = Trainer(m, train, None, TrainConfig(batch_size=8, progress=False),
                      tokenizer=tok, gloss_vocab=vocab, stages=[stage])
    trainer.fit()
    after = wer()
    assert after < before, (before, after)


def test_vid2pose_standardises_pixels():
    """The ViT reads per-channel standardised pixels (without it the tiny Vid2Pose never left
    the mean-pose solution): a frame at the ImageNet mean colour reaches the patch embedding
    as exact zeros."""
    from baselines.signx.latent import IMAGENET_MEAN, Vid2Pose

    v2p = Vid2Pose({"a": 3}, image_size=8, patch_size=4, dim=8, depth=1, heads=2,
                   temporal_layers=1)
    seen = []
    v2p.patch_embed.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    frames = torch.tensor(IMAGENET_MEAN).expand(1, 2, 8, 8, 3).clone()
    v2p.frame_features(frames, torch.ones(1, 2, dtype=torch.bool))
    assert seen[0].abs().max() < 1e-6
    white = torch.full((1, 1, 8, 8, 3), 255, dtype=torch.uint8)
    v2p.frame_features(white, torch.ones(1, 1, dtype=torch.bool))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor((0.229, 0.224, 0.225))
    assert torch.allclose(seen[1][0, :, 0, 0], expected, atol=1e-5)


def test_finetune_vid2pose_gradient_reaches_vid2pose(corpus):
    """finetune_vid2pose: the recogniser step back-propagates into Vid2Pose and adds its MSE."""
    m = _method(corpus, use_distillation=False, finetune_vid2pose=True)
    m.apply_stage(next(s for s in m.stages() if s.name == "recognizer"))
    out = m.training_step(_batch(corpus), _state(m, "recognizer"))
    assert "loss_v2p" in out
    out["loss"].backward()
    grad = m.vid2pose.patch_embed.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_pose_encoder_output_carries_the_poses_not_the_positions():
    """With ``padmatch_norm`` the pose content is not drowned by the unit-amplitude sinusoidal
    positions added before the ViT layers; without it PadMatch's output is tiny (five-token mean
    of small E_i outputs through a default-initialised Linear) and the encoder output at init is
    ~98-99.6 % position (two unrelated pose batches give almost the same z)."""
    from baselines.signx.latent import PoseEncoder

    torch.manual_seed(0)
    formats = {"a": 40, "b": 24}
    mask = torch.ones(3, 20, dtype=torch.bool)
    inputs = [{n: torch.randn(3, 20, w) * 1.3 for n, w in formats.items()} for _ in range(2)]

    def content_share(padmatch_norm: bool) -> float:
        torch.manual_seed(0)
        enc = PoseEncoder(formats, format_dim=32, fusion_heads=4, latent_dim=64, vit_layers=1,
                          vit_heads=4, padmatch_norm=padmatch_norm).eval()
        with torch.no_grad():
            z1, z2 = (enc(x, mask) for x in inputs)
        return float((z1 - z2).pow(2).mean() / (2 * (z1 - z1.mean((0, 1))).pow(2).mean()))

    assert content_share(True) > 0.1
    assert content_share(False) < 0.05  # the default (paper-literal) encoder: position-bound


def test_frozen_outputs_cached_within_a_stage_equal_recomputed(corpus):
    """cache_latents: the recogniser stage reads the frozen parts' outputs (latent, teacher
    logits) from the per-sample cache from the second call on — the same tensors as computing
    them, in another batch order too; a new stage index starts an empty cache."""
    m = _method(corpus)
    m.apply_stage(next(s for s in m.stages() if s.name == "recognizer"))
    m.train()
    b = _batch(corpus, n=4)
    state = _state(m, "recognizer")
    z1, t1, mask1 = m._frozen_outputs(b, state)
    assert len(m._cache) == 4
    z2, t2, mask2 = m._frozen_outputs(b, state)  # from the cache
    assert isinstance(z1, dict)  # tiny: the pose formats the trainable pose encoder reads
    assert all(torch.equal(z1[k], z2[k]) for k in z1)
    assert torch.equal(t1, t2) and torch.equal(mask1, mask2)
    z_nc, t_nc, _ = m._frozen_outputs(b, None)  # no state: never cached
    torch.testing.assert_close(z_nc, z1)
    torch.testing.assert_close(t_nc, t1)
    for z in z1.values():
        assert not z.requires_grad and torch.all(z[~mask1] == 0)
    train, _, vocab, tok = corpus
    rev = collate(train[:4][::-1], streams=("frames", "poses"), text_tokenizer=tok,
                  gloss_vocab=vocab)
    z_rev, _, _ = m._frozen_outputs(rev, state)
    n0 = int(mask1[0].sum())
    for k in z1:
        torch.testing.assert_close(z_rev[k][3, :n0], z1[k][0, :n0])
    more = collate(train[4:6], streams=("frames", "poses"), text_tokenizer=tok,
                   gloss_vocab=vocab)
    m._frozen_outputs(more, state)
    assert len(m._cache) == 6
    m._frozen_outputs(b, replace(state, stage_index=1))  # another stage: the cache restarts
    assert len(m._cache) == 4 and "synthetic_train_00004" not in m._cache
