"""Batching (collate, bucketing sampler, DataLoader) and the on-disk feature cache."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os

import numpy as np
import pytest
import torch

from harness.data import Sample
from harness.data.batching import (
    LABEL_PAD,
    BucketBatchSampler,
    CollateError,
    collate,
    make_loader,
)
from harness.data.cache import FeatureCache, FeatureCacheError
from harness.text import GlossVocab


def _kp(t: int, value: float) -> np.ndarray:
    return np.full((t, 2, 3), value, dtype=np.float32)


def _sample(name: str, t: int, **extra) -> Sample:
    loaders = {"keypoints": lambda: _kp(t, float(t))}
    loaders.update(extra.pop("loaders", {}))
    return Sample(name=name, num_frames=t, loaders=loaders, **extra)


class _StubTokenizer:
    """Maps each word to its length + 10; <s> = 1, </s> = 2, pad = 0 (hand-checkable)."""

    pad_id = 0

    def encode(self, text: str) -> list[int]:
        return [1, *(len(w) + 10 for w in text.split()), 2]


# ---------------------------------------------------------------- collate
def test_collate_pads_streams_with_own_masks():
    a = _sample("a", 2, text="es regnet", gloss="REGEN",
                loaders={"features": lambda: np.ones((1, 4), np.float32),
                         "frame_labels": lambda: np.array([1, 2], np.int8),
                         "frames": lambda: np.full((2, 3, 3, 3), 255, np.uint8)})
    b = _sample("b", 3, text="morgen viel sonne", gloss="MORGEN SONNE VIEL",
                loaders={"features": lambda: np.full((3, 4), 2, np.float32),
                         "frame_labels": lambda: np.array([0, 1, 1], np.int8),
                         "frames": lambda: np.full((3, 3, 3, 3), 51, np.uint8)})
    vocab = GlossVocab.build(["MORGEN SONNE", "REGEN"])  # ids: MORGEN 3, REGEN 4, SONNE 5
    batch = collate([a, b], streams=("keypoints", "features", "frame_labels", "frames"),
                    text_tokenizer=_StubTokenizer(), gloss_vocab=vocab)
    assert batch.names == ["a", "b"] and len(batch) == 2
    assert batch.lengths.tolist() == [2, 3] and batch.lengths.dtype == torch.int64
    kp = batch["keypoints"]
    assert kp.shape == (2, 3, 2, 3) and kp.dtype == torch.float32
    assert (kp[0, :2] == 2).all() and (kp[0, 2] == 0).all() and (kp[1] == 3).all()
    assert batch.masks["keypoints"].tolist() == [[True, True, False], [True, True, True]]
    feats = batch["features"]  # its own length: 1 and 3
    assert feats[0].tolist() == [[1] * 4, [0] * 4, [0] * 4]
    assert batch.stream_lengths["features"].tolist() == [1, 3]
    assert batch.masks["features"].tolist() == [[True, False, False], [True, True, True]]
    labels = batch["frame_labels"]
    assert labels.dtype == torch.int64 and LABEL_PAD == -100  # CrossEntropyLoss ignore_index
    assert labels.tolist() == [[1, 2, LABEL_PAD], [0, 1, 1]]
    frames = batch["frames"]
    assert frames.dtype == torch.uint8 and frames.shape == (2, 3, 3, 3, 3)
    assert int(frames[0, 0, 0, 0, 0]) == 255 and int(frames[0, 2].max()) == 0
    # text: <s> w </s> with w = len(word) + 10; padded with pad_id 0
    assert batch.text_ids.tolist() == [[1, 12, 16, 2, 0], [1, 16, 14, 15, 2]]
    assert batch.text_lengths.tolist() == [4, 5]
    assert batch.text_mask.tolist() == [[True] * 4 + [False], [True] * 5]
    # glosses: VIEL unseen -> <unk> = 2; padded with <pad> = 1
    assert batch.gloss_ids.tolist() == [[4, 1, 1], [3, 5, 2]]
    assert batch.gloss_lengths.tolist() == [1, 3]
    assert batch.texts == ["es regnet", "morgen viel sonne"]
    assert batch.glosses == ["REGEN", "MORGEN SONNE VIEL"]


def test_collate_normalized_frames_and_poses():
    def poses(t):
        return lambda: {"dwpose": np.full((t, 4), t, np.float32),
                        "mediapipe": np.full((t, 2), -t, np.float32)}

    s = [Sample(name="x", num_frames=1, loaders={"frames": lambda: np.full((1, 2, 2, 3), 255,
                                                                            np.uint8),
                                                 "poses": poses(1)}),
         Sample(name="y", num_frames=2, loaders={"frames": lambda: np.full((2, 2, 2, 3), 51,
                                                                            np.uint8),
                                                 "poses": poses(2)})]
    batch = collate(s, streams=("frames", "poses"), normalize_frames=True)
    f = batch["frames"]
    assert f.dtype == torch.float32
    assert torch.allclose(f[0, 0], torch.ones(2, 2, 3)) and torch.allclose(f[1], 0.2 * torch.ones(
        2, 2, 2, 3))
    assert f[0, 1].abs().sum() == 0
    p = batch["poses"]
    assert set(p) == {"dwpose", "mediapipe"} and p["dwpose"].shape == (2, 2, 4)
    assert p["dwpose"][0].tolist() == [[1.0] * 4, [0.0] * 4]
    assert p["mediapipe"][1].tolist() == [[-2.0] * 2, [-2.0] * 2]
    assert batch.masks["poses"].tolist() == [[True, False], [True, True]]
    moved = batch.to("meta")
    assert moved["poses"]["dwpose"].device.type == "meta" and moved.lengths.device.type == "meta"
    assert moved.names == ["x", "y"] and batch["frames"].device.type == "cpu"


def test_collate_errors_name_sample_and_stream():
    s = [_sample("ok", 2, loaders={"frames": lambda: np.zeros((2, 2, 2, 3), np.uint8)}),
         _sample("no_frames", 3)]
    with pytest.raises(CollateError, match=r"'no_frames' has no 'frames' stream"):
        collate(s, streams=("keypoints", "frames"))
    bad = Sample(name="wide", num_frames=2,
                 loaders={"keypoints": lambda: np.zeros((2, 5, 3), np.float32)})
    with pytest.raises(CollateError, match=r"'wide'.*'keypoints' has shape \(2, 5, 3\)"):
        collate([s[0], bad])
    with pytest.raises(CollateError, match="'ok' has no text"):
        collate(s, text_tokenizer=_StubTokenizer())
    p = [Sample(name="p1", num_frames=1, loaders={"poses": lambda: {"a": np.zeros((1, 2))}}),
         Sample(name="p2", num_frames=1, loaders={"poses": lambda: {"b": np.zeros((1, 2))}})]
    with pytest.raises(CollateError, match="'p2': pose formats"):
        collate(p, streams=("poses",))


def test_collate_failing_loader_propagates():
    def broken():
        raise OSError("frame 7 of clip.mp4 unreadable")

    s = [Sample(name="c", num_frames=1, loaders={"keypoints": broken})]
    with pytest.raises(OSError, match="frame 7"):
        collate(s)


# ---------------------------------------------------------------- sampler
def _flat(batches):
    return [i for b in batches for i in b]


def test_sampler_deterministic_per_seed_and_epoch():
    lengths = list(np.random.default_rng(1).integers(1, 50, size=37))
    s = BucketBatchSampler(lengths, batch_size=4, seed=3, bucket_size_multiplier=2)
    first = list(s)
    assert list(s) == first  # same (seed, epoch)
    assert list(BucketBatchSampler(lengths, 4, seed=3, bucket_size_multiplier=2)) == first
    s.set_epoch(1)
    second = list(s)
    assert second != first
    s.set_epoch(0)
    assert list(s) == first
    assert list(BucketBatchSampler(lengths, 4, seed=4, bucket_size_multiplier=2)) != first
    for batches in (first, second):
        assert sorted(_flat(batches)) == list(range(37))  # each index exactly once
        assert len(batches) == len(s) == 10
        assert sorted(len(b) for b in batches) == [1] + [4] * 9  # 37 = 9 * 4 + 1
    dropped = BucketBatchSampler(lengths, 4, seed=3, drop_last=True)
    assert len(list(dropped)) == len(dropped) == 9 and all(len(b) == 4 for b in dropped)


def test_sampler_without_shuffle_is_sorted_in_chunks():
    lengths = [5, 1, 4, 2, 3, 9, 7, 8]
    s = BucketBatchSampler(lengths, batch_size=2, shuffle=False, bucket_size_multiplier=2)
    # chunks of 4 indices: [0..3] sorted by length -> 1,3,2,0 ; [4..7] -> 4,6,7,5
    assert list(s) == [[1, 3], [2, 0], [4, 6], [7, 5]]


def _padding(batches, lengths):
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_bucketing_reduces_padding():
    lengths = np.random.default_rng(0).integers(10, 300, size=400).tolist()
    bucketed = list(BucketBatchSampler(lengths, batch_size=8, seed=0, bucket_size_multiplier=50))
    rng = np.random.default_rng(0)
    perm = rng.permutation(400).tolist()
    random_batches = [perm[i:i + 8] for i in range(0, 400, 8)]
    assert _padding(bucketed, lengths) < 0.1 * _padding(random_batches, lengths)


def test_sampler_ddp_shares():
    lengths = list(range(12))
    shares = [_flat(BucketBatchSampler(lengths, 2, seed=5, num_replicas=3, rank=r))
              for r in range(3)]
    assert all(len(x) == 4 for x in shares)
    assert sorted(shares[0] + shares[1] + shares[2]) == list(range(12))  # disjoint, complete
    # 10 samples over 3 ranks: padded to 12 by repeating 2 indices; equal shares, all covered
    lengths = list(range(10))
    samplers = [BucketBatchSampler(lengths, 3, seed=5, num_replicas=3, rank=r) for r in range(3)]
    shares = [_flat(s) for s in samplers]
    assert [len(x) for x in shares] == [4, 4, 4] and len({len(s) for s in samplers}) == 1
    allidx = shares[0] + shares[1] + shares[2]
    assert set(allidx) == set(range(10)) and len(allidx) == 12
    for s in samplers:
        s.set_epoch(2)
    assert [_flat(s) for s in samplers] != shares
    trimmed = [_flat(BucketBatchSampler(lengths, 3, seed=5, num_replicas=3, rank=r,
                                        drop_last=True)) for r in range(3)]
    both = trimmed[0] + trimmed[1] + trimmed[2]
    assert len(both) == 9 and len(set(both)) == 9
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler(lengths, 2, num_replicas=2, rank=2)


# ---------------------------------------------------------------- DataLoader
def _dataset(n: int = 11) -> list[Sample]:
    # closures: not picklable; workers get them by fork and fetch dataset[i] themselves
    return [Sample(name=f"s{i:02d}", num_frames=1 + i % 5, text=f"satz {i}",
                   loaders={"keypoints": (lambda i=i: _kp(1 + i % 5, float(i)))})
            for i in range(n)]


@pytest.mark.parametrize("workers", [0, 2])
def test_make_loader(workers):
    data = _dataset()
    loader = make_loader(data, batch_size=3, streams=("keypoints",), shuffle=True, seed=7,
                         num_workers=workers)
    seen = []
    for batch in loader:
        kp = batch["keypoints"]
        for j, name in enumerate(batch.names):
            i = int(name[1:])
            t = 1 + i % 5
            assert batch.stream_lengths["keypoints"][j] == t
            assert torch.equal(kp[j, :t], torch.full((t, 2, 3), float(i)))
            assert (kp[j, t:] == 0).all()
            seen.append(name)
    assert sorted(seen) == [s.name for s in data]
    sampler_order = [[data[i].name for i in b] for b in loader.batch_sampler]
    assert [n for b in sampler_order for n in b] == seen  # loader follows the sampler


def test_make_loader_falls_back_to_fork_for_unpicklable(monkeypatch):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method on this platform")
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda *a, **k: "spawn")
    loader = make_loader(_dataset(3), batch_size=2, num_workers=2)
    assert loader.multiprocessing_context.get_start_method() == "fork"


# ---------------------------------------------------------------- feature cache
def test_cache_hit_miss_and_config_key(tmp_path):
    cfg = {"backbone": "resnet18", "res": 64}
    cache = FeatureCache(tmp_path, cfg)
    expected_key = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
    assert cache.folder == tmp_path / expected_key
    assert json.loads((cache.folder / "config.json").read_text()) == cfg
    assert cache.get("a") is None and cache.misses == 1
    calls = []

    def compute():
        calls.append(1)
        return {"feat": torch.arange(6, dtype=torch.float32).reshape(3, 2),
                "ids": torch.tensor([1, 2], dtype=torch.int64)}

    first = cache.get_or_compute("a", compute)
    second = cache.get_or_compute("a", compute)
    assert len(calls) == 1 and cache.hits == 1
    assert torch.equal(first["feat"], second["feat"]) and second["ids"].dtype == torch.int64
    # same config in another key order -> same folder, a hit
    again = FeatureCache(tmp_path, {"res": 64, "backbone": "resnet18"})
    assert again.folder == cache.folder and again.get("a") is not None
    other = FeatureCache(tmp_path, {**cfg, "res": 128})
    assert other.folder != cache.folder and other.get("a") is None
    with pytest.raises(TypeError, match="JSON"):
        FeatureCache(tmp_path, {"f": object()})


def test_cache_odd_names_stay_inside(tmp_path):
    cache = FeatureCache(tmp_path, {"k": 1})
    for name in ("../escape", "dir/clip 1", ".hidden"):
        path = cache.put(name, {"x": torch.ones(1)})
        assert path.parent == cache.folder
        assert torch.equal(cache.get(name)["x"], torch.ones(1))
    assert cache.get("dir_clip_1") is None  # sanitised twin is a different entry


def test_cache_atomic_write(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path, {"k": 1})
    cache.put("a", {"x": torch.zeros(2)})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        cache.put("a", {"x": torch.ones(2)})
    monkeypatch.undo()
    assert torch.equal(cache.get("a")["x"], torch.zeros(2))  # old entry intact
    assert sorted(p.name for p in cache.folder.iterdir()) == ["a.safetensors", "config.json"]


def test_cache_corrupted_file(tmp_path):
    cache = FeatureCache(tmp_path, {"k": 1})
    path = cache.put("a", {"x": torch.ones(4)})
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(FeatureCacheError, match=r"a\.safetensors: corrupted"):
        cache.get("a")
    lenient = FeatureCache(tmp_path, {"k": 1}, on_corrupt="recompute")
    with pytest.warns(UserWarning, match="recomputing"):
        out = lenient.get_or_compute("a", lambda: {"x": torch.full((4,), 2.0)})
    assert torch.equal(out["x"], torch.full((4,), 2.0))
    assert torch.equal(cache.get("a")["x"], torch.full((4,), 2.0))  # rewritten
    os.replace(path, cache.path_for("b"))
    with pytest.raises(FeatureCacheError, match="holds features of sample 'a'"):
        cache.get("b")
