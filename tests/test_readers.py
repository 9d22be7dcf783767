"""Readers for the real dataset formats, tested on small datasets the tests write themselves.

Every fixture is written in the published layout (PHOENIX-2014T CSV + PNG, signjoey gzip pickle,
CSL-Daily pickle + split file + JPG, How2Sign TSV + OpenPose JSON); the expected values are what
the test wrote, so each assertion is against an independent reference.
"""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import harness.data.readers  # noqa: F401  (registers the sources)
from harness.data import load_dataset
from harness.data.readers import (
    DatasetFormatError,
    DatasetMissingError,
    UntrustedPickleError,
)

RNG = np.random.default_rng(1234)

# --------------------------------------------------------------------------------------------
# PHOENIX-2014T
# --------------------------------------------------------------------------------------------

PHOENIX_HEADER = "name|video|start|end|speaker|orth|translation"


def _phoenix_csv(root: Path, split: str) -> Path:
    return root / "annotations" / "manual" / f"PHOENIX-2014-T.{split}.corpus.csv"


def _phoenix_folder(root: Path, split: str, name: str) -> Path:
    return root / "features" / "fullFrame-210x260px" / split / name


def write_phoenix(root: Path, sizes=(("train", 3), ("dev", 2), ("test", 1)),
                  frames: int = 3) -> dict[str, dict]:
    """A PHOENIX-2014T copy; returns {name: {split, signer, gloss, text, frames}}."""
    truth: dict[str, dict] = {}
    for split, count in sizes:
        lines = [PHOENIX_HEADER]
        for i in range(count):
            name = f"{split}_video_{i}"
            signer = f"Signer0{i + 1}"
            gloss = f"REGEN MORGEN NORD{i}"
            text = f"morgen regnet es im norden {i} ."  # signjoey-style lower-cased text
            lines.append(f"{name}|{name}/1/*.png|-1|-1|{signer}|{gloss}|{text}")
            folder = _phoenix_folder(root, split, name)
            folder.mkdir(parents=True)
            video = RNG.integers(0, 256, size=(frames + i, 6, 5, 3), dtype=np.uint8)
            for t, frame in enumerate(video, start=1):
                Image.fromarray(frame).save(folder / f"images{t:04d}.png")
            truth[name] = dict(split=split, signer=signer, gloss=gloss, text=text, frames=video)
        path = _phoenix_csv(root, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return truth


def test_phoenix_reads_metadata_and_split_sizes_from_the_files(tmp_path):
    truth = write_phoenix(tmp_path)
    sizes = {split: len(load_dataset("phoenix14t", split, root=tmp_path))
             for split in ("train", "dev", "test")}
    assert sizes == {"train": 3, "dev": 2, "test": 1}  # not the published 7096/519/642
    dev = load_dataset("phoenix14t", "dev", root=tmp_path)
    assert [s.name for s in dev] == ["dev_video_0", "dev_video_1"]
    for sample in dev:
        expected = truth[sample.name]
        assert (sample.signer, sample.gloss, sample.text) == (
            expected["signer"], expected["gloss"], expected["text"])
        assert sample.source == "phoenix14t"
        assert sample.keypoints is None and sample.features is None
    assert [s.name for s in load_dataset("phoenix14t", "val", root=tmp_path)] == [
        s.name for s in dev]


def test_phoenix_frames_round_trip_pixel_exact(tmp_path):
    truth = write_phoenix(tmp_path, sizes=(("train", 2),), frames=4)
    for sample in load_dataset("phoenix14t", "train", root=tmp_path):
        expected = truth[sample.name]["frames"]
        assert sample.num_frames == len(expected)
        frames = sample.frames
        assert frames.dtype == np.uint8 and frames.shape == expected.shape
        np.testing.assert_array_equal(frames, expected)


def test_phoenix_frames_are_lazy(tmp_path, monkeypatch):
    write_phoenix(tmp_path, sizes=(("train", 2),))
    opened: list[str] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda p, *a, **k: opened.append(str(p))
                        or real_open(p, *a, **k))
    data = load_dataset("phoenix14t", "train", root=tmp_path)
    sample = data[1]
    assert sample.num_frames == 4 and opened == []  # listed and indexed, nothing decoded
    (_phoenix_folder(tmp_path, "train", "train_video_1") / "images0002.png").unlink()
    with pytest.raises(DatasetFormatError, match=r"train_video_1.*frame number 2 is missing"):
        _ = sample.frames
    assert data[0].frames.shape[0] == 3  # the other sample is unaffected


def test_phoenix_last_frame_deleted_after_listing_is_a_count_error(tmp_path):
    write_phoenix(tmp_path, sizes=(("train", 1),))
    sample = load_dataset("phoenix14t", "train", root=tmp_path)[0]
    (_phoenix_folder(tmp_path, "train", "train_video_0") / "images0003.png").unlink()
    with pytest.raises(DatasetFormatError, match=r"holds 2 frame\(s\) but 3 were expected"):
        _ = sample.frames


def test_phoenix_missing_root_and_split_file(tmp_path):
    with pytest.raises(DatasetMissingError, match="root="):
        load_dataset("phoenix14t", "train")
    with pytest.raises(DatasetMissingError, match=r"nowhere.*does not exist"):
        load_dataset("phoenix14t", "train", root=tmp_path / "nowhere")
    write_phoenix(tmp_path, sizes=(("train", 1),))
    with pytest.raises(DatasetMissingError, match=r"PHOENIX-2014-T\.test\.corpus\.csv is missing"):
        load_dataset("phoenix14t", "test", root=tmp_path)


def test_phoenix_unknown_split(tmp_path):
    write_phoenix(tmp_path, sizes=(("train", 1),))
    with pytest.raises(DatasetFormatError, match="unknown split 'validation'"):
        load_dataset("phoenix14t", "validation", root=tmp_path)


@pytest.mark.parametrize(("header", "problem"), [
    ("name|video|start|end|speaker|orth", r"missing column\(s\) \['translation'\]"),
    (PHOENIX_HEADER + "|extra", r"unexpected column\(s\) \['extra'\]"),
    ("name|video|start|end|speaker|orth|orth", r"missing column\(s\) \['translation'\]"),
])
def test_phoenix_header_errors_name_file_and_line(tmp_path, header, problem):
    write_phoenix(tmp_path, sizes=(("train", 1),))
    path = _phoenix_csv(tmp_path, "train")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([header, *lines[1:]]) + "\n")
    with pytest.raises(DatasetFormatError, match=r"PHOENIX-2014-T\.train\.corpus\.csv, line 1 "
                                                 r"\(header\): " + problem):
        load_dataset("phoenix14t", "train", root=tmp_path)


def test_phoenix_row_with_wrong_field_count(tmp_path):
    write_phoenix(tmp_path, sizes=(("train", 3),))
    path = _phoenix_csv(tmp_path, "train")
    lines = path.read_text().splitlines()
    lines[2] += "|surplus"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"train\.corpus\.csv, line 3: 8 '\|'-separated "
                                                 r"field\(s\), expected 7"):
        load_dataset("phoenix14t", "train", root=tmp_path)


def test_phoenix_non_utf8_text_names_file_and_line(tmp_path):
    write_phoenix(tmp_path, sizes=(("train", 2),))
    path = _phoenix_csv(tmp_path, "train")
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"norden", "n\u00f6rden".encode("latin-1"))
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DatasetFormatError, match=r"train\.corpus\.csv, line 3: not valid UTF-8"):
        load_dataset("phoenix14t", "train", root=tmp_path)


def test_phoenix_missing_or_empty_frame_folder_raises_on_access(tmp_path):
    write_phoenix(tmp_path, sizes=(("train", 2),))
    folder0 = _phoenix_folder(tmp_path, "train", "train_video_0")
    folder1 = _phoenix_folder(tmp_path, "train", "train_video_1")
    for png in folder0.iterdir():
        png.unlink()
    folder0.rmdir()
    for png in folder1.iterdir():
        png.unlink()
    data = load_dataset("phoenix14t", "train", root=tmp_path)  # listing does not fail
    missing, empty = data[0], data[1]
    assert missing.num_frames == 0 and empty.num_frames == 0
    with pytest.raises(DatasetMissingError, match=r"frame folder .*train_video_0 is missing"):
        _ = missing.frames
    with pytest.raises(DatasetFormatError, match=r"train_video_1 holds no frame.*zero frames"):
        _ = empty.frames


def test_phoenix_undecodable_png_names_the_file(tmp_path):
    write_phoenix(tmp_path, sizes=(("train", 1),))
    bad = _phoenix_folder(tmp_path, "train", "train_video_0") / "images0002.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    sample = load_dataset("phoenix14t", "train", root=tmp_path)[0]
    with pytest.raises(DatasetFormatError, match=r"cannot decode image .*images0002\.png"):
        _ = sample.frames


# --------------------------------------------------------------------------------------------
# signjoey / SLRT feature files
# --------------------------------------------------------------------------------------------


def signjoey_entries(count: int = 3, width: int = 8) -> list[dict]:
    return [{"name": f"train/clip{i}", "signer": f"Signer0{i}", "gloss": f"A B C{i}",
             "text": f"satz nummer {i} .", "sign": torch.randn(4 + i, width),
             "num_frames": 4 + i} for i in range(count)]


def write_gzip_pickle(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        pickle.dump(obj, handle)
    return path


def test_signjoey_reads_features_and_metadata(tmp_path):
    entries = signjoey_entries()
    file = write_gzip_pickle(tmp_path / "phoenix14t.pami0.dev", entries)
    by_path = load_dataset("signjoey", "dev", path=file, trust_pickle=True)
    by_root = load_dataset("signjoey", "val", root=tmp_path, trust_pickle=True)
    for data in (by_path, by_root):
        assert [s.name for s in data] == [e["name"] for e in entries]
        for sample, entry in zip(data, entries, strict=True):
            assert (sample.signer, sample.gloss, sample.text) == (
                entry["signer"], entry["gloss"], entry["text"])
            assert sample.num_frames == entry["sign"].shape[0]
            assert sample.features.dtype == np.float32
            np.testing.assert_array_equal(sample.features, entry["sign"].numpy())
            assert sample.frames is None


def test_signjoey_accepts_numpy_and_plain_pickles(tmp_path):
    entries = signjoey_entries(1)
    entries[0]["sign"] = entries[0]["sign"].double().numpy()
    (tmp_path / "test.pkl").write_bytes(pickle.dumps(entries))
    sample = load_dataset("signjoey", "test", root=tmp_path, trust_pickle=True)[0]
    np.testing.assert_allclose(sample.features, entries[0]["sign"], rtol=1e-6)


def test_signjoey_requires_trust_flag(tmp_path):
    file = write_gzip_pickle(tmp_path / "x.train", signjoey_entries(1))
    with pytest.raises(UntrustedPickleError,
                       match=r"x\.train is a Python pickle.*arbitrary code.*"
                             r"trust_pickle=True") as info:
        load_dataset("signjoey", "train", path=file)
    assert not isinstance(info.value, DatasetFormatError)  # distinct: the file may be fine


def test_signjoey_file_errors(tmp_path):
    with pytest.raises(DatasetMissingError, match="root="):
        load_dataset("signjoey", "train", trust_pickle=True)
    with pytest.raises(DatasetMissingError, match=r"missing\.train is missing"):
        load_dataset("signjoey", "train", path=tmp_path / "missing.train", trust_pickle=True)
    with pytest.raises(DatasetMissingError, match="no train file in"):
        load_dataset("signjoey", "train", root=tmp_path, trust_pickle=True)
    with pytest.raises(DatasetFormatError, match="unknown split 'all'"):
        load_dataset("signjoey", "all", root=tmp_path, trust_pickle=True)
    corrupt = tmp_path / "corrupt.train"
    corrupt.write_bytes(gzip.compress(b"definitely not a pickle"))
    with pytest.raises(DatasetFormatError, match=r"cannot read .*corrupt\.train as a "
                                                 r"gzip-compressed pickle"):
        load_dataset("signjoey", "train", path=corrupt, trust_pickle=True)
    truncated = tmp_path / "truncated.train"
    truncated.write_bytes(gzip.compress(pickle.dumps(signjoey_entries(1)))[:40])
    with pytest.raises(DatasetFormatError, match=r"truncated\.train"):
        load_dataset("signjoey", "train", path=truncated, trust_pickle=True)


def test_signjoey_entry_errors(tmp_path):
    entries = signjoey_entries(2)
    del entries[1]["gloss"]
    file = write_gzip_pickle(tmp_path / "a.train", entries)
    with pytest.raises(DatasetFormatError, match=r"a\.train, entry 1 lacks key\(s\) \['gloss'\]"):
        load_dataset("signjoey", "train", path=file, trust_pickle=True)
    entries = signjoey_entries(2)
    entries[0]["sign"] = torch.zeros(0, 8)
    write_gzip_pickle(file, entries)
    with pytest.raises(DatasetFormatError, match=r"entry 0 \('train/clip0'\): zero-length video"):
        load_dataset("signjoey", "train", path=file, trust_pickle=True)
    entries = signjoey_entries(1)
    entries[0]["text"] = "gr\u00fcn".encode("latin-1")
    write_gzip_pickle(file, entries)
    with pytest.raises(DatasetFormatError, match=r"field 'text' is not valid UTF-8"):
        load_dataset("signjoey", "train", path=file, trust_pickle=True)


def test_signjoey_nan_features_raise_on_access(tmp_path):
    entries = signjoey_entries(1)
    entries[0]["sign"][2, 3] = float("nan")
    file = write_gzip_pickle(tmp_path / "a.train", entries)
    sample = load_dataset("signjoey", "train", path=file, trust_pickle=True)[0]
    with pytest.raises(DatasetFormatError, match=r"NaN or infinite values in 1 frame"):
        _ = sample.features


# --------------------------------------------------------------------------------------------
# CSL-Daily
# --------------------------------------------------------------------------------------------

CSL_ROWS = [  # name, split, glosses, characters
    ("S000000_P0000_T00", "train", ["我", "喜欢", "吃"], list("我喜欢吃苹果")),
    ("S000001_P0003_T00", "train", ["今天", "天气", "好"], list("今天天气很好")),
    ("S000002_P0001_T01", "dev", ["你", "名字", "什么"], list("你叫什么名字")),
    ("S000003_P0002_T00", "test", ["谢谢"], list("谢谢你")),
]


def _smooth_video(frames: int, size: int = 16) -> np.ndarray:
    """Smooth gradients (JPEG keeps them within a few grey levels)."""
    y, x = np.mgrid[0:size, 0:size]
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        video[t, ..., 0] = 40 + 8 * x + t
        video[t, ..., 1] = 60 + 6 * y
        video[t, ..., 2] = 120
    return video


def write_csl_daily(root: Path, header: bool = True, frames: int = 3) -> dict[str, np.ndarray]:
    labels = root / "sentence_label"
    labels.mkdir(parents=True)
    info = [{"name": name, "length": frames, "label_gloss": glosses, "label_char": chars,
             "label_word": ["".join(chars)]} for name, _, glosses, chars in CSL_ROWS]
    (labels / "csl2020ct_v2.pkl").write_bytes(pickle.dumps({"info": info, "gloss_map": []}))
    lines = (["Name|Split"] if header else []) + [f"{n}|{s}" for n, s, _, _ in CSL_ROWS]
    (labels / "split_1.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    videos = {}
    for name, *_ in CSL_ROWS:
        folder = root / "sentence_frames-512x512" / name
        folder.mkdir(parents=True)
        videos[name] = _smooth_video(frames)
        for t, frame in enumerate(videos[name]):
            Image.fromarray(frame).save(folder / f"{t:06d}.jpg", quality=95)
    return videos


@pytest.mark.parametrize("header", [True, False])
def test_csl_daily_reads_labels_and_frames(tmp_path, header):
    videos = write_csl_daily(tmp_path, header=header)
    train = load_dataset("csl-daily", "train", root=tmp_path, trust_pickle=True)
    assert [s.name for s in train] == ["S000000_P0000_T00", "S000001_P0003_T00"]
    first = train[0]
    assert first.text == "我喜欢吃苹果" and first.gloss == "我 喜欢 吃"
    assert first.signer == "P0000" and train[1].signer == "P0003"
    assert first.num_frames == 3 and first.source == "csl-daily"
    frames = first.frames
    assert frames.shape == (3, 16, 16, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - videos[first.name].astype(int)).max() <= 8
    assert [s.name for s in load_dataset("csl-daily", "dev", root=tmp_path,
                                         trust_pickle=True)] == ["S000002_P0001_T01"]
    assert len(load_dataset("csl-daily", "test", root=tmp_path, trust_pickle=True)) == 1


def test_csl_daily_requires_trust_flag(tmp_path):
    write_csl_daily(tmp_path)
    with pytest.raises(UntrustedPickleError,
                       match=r"csl2020ct_v2\.pkl is a Python pickle.*arbitrary code.*"
                             r"trust_pickle=True"):
        load_dataset("csl-daily", "train", root=tmp_path)


def test_csl_daily_frames_lazy_and_checked(tmp_path):
    write_csl_daily(tmp_path)
    data = load_dataset("csl-daily", "train", root=tmp_path, trust_pickle=True)
    folder = tmp_path / "sentence_frames-512x512" / "S000000_P0000_T00"
    (folder / "000001.jpg").unlink()
    sample = data[0]  # indexing still works: length comes from the labels
    with pytest.raises(DatasetFormatError, match=r"S000000_P0000_T00: frame number 1 is missing"):
        _ = sample.frames
    (folder / "000001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetFormatError, match=r"cannot decode image .*000001\.jpg"):
        _ = sample.frames
    other = tmp_path / "sentence_frames-512x512" / "S000001_P0003_T00"
    (other / "000002.jpg").unlink()
    with pytest.raises(DatasetFormatError, match=r"holds 2 frame\(s\) but 3 were expected"):
        _ = data[1].frames


def test_csl_daily_missing_frame_folder(tmp_path):
    write_csl_daily(tmp_path)
    folder = tmp_path / "sentence_frames-512x512" / "S000003_P0002_T00"
    for jpg in folder.iterdir():
        jpg.unlink()
    sample = load_dataset("csl-daily", "test", root=tmp_path, trust_pickle=True)[0]
    with pytest.raises(DatasetFormatError, match=r"S000003_P0002_T00 holds no frame"):
        _ = sample.frames
    folder.rmdir()
    with pytest.raises(DatasetMissingError, match=r"S000003_P0002_T00 is missing"):
        _ = sample.frames


def test_csl_daily_split_file_errors(tmp_path):
    write_csl_daily(tmp_path)
    split_file = tmp_path / "sentence_label" / "split_1.txt"
    original = split_file.read_text()

    def load():
        return load_dataset("csl-daily", "train", root=tmp_path, trust_pickle=True)

    split_file.write_text(original.replace("S000001_P0003_T00|train", "S000001_P0003_T00"))
    with pytest.raises(DatasetFormatError, match=r"split_1\.txt, line 3: 1 '\|'-separated"):
        load()
    split_file.write_text(original.replace("S000002_P0001_T01|dev", "S000002_P0001_T01|eval"))
    with pytest.raises(DatasetFormatError, match=r"split_1\.txt, line 4: unknown split 'eval'"):
        load()
    split_file.write_text(original + "S999999_P0000_T00|train\n")
    with pytest.raises(DatasetFormatError, match=r"line 6: 'S999999_P0000_T00' has no entry in "
                                                 r"the label file"):
        load()
    split_file.write_bytes(original.encode() + "S1|tr\u00e4in\n".encode("latin-1"))
    with pytest.raises(DatasetFormatError, match=r"split_1\.txt, line 6: not valid UTF-8"):
        load()
    split_file.unlink()
    with pytest.raises(DatasetMissingError, match=r"split file .*split_1\.txt is missing"):
        load()
    with pytest.raises(DatasetFormatError, match="unknown split 'everything'"):
        load_dataset("csl-daily", "everything", root=tmp_path, trust_pickle=True)


def test_csl_daily_label_errors(tmp_path):
    write_csl_daily(tmp_path)
    label_file = tmp_path / "sentence_label" / "csl2020ct_v2.pkl"
    labels = pickle.loads(label_file.read_bytes())
    labels["info"][1]["length"] = 0
    label_file.write_bytes(pickle.dumps(labels))
    with pytest.raises(DatasetFormatError, match=r"info\[1\] \('S000001_P0003_T00'\): "
                                                 r"zero-length video"):
        load_dataset("csl-daily", "train", root=tmp_path, trust_pickle=True)
    del labels["info"][1]["label_char"]
    label_file.write_bytes(pickle.dumps(labels))
    with pytest.raises(DatasetFormatError, match=r"info\[1\] lacks key\(s\) \['label_char'\]"):
        load_dataset("csl-daily", "train", root=tmp_path, trust_pickle=True)
    label_file.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DatasetFormatError, match=r"holds a list; expected a dict with an 'info'"):
        load_dataset("csl-daily", "train", root=tmp_path, trust_pickle=True)


# --------------------------------------------------------------------------------------------
# How2Sign
# --------------------------------------------------------------------------------------------

H2S_HEADER = ("VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\t"
              "END_REALIGNED\tSENTENCE")
PART_SIZES = (("pose_keypoints_2d", 25), ("face_keypoints_2d", 70),
              ("hand_left_keypoints_2d", 21), ("hand_right_keypoints_2d", 21))


def _openpose_person(rng: np.random.Generator) -> dict[str, list[float]]:
    person = {}
    for key, joints in PART_SIZES:
        xy = rng.uniform(0, 700, size=(joints, 2)).round(3)
        conf = rng.uniform(0, 1, size=(joints, 1)).round(4)
        person[key] = np.concatenate([xy, conf], axis=1).reshape(-1).tolist()
    return person


def write_how2sign(root: Path, split_file: str = "train", clips: int = 2, frames: int = 3,
                   keypoints_dir: str = "openpose_output/json") -> dict[str, list[dict | None]]:
    """How2Sign TSV + per-frame OpenPose JSON; returns {clip: [person or None per frame]}."""
    rng = np.random.default_rng(7)
    lines = [H2S_HEADER]
    people: dict[str, list[dict | None]] = {}
    for c in range(clips):
        name = f"-abc{c}_{c}-5-rgb_front"
        lines.append(f"-abc{c}\t-abc{c}-5-rgb_front\t-abc{c}_{c}\t{name}\t{1.5 + c}\t{3.25 + c}\t"
                     f"And then you \"fold\" it number {c}.")
        folder = root / keypoints_dir / name
        folder.mkdir(parents=True)
        people[name] = []
        for t in range(frames):
            person = None if (c == 1 and t == 1) else _openpose_person(rng)
            people[name].append(person)
            doc = {"version": 1.3, "people": [] if person is None else [
                {"person_id": [-1], **person, "pose_keypoints_3d": []}]}
            (folder / f"{name}_{t:012d}_keypoints.json").write_text(json.dumps(doc))
    (root / f"how2sign_realigned_{split_file}.csv").write_text("\n".join(lines) + "\n",
                                                              encoding="utf-8")
    return people


def _expected_keypoints(people: list[dict | None], size=(1280.0, 720.0)) -> np.ndarray:
    out = np.zeros((len(people), 137, 3))
    for t, person in enumerate(people):
        if person is not None:
            out[t] = np.concatenate([np.reshape(person[k], (-1, 3)) for k, _ in PART_SIZES])
    if size is not None:
        out[..., 0] /= size[0]
        out[..., 1] /= size[1]
    return out


def test_how2sign_reads_text_and_keypoints(tmp_path):
    people = write_how2sign(tmp_path)
    data = load_dataset("how2sign", "train", root=tmp_path, keypoint_layout="openpose137")
    assert [s.name for s in data] == list(people)
    assert data[0].text == 'And then you "fold" it number 0.'
    assert data[0].gloss is None and data[0].signer is None and data[0].frames is None
    for sample in data:
        assert sample.num_frames == 3
        keypoints = sample.keypoints
        assert keypoints.shape == (3, 137, 3) and keypoints.dtype == np.float32
        np.testing.assert_allclose(keypoints, _expected_keypoints(people[sample.name]),
                                   rtol=1e-6, atol=1e-7)
    # hand-worked spot check: right-hand joint 0 of frame 0 sits at rows 116 of the stack
    first = people[data[0].name][0]["hand_right_keypoints_2d"]
    np.testing.assert_allclose(data[0].keypoints[0, 116],
                               [first[0] / 1280, first[1] / 720, first[2]], rtol=1e-6)
    # the frame with nobody in it: zeros with confidence 0, not an error
    assert np.all(data[1].keypoints[1] == 0)


def test_how2sign_val_split_pixel_units_and_custom_folder(tmp_path):
    people = write_how2sign(tmp_path, split_file="val",
                            keypoints_dir="val_2D_keypoints/openpose_output/json")
    data = load_dataset("how2sign", "dev", root=tmp_path, image_size=None,
                        keypoints_dir="{split}_2D_keypoints/openpose_output/json",
                        keypoint_layout="openpose137")
    sample = data[0]
    np.testing.assert_allclose(sample.keypoints, _expected_keypoints(people[sample.name], None),
                               rtol=1e-6)
    assert len(load_dataset("how2sign", "val", root=tmp_path)) == 2


def test_how2sign_keypoints_are_lazy_and_bad_json_names_the_file(tmp_path):
    people = write_how2sign(tmp_path)
    name = next(iter(people))
    bad = tmp_path / "openpose_output/json" / name / f"{name}_000000000002_keypoints.json"
    bad.write_text('{"version": 1.3, "people": [{"pose_keypoints_2d": [1, 2,')
    sample = load_dataset("how2sign", "train", root=tmp_path)[0]  # listing parses no JSON
    with pytest.raises(DatasetFormatError, match=rf"cannot decode JSON in .*{name}_000000000002"
                                                 r"_keypoints\.json.* line 1"):
        _ = sample.keypoints
    bad.write_bytes(b'{"people": []}\xff')
    with pytest.raises(DatasetFormatError, match=r"000000000002_keypoints\.json is not valid "
                                                 r"UTF-8"):
        _ = sample.keypoints


def test_how2sign_structural_json_errors(tmp_path):
    people = write_how2sign(tmp_path, clips=1)
    name = next(iter(people))
    path = tmp_path / "openpose_output/json" / name / f"{name}_000000000001_keypoints.json"
    sample = load_dataset("how2sign", "train", root=tmp_path, keypoint_layout="openpose137")[0]
    doc = json.loads(path.read_text())
    doc["people"][0]["face_keypoints_2d"] = doc["people"][0]["face_keypoints_2d"][:-3]
    path.write_text(json.dumps(doc))
    with pytest.raises(DatasetFormatError, match=r"face_keypoints_2d has 207 numbers, expected "
                                                 r"210"):
        _ = sample.keypoints
    del doc["people"][0]["face_keypoints_2d"]
    path.write_text(json.dumps(doc))
    with pytest.raises(DatasetFormatError, match=r"people\[0\] lacks 'face_keypoints_2d'"):
        _ = sample.keypoints
    path.write_text(json.dumps({"version": 1.3}))
    with pytest.raises(DatasetFormatError, match=r"000000000001_keypoints\.json has no 'people'"):
        _ = sample.keypoints
    doc = {"people": [{key: [] for key, _ in PART_SIZES}]}  # parts not estimated: confidence 0
    doc["people"][0]["pose_keypoints_2d"] = people[name][1]["pose_keypoints_2d"]
    path.write_text(json.dumps(doc))
    keypoints = sample.keypoints
    assert np.all(keypoints[1, 25:] == 0) and np.any(keypoints[1, :25, 2] > 0)


def test_how2sign_missing_keypoint_folder_and_gap(tmp_path):
    people = write_how2sign(tmp_path)
    first, second = list(people)
    folder = tmp_path / "openpose_output/json" / first
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    (tmp_path / "openpose_output/json" / second / f"{second}_000000000000_keypoints.json").unlink()
    data = load_dataset("how2sign", "train", root=tmp_path)
    assert data[0].num_frames == 0
    with pytest.raises(DatasetMissingError, match=rf"keypoint folder .*{first} is missing"):
        _ = data[0].keypoints
    with pytest.raises(DatasetFormatError, match=r"frame number 0 is missing"):
        _ = data[1].keypoints


def test_how2sign_annotation_errors(tmp_path):
    write_how2sign(tmp_path)
    path = tmp_path / "how2sign_realigned_train.csv"
    original = path.read_text()
    lines = original.splitlines()

    def load():
        return load_dataset("how2sign", "train", root=tmp_path)

    path.write_text(original.replace("\tSENTENCE\n", "\n", 1))
    with pytest.raises(DatasetFormatError, match=r"how2sign_realigned_train\.csv, line 1 "
                                                 r"\(header\): missing column\(s\) \['SENTENCE'\]"):
        load()
    path.write_text(original.replace("\tSENTENCE\n", "\tSENTENCE\tSPEAKER\n", 1))
    with pytest.raises(DatasetFormatError, match=r"line 1 \(header\): unexpected column\(s\) "
                                                 r"\['SPEAKER'\]"):
        load()
    path.write_text("\n".join([lines[0], lines[1], lines[2].rsplit("\t", 1)[0]]) + "\n")
    with pytest.raises(DatasetFormatError, match=r"realigned_train\.csv, line 3: 6 tab-separated "
                                                 r"field\(s\), expected 7"):
        load()
    fields = lines[2].split("\t")
    fields[5] = fields[4]
    path.write_text("\n".join([lines[0], lines[1], "\t".join(fields)]) + "\n")
    with pytest.raises(DatasetFormatError, match=r"line 3: zero-length video"):
        load()
    fields[5] = "soon"
    path.write_text("\n".join([lines[0], lines[1], "\t".join(fields)]) + "\n")
    with pytest.raises(DatasetFormatError, match=r"line 3: END_REALIGNED 'soon' is not a number"):
        load()
    path.write_bytes(original.encode() + b"a\tb\tc\td\t1\t2\tcaf\xe9\n")
    with pytest.raises(DatasetFormatError, match=r"realigned_train\.csv, line 4: not valid UTF-8"):
        load()
    with pytest.raises(DatasetMissingError, match=r"how2sign_realigned_test\.csv is missing"):
        load_dataset("how2sign", "test", root=tmp_path)
    with pytest.raises(DatasetFormatError, match="unknown split 'holdout'"):
        load_dataset("how2sign", "holdout", root=tmp_path)
    with pytest.raises(DatasetMissingError, match="root="):
        load_dataset("how2sign", "train")


# --------------------------------------------------------------------------------------------
# All readers
# --------------------------------------------------------------------------------------------


def test_listed_datasets_and_samples_pickle_for_worker_processes(tmp_path):
    truth = write_phoenix(tmp_path / "phoenix", sizes=(("train", 2),))
    write_gzip_pickle(tmp_path / "sj" / "f.train", signjoey_entries(1))
    write_csl_daily(tmp_path / "csl")
    write_how2sign(tmp_path / "h2s")
    listed = [
        load_dataset("phoenix14t", "train", root=tmp_path / "phoenix"),
        load_dataset("signjoey", "train", root=tmp_path / "sj", trust_pickle=True),
        load_dataset("csl-daily", "train", root=tmp_path / "csl", trust_pickle=True),
        load_dataset("how2sign", "train", root=tmp_path / "h2s"),
    ]
    for data in listed:
        copy = pickle.loads(pickle.dumps(data))
        assert [s.name for s in copy] == [s.name for s in data]
        sample = pickle.loads(pickle.dumps(data[0]))
        for stream in ("frames", "keypoints", "features"):
            if data[0].has(stream):
                np.testing.assert_array_equal(sample.load(stream), data[0].load(stream))
    np.testing.assert_array_equal(listed[0][0].frames, truth["train_video_0"]["frames"])
