"""Tests for ``baselines.common.sample_cache`` (the per-sample cache of frozen-module outputs
shared by HyperSign, SignFuse, SignBind-LLM and SignX)."""

from __future__ import annotations

import pytest
import torch

from baselines.common.sample_cache import SampleCache, one_sample, repad


def _batch(lengths: list[int], dim: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    x = torch.randn(len(lengths), t, dim, generator=g)
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]
    return x, mask


def test_round_trip_reorders_and_zero_pads():
    x, mask = _batch([4, 2, 5])
    cache = SampleCache()
    cache.store(["a", "b", "c"], {"feats": x, "extra": {"h": x * 2}, "none": None}, mask.sum(1))
    assert len(cache) == 3 and "b" in cache and "z" not in cache
    # a later batch in another order, shorter than the first one
    out, got_mask = cache.lookup(["b", "a"])
    assert torch.equal(got_mask, torch.tensor([[True, True, False, False],
                                               [True, True, True, True]]))
    assert out["feats"].shape == (2, 4, 3) and out["none"] is None
    torch.testing.assert_close(out["feats"][0, :2], x[1, :2])
    torch.testing.assert_close(out["feats"][1], x[0, :4])
    torch.testing.assert_close(out["extra"]["h"][1], 2 * x[0, :4])
    assert torch.all(out["feats"][0, 2:] == 0)  # zeros beyond the length, not the old padding


def test_miss_when_any_key_is_absent_and_after_clear():
    x, mask = _batch([3, 3])
    cache = SampleCache()
    assert cache.lookup(["a"]) is None and cache.lookup([]) is None
    cache.store(["a", "b"], x, mask.sum(1))
    assert cache.lookup(["a", "new"]) is None
    assert cache.lookup(["b"]) is not None
    cache.clear()
    assert len(cache) == 0 and cache.lookup(["b"]) is None


def test_rows_are_detached_copies():
    x, mask = _batch([3, 2])
    w = torch.ones(1, requires_grad=True)
    y = x * w
    cache = SampleCache()
    cache.store(["a", "b"], y, mask.sum(1))
    x.add_(100.0)  # the caller's batch changes afterwards: the cache does not
    out, _ = cache.lookup(["a"])
    assert not out.requires_grad
    torch.testing.assert_close(out[0], (x - 100.0)[0, :3])


def test_repad_equals_a_cache_hit():
    x, mask = _batch([2, 5, 1], seed=1)
    x = x + 7.0  # non-zero values in the padding: repad must zero them
    cache = SampleCache()
    cache.store(["a", "b", "c"], {"z": x, "t": None}, mask.sum(1))
    hit, _ = cache.lookup(["a", "b", "c"])
    direct = repad({"z": x, "t": None}, mask.sum(1))
    assert direct["t"] is None
    assert torch.equal(direct["z"], hit["z"])
    assert torch.equal(direct["z"] != 0, mask[..., None].expand_as(x))


def test_bad_input_is_named():
    x, _ = _batch([2, 2])
    cache = SampleCache()
    with pytest.raises(ValueError, match="2 keys but 1 lengths"):
        cache.store(["a", "b"], x, [2])
    with pytest.raises(TypeError, match="cannot cache a list"):
        cache.store(["a", "b"], [x], [2, 2])
    with pytest.raises(ValueError, match=r"\(B, T, \.\.\.\) tensors, got shape \(2,\)"):
        cache.store(["a", "b"], torch.ones(2), [1, 1])


def test_fetch_computes_each_missing_sample_alone():
    """``fetch`` runs ``compute_one`` once per missing key on that sample alone, stores it, and
    hands on what ``lookup`` would: a hit and a miss give the same bits in any batch."""
    x, mask = _batch([4, 2, 5])
    calls = []

    def one(i):
        calls.append(i)
        n = int(mask[i].sum())
        return {"f": x[i:i + 1, :n] * 2}, mask[i:i + 1, :n]

    cache = SampleCache()
    out, got = cache.fetch(["a", "b", "c"], one)
    assert calls == [0, 1, 2]
    torch.testing.assert_close(out["f"][2], 2 * x[2], rtol=0, atol=0)
    assert torch.equal(got, mask) and torch.all(out["f"][1, 2:] == 0)
    again, _ = cache.fetch(["c", "a"], one)
    assert calls == [0, 1, 2]  # all hits
    assert torch.equal(again["f"][0], out["f"][2])


def test_one_sample_cuts_every_stream_to_its_own_length():
    from conftest import synthetic_split

    from harness.data.batching import collate
    from harness.text import train_tokenizer

    samples = synthetic_split("train", 3, resolution=16)
    tok = train_tokenizer([s.text for s in samples], vocab_size=100, lang="de")
    streams = ("frames", "keypoints", "poses")
    batch = collate(samples, streams=streams, text_tokenizer=tok)
    for i, s in enumerate(samples):
        alone = collate([s], streams=streams, text_tokenizer=tok)
        got = one_sample(batch, i)
        assert got.names == alone.names and torch.equal(got.lengths, alone.lengths)
        for stream in ("frames", "keypoints"):
            assert torch.equal(got.inputs[stream], alone.inputs[stream])
            assert torch.equal(got.masks[stream], alone.masks[stream])
        for k, v in alone.inputs["poses"].items():
            assert torch.equal(got.inputs["poses"][k], v)
        assert torch.equal(got.text_ids, alone.text_ids)
        assert torch.equal(got.text_mask, alone.text_mask)
