"""SignBind-LLM: router, experts, gate, stage freezing, LoRA-only LLM stage, backend parity."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import synthetic_split

from baselines.signbind import (
    FUSION_STAGE,
    LIP_STAGE,
    LLM_STAGE,
    MANUAL_STAGE,
    TINY_DATA,
    SignBind,
    center_features,
)
from baselines.signbind.experts import (
    CTCExpert,
    ctc_greedy,
    ctc_loss,
    edit_distance,
    fingerspelled_words,
    letter_accuracy,
)
from baselines.signbind.fusion import FusionEncoder
from baselines.signbind.phonemes import PhonemeVocab, phonemize, word_phonemes
from baselines.signbind.router import anneal_temperature, gumbel_route
from harness import ops
from harness.data.batching import collate
from harness.evaluate import MethodEvaluator
from harness.method import ConfigError, TrainState
from harness.text import PseudoGlossExtractor, train_tokenizer

SMALL = dict(frame_dim=32, frame_depth=1, lip_dim=16, router_dim=32, expert_dim=32,
             fusion_dim=32, fusion_layers=2, dropout=0.0)


@pytest.fixture(scope="module")
def corpus():
    samples = synthetic_split("train", 24, lang="en", resolution=32, seed=3)
    for s in samples:
        s.cache = True
    texts = [s.text for s in samples]
    pg = PseudoGlossExtractor("en", backend="rules").fit(texts)
    tok = train_tokenizer(texts, vocab_size=200, lang="en")
    with_fs = [s for s in samples if s.fingerspelling][:3]
    without = [s for s in samples if not s.fingerspelling][:1]
    return {"samples": samples, "pg": pg, "tok": tok, "few": with_fs + without}


def _method(corpus, **kw) -> SignBind:
    torch.manual_seed(0)
    return SignBind("tiny", tokenizer=corpus["tok"], pseudo_gloss=corpus["pg"], **{**SMALL, **kw})


def _batch(method: SignBind, corpus, samples=None):
    return collate(samples or corpus["few"], streams=method.inputs,
                   text_tokenizer=corpus["tok"])


def _stage(method: SignBind, name: str):
    return next(s for s in method.stages() if s.name == name)


def _train(method: SignBind, batch, stage, steps: int, lr: float | None = None) -> list[dict]:
    method.apply_stage(stage)
    method.train()
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr or stage.lr, weight_decay=0.01)
    logs = []
    for i in range(steps):
        state = TrainState(stage, 0, 0, i, steps, i)
        out = method.training_step(batch, state)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        logs.append({k: float(v.detach()) for k, v in out.items()})
    return logs


# ------------------------------------------------------------------------------ router


def test_gumbel_routes_near_one_hot_at_low_temperature_and_differentiable():
    torch.manual_seed(0)
    logits = torch.randn(4, 50, 3, requires_grad=True)
    cold = gumbel_route(logits, 0.01)
    assert torch.allclose(cold.sum(-1), torch.ones(4, 50), atol=1e-5)
    assert (cold.max(-1).values > 0.99).float().mean() > 0.95
    warm = gumbel_route(logits, 5.0)
    assert warm.max(-1).values.mean() < 0.7  # high τ: spread out
    weights = torch.randn(3)
    (gumbel_route(logits, 0.5) * weights).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # hard routes: exact one-hot forward, gradient straight through
    logits.grad = None
    hard = gumbel_route(logits, 1.0, hard=True, noise=False)
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(hard.argmax(-1), logits.argmax(-1))
    (hard * weights).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_temperature_anneals_exponentially():
    assert anneal_temperature(0.0, 1.0, 0.1) == pytest.approx(1.0)
    assert anneal_temperature(1.0, 1.0, 0.1) == pytest.approx(0.1)
    assert anneal_temperature(0.5, 1.0, 0.1) == pytest.approx(math.sqrt(0.1))
    assert anneal_temperature(2.0, 1.0, 0.1) == pytest.approx(0.1)  # clamped
    with pytest.raises(ValueError, match="temperatures"):
        anneal_temperature(0.5, 0.0, 0.1)


# ------------------------------------------------------------------------------ targets


def test_phonemes_from_cmudict_with_letter_fallback():
    assert word_phonemes("boston") == (["B", "AA", "S", "T", "AH", "N"], True)
    assert word_phonemes("Glatteis") == (["#G", "#L", "#A", "#T", "#T", "#E", "#I", "#S"], False)
    tokens, fallback = phonemize(["rain", "xyzzyq"])
    assert tokens[:3] == ["R", "EY", "N"] and fallback == ["xyzzyq"]
    vocab = PhonemeVocab()
    assert len(vocab) == 3 + 39 + 26
    ids = vocab.encode_words(["rain"])
    assert [vocab.itos[i] for i in ids] == ["R", "EY", "N"]


def test_ctc_greedy_letter_accuracy_and_fingerspelled_words():
    assert fingerspelled_words("HEUTE fs-RENO REGEN fs-OMAHA") == ["RENO", "OMAHA"]
    assert fingerspelled_words(None) == []
    # frames: blank, 3, 3, blank, 3, 4 → [3 @1, 3 @4, 4 @5]
    path = [0, 3, 3, 0, 3, 4, 4]
    logits = torch.full((1, 7, 6), -5.0)
    logits[0, torch.arange(7), torch.tensor(path)] = 5.0
    mask = torch.tensor([[True] * 6 + [False]])
    assert ctc_greedy(logits, mask) == [[(3, 1), (3, 4), (4, 5)]]
    assert edit_distance("KITTEN", "SITTING") == 3
    assert letter_accuracy(["BOSTN", "RENO"], ["BOSTON", "RENO"]) == pytest.approx(1 - 1 / 10)
    assert letter_accuracy([], []) is None


# ------------------------------------------------------------------------------ experts


def test_each_expert_ctc_loss_decreases(corpus):
    method = _method(corpus)
    batch = _batch(method, corpus)
    manual = _train(method, batch, _stage(method, MANUAL_STAGE), 15)
    for key, factor in (("ctc_sign", 0.7), ("ctc_fs", 0.7), ("router_ce", 0.9)):
        first = sum(log[key] for log in manual[:3]) / 3
        last = sum(log[key] for log in manual[-3:]) / 3
        assert last < factor * first, (key, first, last)
    lip = _train(method, batch, _stage(method, LIP_STAGE), 15)
    first = sum(log["ctc_lip"] for log in lip[:3]) / 3
    last = sum(log["ctc_lip"] for log in lip[-3:]) / 3
    assert last < 0.7 * first, (first, last)


def test_expert_reads_fingerspelling_targets_from_glosses(corpus):
    method = _method(corpus)
    batch = _batch(method, corpus)
    ids, lengths = method.letter_targets(batch, torch.device("cpu"))
    for row, n, sample in zip(ids, lengths, corpus["few"], strict=True):
        letters = "".join(method.letters.itos[i] for i in row[: int(n)].tolist())
        assert letters == "".join(span.letters for span in sample.fingerspelling or [])


def test_fusion_training_keeps_experts_frozen(corpus):
    method = _method(corpus)
    batch = _batch(method, corpus)
    stage = _stage(method, FUSION_STAGE)
    frozen = ("frame_encoder.", "lip_encoder.", "sign_expert.", "fs_expert.", "lip_expert.",
              "llm.")
    before = {n: p.detach().clone() for n, p in method.named_parameters()}
    logs = _train(method, batch, stage, 3)
    assert all(math.isfinite(log["ctc_fusion"]) for log in logs)
    assert logs[-1]["tau"] < logs[0]["tau"]  # annealed within the stage
    changed = {n for n, p in method.named_parameters() if not torch.equal(p, before[n])}
    assert not {n for n in changed if n.startswith(frozen)}
    assert any(n.startswith("fusion.") for n in changed)
    assert any(n.startswith("router.") for n in changed)


# ------------------------------------------------------------------------------ gate


@pytest.mark.parametrize("informative", ["lips", "manual"])
def test_gate_moves_toward_the_informative_stream(informative):
    torch.manual_seed(0)
    d, classes, b, t = 16, 5, 32, 10
    enc = FusionEncoder(d, classes, fusion="gate", layers=1, heads=2, dropout=0.0)
    table = torch.randn(classes, d) * 2
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3)
    mask = torch.ones(b, t, dtype=torch.bool)

    def data():
        labels = torch.randint(0, classes, (b, t))
        signal = table[labels] + 0.1 * torch.randn(b, t, d)
        noise = torch.randn(b, t, d) * 2
        return (noise, signal, labels) if informative == "lips" else (signal, noise, labels)

    m, lip, _ = data()
    start = float(enc.alpha(m, lip, mask).mean())
    for _ in range(150):
        m, lip, labels = data()
        h, _ = enc(m, lip, mask)
        loss = torch.nn.functional.cross_entropy(enc.head(h).reshape(-1, classes),
                                                 labels.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    m, lip, _ = data()
    end = float(enc.alpha(m, lip, mask).mean())
    assert abs(start - 0.5) < 0.1
    if informative == "lips":
        assert end < start - 0.15, (start, end)  # α weights the manual stream: toward lips
    else:
        assert end > start + 0.15, (start, end)


def test_fusion_variants_shapes_and_alpha():
    torch.manual_seed(0)
    m, lip = torch.randn(2, 7, 16), torch.randn(2, 7, 16)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    for mode in ("gate", "cross", "concat"):
        enc = FusionEncoder(16, 9, fusion=mode, layers=1, heads=2)
        h, logits = enc(m, lip, mask)
        assert h.shape == (2, 7, 16) and logits.shape == (2, 7, 9)
        assert torch.all(h[1, 4:] == 0)
        alpha = enc.alpha(m, lip, mask)
        assert (alpha is None) == (mode == "concat")
    with pytest.raises(ValueError, match="fusion must be one of"):
        FusionEncoder(16, 9, fusion="sum")


# ------------------------------------------------------------------------------ LLM


def test_llm_stage_trains_only_lora(corpus):
    method = _method(corpus)
    batch = _batch(method, corpus)
    stage = _stage(method, LLM_STAGE)
    names = method.apply_stage(stage)
    assert names and all(n.startswith("llm.") and "lora_" in n for n in names)
    before = {n: p.detach().clone() for n, p in method.named_parameters()}
    logs = _train(method, batch, stage, 2)
    assert math.isfinite(logs[-1]["loss_llm"])
    changed = {n for n, p in method.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)


def test_llm_learns_pseudo_gloss_to_text(corpus):
    """The LoRA-only LLM stage fits a few (pseudo-gloss → sentence) pairs."""
    method = _method(corpus)
    batch = _batch(method, corpus)
    logs = _train(method, batch, _stage(method, LLM_STAGE), 30, lr=1e-2)
    assert logs[-1]["loss_llm"] < 0.3 * logs[0]["loss_llm"]


# ------------------------------------------------------------------------------ end to end


def test_generate_and_backend_switch_same_outputs(corpus):
    if "native" not in ops.backends():
        pytest.skip("native backend not built here")
    method = _method(corpus)
    batch = _batch(method, corpus)
    method.eval()
    with ops.use_backend("torch"):
        ref = method.generate(batch, beam_size=2, max_len=8)
        ref_logits = method.recognise(batch)[1]["fusion_logits"]
    with ops.use_backend("native"):
        out = method.generate(batch, beam_size=2, max_len=8)
        logits = method.recognise(batch)[1]["fusion_logits"]
    assert len(ref) == len(batch) and all(isinstance(s, str) for s in ref)
    assert out == ref
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5)


def test_extra_metrics_report_letters_and_gate(corpus):
    method = _method(corpus)
    cpu = torch.device("cpu")
    out = method.extra_metrics("dev", corpus["few"], device=cpu, batch_size=2,
                               evaluator=MethodEvaluator(method, cpu))
    assert out["fingerspelled_segments"] == sum(len(s.fingerspelling) for s in corpus["few"])
    assert isinstance(out["letter_accuracy"], float) and out["letter_accuracy"] <= 100.0
    gate = out["gate_alpha_manual"]
    assert set(gate) == {"rest", "sign", "fingerspelling"}
    assert all(0.0 < v["mean"] < 1.0 for v in gate.values())
    no_lips = _method(corpus, use_lipreading=False, use_fingerspelling=False)
    assert "lips" not in no_lips.inputs and not hasattr(no_lips, "fs_expert")
    out = no_lips.extra_metrics("dev", corpus["few"], device=cpu, batch_size=16,
                                evaluator=MethodEvaluator(no_lips, cpu))
    assert out["letter_accuracy"] is None and out["gate_alpha_manual"] is None


def test_config_errors_and_paper_param_report():
    with pytest.raises(ConfigError, match="unknown override"):
        SignBind("tiny", fusionn="gate")
    with pytest.raises(ConfigError, match="fusion"):
        SignBind("tiny", fusion="sum")
    with pytest.raises(ConfigError, match="use_lipreading='maybe' is not a bool"):
        SignBind("tiny", use_lipreading="maybe")
    assert SignBind("tiny", use_lipreading="no").config.use_lipreading is False  # --set text
    with torch.device("meta"):
        method = SignBind("paper")
    report = method.param_report()
    assert report["components"]["llm"] > 6.5e9  # LLaMA-2-7B dimensions
    assert report["components"]["frame_encoder"] > 2.0e7  # ViT-S/14
    assert 0 < report["llm_lora"] < 1e8


def test_expert_module_masks_padding():
    expert = CTCExpert(8, 16, 5, layers=1, heads=2, dropout=0.0)
    x = torch.randn(2, 6, 8)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    h, logits = expert(x, mask)
    assert torch.all(h[1, 3:] == 0)
    # padding content does not leak into valid positions
    x2 = x.clone()
    x2[1, 3:] = 100.0
    h2, _ = expert(x2, mask)
    torch.testing.assert_close(h2[1, :3], h[1, :3])
    targets = torch.tensor([[1, 2], [3, 1]])
    loss = ctc_loss(logits, mask, targets, torch.tensor([2, 1]))
    assert loss.dim() == 0 and math.isfinite(float(loss.detach()))


def test_frozen_encoder_features_cached_in_training_only(corpus):
    """train_encoders=False: stage 1 trains the experts on cached ViT features that equal the
    recomputed ones; ``generate`` paths never read the cache."""
    method = _method(corpus)
    batch = _batch(method, corpus)
    stage = _stage(method, MANUAL_STAGE)
    names = method.apply_stage(stage)
    assert not any(n.startswith("frame_encoder.") for n in names)
    _train(method, batch, stage, 2)
    cache = method._feature_cache["frame"]
    assert len(cache) == len(batch.names) and all(n in cache for n in batch.names)
    method.eval()
    fresh, mask = method.frame_features(batch)  # outside training_step: recomputed
    cached, cached_mask = cache.lookup(batch.names)
    assert torch.equal(cached_mask, mask)
    torch.testing.assert_close(cached * mask[..., None], fresh * mask[..., None])
    cache.store(batch.names, cached + 1.0, mask.sum(1))  # a stale cache would show up
    again, _ = method.frame_features(batch)
    torch.testing.assert_close(again, fresh)


def test_fusion_warm_start_copies_the_sign_head(corpus):
    method = _method(corpus)
    method.apply_stage(_stage(method, FUSION_STAGE))
    torch.testing.assert_close(method.fusion.head.weight, method.sign_expert.head.weight)
    proj = method.fusion_proj["sign"].weight
    torch.testing.assert_close(proj, torch.eye(proj.shape[0]))
    assert not method.warm_start_fusion()  # once per model
    cold = _method(corpus, fusion_warm_start=False)
    cold.apply_stage(_stage(cold, FUSION_STAGE))
    assert not torch.equal(cold.fusion.head.weight, cold.sign_expert.head.weight)


# ------------------------------------------------------------------------------ centering


def test_center_features_matches_per_video_reference_and_ignores_padding():
    torch.manual_seed(0)
    feats = torch.randn(3, 7, 5) + 10.0  # a large shared offset, like static background
    lengths = [7, 4, 1]
    mask = torch.arange(7)[None] < torch.tensor(lengths)[:, None]
    feats[~mask] = 123.0  # padding content must not matter
    out = center_features(feats, mask)
    for i, n in enumerate(lengths):
        ref = feats[i, :n].double().numpy()
        ref = ref - ref.mean(0, keepdims=True)
        torch.testing.assert_close(out[i, :n].double(), torch.from_numpy(ref), atol=1e-5,
                                   rtol=1e-5)
        assert torch.all(out[i, n:] == 0)
    # per video: the result does not depend on the other videos in the batch
    torch.testing.assert_close(center_features(feats[1:2], mask[1:2]), out[1:2])


def test_frame_features_drop_static_content(corpus):
    """With ``feature_centering`` a video whose frames never change gives all-zero features
    (the static signer / background carries no sign information); moving frames do not."""
    method = _method(corpus, feature_centering=True)
    method.eval()
    batch = _batch(method, corpus)
    feats, mask = method.frame_features(batch)
    valid = mask[..., None].float()
    mean = (feats * valid).sum(1) / valid.sum(1)
    assert mean.abs().max() < 1e-4 and feats[mask].abs().mean() > 1e-3
    frames = batch.inputs["frames"]
    batch.inputs["frames"] = frames[:, :1].expand_as(frames).contiguous()
    static, _ = method.frame_features(batch)
    assert static.abs().max() < 1e-4
    raw = _method(corpus, feature_centering=False)
    raw.eval()
    plain, _ = raw.frame_features(batch)
    assert plain[mask].abs().mean() > 1e-2


def test_profile_defaults_for_llm_schedule_and_monitor():
    tiny = SignBind("tiny")
    cfg = tiny.config
    # pretrained frame ViT stand-in: no per-video centering (issue 20 runs)
    assert not cfg.feature_centering and cfg.llm_monitor == "loss"
    assert TINY_DATA["eval_size"] == 128
    # the sign expert needs attention over the whole video (English-order pseudo-glosses vs
    # sign-order video): conv-only experts stayed at pseudo-gloss WER ~88
    assert cfg.expert_layers >= 1
    assert len(tiny.sign_expert.encoder.layers) == cfg.expert_layers
    # the fingerspelling expert has its own depth knob (conv-only ablation: 0 layers)
    assert len(tiny.fs_expert.encoder.layers) == cfg.fs_expert_layers
    assert len(SignBind("tiny", fs_expert_layers=0).fs_expert.encoder.layers) == 0
    # >= 400 LoRA steps: 96 left the LLM ignoring its prompt
    assert cfg.llm_epochs * (TINY_DATA["train_size"] // cfg.batch_size) >= 400
    assert TINY_DATA["train_size"] >= 512  # 256 videos: the experts overfit
    assert _stage(tiny, LLM_STAGE).monitor == "loss"
    with torch.device("meta"):
        paper = SignBind("paper")
    assert _stage(paper, LLM_STAGE).monitor == "bleu4"
    assert not paper.config.feature_centering and paper.config.expert_layers == 4
    assert paper.config.fs_expert_layers == 4
    with pytest.raises(ConfigError, match="fs_expert_layers"):
        SignBind("tiny", fs_expert_layers=-1)
    with pytest.raises(ConfigError, match="llm_monitor"):
        SignBind("tiny", llm_monitor="wer")


def test_fingerspelling_ctc_ignores_videos_without_a_name(corpus):
    """``fs_ctc_videos``: the empty-target CTC of a name-less video (Σ_t −log p(blank), not
    divided by a target length) outweighs the named ones; "fingerspelled" drops those videos."""
    method = _method(corpus, fs_ctc_videos="fingerspelled")
    batch = _batch(method, corpus)  # three videos with a name, one without
    _, mask = method.frame_features(batch)
    logits = torch.randn(*mask.shape, len(method.letters), requires_grad=True)
    targets, lengths = method.letter_targets(batch, torch.device("cpu"))
    keep = lengths > 0
    assert 0 < int(keep.sum()) < len(keep)
    loss = method.fingerspelling_loss(logits, mask, batch)
    ref = ctc_loss(logits[keep], mask[keep], targets[keep], lengths[keep])
    assert torch.allclose(loss, ref)
    loss.backward()
    assert logits.grad[~keep].abs().max() == 0 and logits.grad[keep].abs().max() > 0
    everyone = _method(corpus).fingerspelling_loss(logits, mask, batch)
    assert torch.allclose(everyone, ctc_loss(logits, mask, targets, lengths))
    # the name-less video's all-blank term alone outweighs the mean over the named ones
    alone = ctc_loss(logits[~keep], mask[~keep], targets[~keep], lengths[~keep])
    assert alone > ref
    no_name = _batch(method, corpus, [s for s in corpus["few"] if not s.fingerspelling])
    _, m1 = method.frame_features(no_name)
    zero = method.fingerspelling_loss(torch.randn(*m1.shape, len(method.letters)), m1, no_name)
    assert float(zero) == 0.0
    with pytest.raises(ConfigError, match="fs_ctc_videos"):
        _method(corpus, fs_ctc_videos="some")


@pytest.mark.parametrize("bias", [0.0, 3.0])
def test_fingerspelling_head_blank_prior_init(corpus, bias):
    """Round 5: the fs expert's CTC head starts with a blank bias (``fs_blank_bias``): p(blank)
    ≈ e^b / (e^b + 28) on every frame, and the initial empty-target loss of a name-less video
    (Σ_t −log p_t(blank)) shrinks accordingly — with b = 0 it is ~T·ln 29 and its huge first
    gradients pushed the default full-run init onto the all-blank plateau."""
    method = _method(corpus, fs_blank_bias=bias, feature_centering=True)  # ~zero inputs
    head = method.fs_expert.head
    assert float(head.bias.detach()[method.letters.blank_id]) == bias
    method.eval()
    no_name = _batch(method, corpus, [s for s in corpus["few"] if not s.fingerspelling])
    feats, mask = method.frame_features(no_name)
    with torch.no_grad():
        p = method.fs_expert(feats, mask)[1].softmax(-1)[..., method.letters.blank_id][mask]
        loss = method.fingerspelling_loss(method.fs_expert(feats, mask)[1], mask, no_name)
    prior = math.exp(bias) / (math.exp(bias) + len(method.letters) - 1)
    assert abs(float(p.mean()) - prior) < 0.15, (float(p.mean()), prior)
    assert float(loss) == pytest.approx(-float(torch.log(p).sum()), rel=1e-4)
