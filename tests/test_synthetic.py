"""The synthetic corpus: determinism, stream shapes, language, learnability, corruption."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from harness.data import load_dataset
from harness.data.keypoints import SIGNFUSE_TO_COCO133, to_coco_wholebody
from harness.data.sample import FRAME_FINGERSPELLING, FRAME_REST, FRAME_SIGN
from harness.data.synthetic import SyntheticCorpus, split_of
from harness.data.synthetic.language import LEXICON, REGIONS
from harness.data.synthetic.signs import sign_template
from harness.metrics import recognition_scores

BODY = 42  # first upper-body joint in the SignFuse-75 layout
R_SHOULDER, L_SHOULDER, L_WRIST, R_WRIST = BODY + 12, BODY + 11, BODY + 15, BODY + 16


def content_hash(corpus: SyntheticCorpus, indices) -> str:
    h = hashlib.sha256()
    for i in indices:
        s = corpus[i]
        h.update(f"{s.name}|{s.signer}|{s.gloss}|{s.text}|{s.fingerspelling}".encode())
        for name in ("frames", "keypoints", "lips", "frame_labels"):
            arr = np.ascontiguousarray(s.load(name))
            h.update(f"{name}{arr.shape}{arr.dtype}".encode())
            h.update(arr.tobytes())
        for fmt, arr in sorted(s.poses.items()):
            h.update(fmt.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def test_same_seed_same_content_and_different_seed_differs():
    a = SyntheticCorpus("dev", size=5, seed=11)
    b = SyntheticCorpus("dev", size=5, seed=11, cache_items=1)
    first = content_hash(a, [0, 3])
    content_hash(b, [4, 1])  # generating other samples first changes nothing
    assert content_hash(b, [0, 3]) == first
    assert content_hash(a, [0, 3]) == first  # re-read (cached and evicted paths)
    assert content_hash(SyntheticCorpus("dev", size=5, seed=12), [0, 3]) != first
    # a sample is independent of corpus size and of which other samples were generated
    assert content_hash(SyntheticCorpus("dev", size=50, seed=11), [3]) == content_hash(a, [3])


def test_stream_shapes_and_widths():
    corpus = SyntheticCorpus("train", size=3, seed=0)
    s = corpus[1]
    t = s.num_frames
    assert t > 10
    assert s.keypoints.shape == (t, 75, 3) and s.keypoints.dtype == np.float32
    assert s.frames.shape == (t, 64, 64, 3) and s.frames.dtype == np.uint8
    assert s.lips.shape == (t, 16, 16, 3) and s.lips.dtype == np.uint8
    labels = s.frame_labels
    assert labels.shape == (t,) and labels.dtype == np.int8
    assert set(np.unique(labels)) <= {FRAME_REST, FRAME_SIGN, FRAME_FINGERSPELLING}
    widths = {k: v.shape for k, v in s.poses.items()}
    assert widths == {"dwpose": (t, 384), "mediapipe": (t, 258), "smplerx": (t, 165),
                      "primedepth": (t, 576), "sapiens": (t, 576)}
    assert sum(v[1] for v in widths.values()) == 1959
    assert all(v.dtype == np.float32 for v in s.poses.values())
    small = SyntheticCorpus("train", size=1, resolution=32)[0]
    assert small.frames.shape[1:] == (32, 32, 3) and small.lips.shape[1:] == (8, 8, 3)


def test_coco_wholebody_mapping():
    kp = SyntheticCorpus("train", size=1)[0].keypoints
    coco = to_coco_wholebody(kp)
    assert coco.shape == (len(kp), 133, 3)
    # hand-worked correspondences: nose, shoulders, wrists, hand roots, a face point
    np.testing.assert_array_equal(coco[:, 0], kp[:, BODY + 0])
    np.testing.assert_array_equal(coco[:, 5], kp[:, L_SHOULDER])
    np.testing.assert_array_equal(coco[:, 6], kp[:, R_SHOULDER])
    np.testing.assert_array_equal(coco[:, 10], kp[:, R_WRIST])
    np.testing.assert_array_equal(coco[:, 91], kp[:, 0])  # left hand wrist
    np.testing.assert_array_equal(coco[:, 132], kp[:, 41])  # right pinky tip
    np.testing.assert_array_equal(coco[:, 23 + 30], kp[:, 65 + 2])  # nose tip (iBUG 30)
    unmapped = np.setdiff1d(np.arange(133), SIGNFUSE_TO_COCO133[SIGNFUSE_TO_COCO133 >= 0])
    assert set(range(11, 23)) <= set(unmapped)  # hips, legs and feet are not observed
    assert np.all(coco[:, unmapped] == 0)
    assert len(np.unique(SIGNFUSE_TO_COCO133[SIGNFUSE_TO_COCO133 >= 0])) == 75 - 8
    with pytest.raises(ValueError, match=r"\(T, 75, C\)"):
        to_coco_wholebody(np.zeros((3, 74, 3)))


def test_german_text_grammar():
    corpus = SyntheticCorpus("train", size=60, seed=2, lang="de")
    texts = [corpus[i].text for i in range(60)]
    assert sum(bool(re.search("[äöüß]", t)) for t in texts) >= 20
    region_pp = {e.gloss: e.de for e in REGIONS}
    for i in range(60):
        s = corpus[i]
        assert s.text == s.text.lower() and s.gloss == s.gloss.upper()
        glosses = s.gloss.split()
        for g in glosses:
            assert g in LEXICON
            if g in region_pp:
                assert region_pp[g] in s.text, (s.gloss, s.text)
        for k in range(len(glosses) - 1):  # STARK after a masculine noun: "starken <noun>"
            if glosses[k + 1] == "STARK" and LEXICON[glosses[k]].gender == "m":
                assert f"starken {LEXICON[glosses[k]].de}" in s.text
        assert s.text.split() != [LEXICON[g].de for g in glosses]  # not word-for-word


def test_chinese_and_english_texts():
    zh = SyntheticCorpus("dev", size=20, lang="zh")
    for i in range(20):
        text = zh[i].text
        assert re.search(r"[\u4e00-\u9fff]", text) and not re.search(r"[A-Za-z ]", text)
    en = SyntheticCorpus("train", size=40, lang="en")
    spelled = 0
    for i in range(40):
        s = en[i]
        assert not re.search(r"[\u4e00-\u9fffäöü]", s.text)
        labels = s.frame_labels
        for span in s.fingerspelling:
            spelled += 1
            assert span.letters.isalpha() and span.letters.isupper()
            assert span.letters.lower() in s.text
            assert f"fs-{span.letters}" in s.gloss.split()
            assert np.all(labels[span.start:span.end] == FRAME_FINGERSPELLING)
        assert np.count_nonzero(labels == FRAME_FINGERSPELLING) == sum(
            sp.end - sp.start for sp in s.fingerspelling)
    assert spelled >= 5
    assert all(not SyntheticCorpus("train", size=10, lang="de")[i].fingerspelling
               for i in range(10))


def test_dev_and_test_combinations_unseen_in_train():
    train = {SyntheticCorpus("train", size=400, seed=5, lang="de").sentence(i).gloss
             for i in range(400)}
    for split in ("dev", "test"):
        corpus = SyntheticCorpus(split, size=80, seed=5, lang="de")
        glosses = [corpus.sentence(i).glosses for i in range(80)]
        assert all(split_of(g) == split for g in glosses)
        assert not {" ".join(g) for g in glosses} & train
    assert len(train) > 350  # combinations are varied, so the disjointness is not vacuous


def _resample(x: np.ndarray, n: int = 16) -> np.ndarray:
    u = np.linspace(0, len(x) - 1, n)
    lo = np.floor(u).astype(int)
    hi = np.minimum(lo + 1, len(x) - 1)
    f = (u - lo)[:, None]
    return x[lo] * (1 - f) + x[hi] * f


def _sign_runs(labels: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for t, lab in enumerate([*labels.tolist(), FRAME_REST]):
        if lab == FRAME_SIGN and start is None:
            start = t
        elif lab != FRAME_SIGN and start is not None:
            runs.append((start, t))
            start = None
    return runs


def _nearest_template_decode(corpus: SyntheticCorpus, corrupt: bool) -> tuple[list, list]:
    """Segment by frame labels; normalise by the shoulders; nearest per-gloss template."""
    names = corpus.vocabulary
    bank = np.stack([np.concatenate([sign_template(g).resample(16)["right"],
                                     sign_template(g).resample(16)["left"]], axis=1)
                     for g in names])
    hyps, refs = [], []
    for i in range(len(corpus)):
        st = corpus.streams(i, corrupt=corrupt, include=("keypoints", "frame_labels"))
        kp = st["keypoints"][..., :2].astype(np.float64)
        mid = (kp[:, L_SHOULDER] + kp[:, R_SHOULDER]) / 2
        width = np.linalg.norm(kp[:, L_SHOULDER] - kp[:, R_SHOULDER], axis=1)
        canon = (kp - mid[:, None]) / np.maximum(width, 1e-6)[:, None, None]
        out = []
        for a, b in _sign_runs(st["frame_labels"]):
            feat = np.concatenate([_resample(canon[a:b, R_WRIST]),
                                   _resample(canon[a:b, L_WRIST])], axis=1)
            out.append(names[int(((bank - feat) ** 2).sum(axis=(1, 2)).argmin())])
        hyps.append(" ".join(out))
        refs.append(corpus[i].gloss)
    return hyps, refs


def test_learnable_nearest_template_decoder():
    corpus = SyntheticCorpus("test", size=25, seed=4, corruption_rate=0.5)
    hyps, refs = _nearest_template_decode(corpus, corrupt=False)
    assert recognition_scores(hyps, refs)["wer"] < 10.0
    # the corrupted keypoints lose information: the same decoder does clearly worse
    hyps_c, _ = _nearest_template_decode(corpus, corrupt=True)
    assert recognition_scores(hyps_c, refs)["wer"] > recognition_scores(hyps, refs)["wer"] + 5


def test_corruption_is_complementary():
    corpus = SyntheticCorpus("dev", size=6, seed=9, corruption_rate=0.5)
    kinds = set()
    for i in range(len(corpus)):
        segs = corpus.sample_corruption(i)
        bad = corpus.streams(i, corrupt=True, include=("frames", "keypoints", "lips"))
        good = corpus.streams(i, corrupt=False, include=("frames", "keypoints", "lips"))
        touched = np.zeros(len(good["frames"]), bool)
        for seg in segs:
            kinds.add((seg.stream, seg.mode))
            sl = slice(seg.start, seg.end)
            touched[sl] = True
            kp_err = np.abs(bad["keypoints"][sl, :, :2] - good["keypoints"][sl, :, :2])
            px_err = np.abs(bad["frames"][sl].astype(int) - good["frames"][sl].astype(int))
            if seg.stream == "keypoints":  # keypoints fail, RGB keeps the information
                assert np.all(kp_err.mean(axis=(1, 2)) > 0.03)
                np.testing.assert_array_equal(bad["frames"][sl], good["frames"][sl])
                np.testing.assert_array_equal(bad["lips"][sl], good["lips"][sl])
            else:  # RGB fails, keypoints keep the information
                np.testing.assert_array_equal(bad["keypoints"][sl], good["keypoints"][sl])
                assert np.all(px_err.max(axis=(1, 2, 3)) > 40)
        np.testing.assert_array_equal(bad["frames"][~touched], good["frames"][~touched])
        np.testing.assert_array_equal(bad["keypoints"][~touched], good["keypoints"][~touched])
    assert {s for s, _ in kinds} == {"keypoints", "rgb"}
    assert SyntheticCorpus("dev", size=2, corruption_rate=0.0).sample_corruption(0) == []


def test_mouth_crops_follow_the_mouthing():
    corpus = SyntheticCorpus("train", size=4, seed=1, corruption_rate=0.0)
    open_all, dark_all = [], []
    for i in range(4):
        lips = corpus[i].lips.astype(float)
        mouth = corpus.hidden_state(i).mouth
        dark_all.append((lips.mean(axis=-1) < 60).mean(axis=(1, 2)))
        open_all.append(mouth[:, 0])
    openness, dark = np.concatenate(open_all), np.concatenate(dark_all)
    assert openness.max() > 0.5 and dark.max() > 0.05  # some sign is mouthed wide open
    assert np.corrcoef(openness, dark)[0, 1] > 0.7


def test_load_dataset_and_errors():
    corpus = load_dataset("synthetic", "dev", lang="en", size=3)
    assert len(corpus) == 3 and corpus[-1].name == "synthetic_dev_00002"
    assert [s.name for s in corpus[1:]] == ["synthetic_dev_00001", "synthetic_dev_00002"]
    assert corpus.index_of("synthetic_dev_00002") == 2
    with pytest.raises(ValueError, match="unknown split 'val'"):
        SyntheticCorpus("val")
    with pytest.raises(ValueError, match="unknown lang 'fr'"):
        SyntheticCorpus("train", lang="fr")
    with pytest.raises(ValueError, match="corruption_rate"):
        SyntheticCorpus("train", corruption_rate=1.5)
    with pytest.raises(IndexError, match="out of range"):
        corpus[3]
    with pytest.raises(ValueError, match="not a sample name"):
        corpus.index_of("synthetic_train_00001")
    small = SyntheticCorpus("train", size=5, vocab_size=40)
    assert len(small.vocabulary) < 60
    assert all(g in small.vocabulary for i in range(5) for g in small[i].gloss.split())
