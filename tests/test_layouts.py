"""Keypoint layouts onto the 75 joints, ``.pose`` files (fixtures written with pose-format's own
API), the derived streams (mouth crops, frame labels) and the reader checks of issue 23."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from pose_format import Pose
from pose_format.numpy import NumPyPoseBody
from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions
from pose_format.utils.openpose import OpenPose_Components

from harness.cli import main
from harness.data import load_dataset
from harness.data.export import export_dataset
from harness.data.keypoints import (
    HOLISTIC,
    OPENPOSE,
    SIGNFUSE_75_NAMES,
    from_signfuse,
    mediapipe_feature,
    to_signfuse,
)
from harness.data.readers import DatasetFormatError, DatasetMissingError, UntrustedPickleError
from harness.data.readers.streams import crop_mouths
from harness.data.synthetic import SyntheticCorpus

# Independent references: the flat index of a few named points in each source layout, worked
# out by hand from the layouts (OpenPose: body 0-24, face 25-94, left hand 95-115, right hand
# 116-136; Holistic: pose 0-32, face mesh 33-500, left hand 501-521, right hand 522-542).
OPENPOSE_EXPECTED = {
    "left_hand_wrist": 95, "right_hand_pinky_tip": 136, "body_nose": 0,
    "body_left_shoulder": 5, "body_right_wrist": 4, "body_left_eye": 16, "body_right_ear": 17,
    "body_left_eye_outer": 25 + 45, "body_mouth_right": 25 + 48, "body_left_pinky": 95 + 17,
    "face_chin": 25 + 8, "face_nose_tip": 25 + 30, "face_lower_lip_inner": 25 + 66,
}
HOLISTIC_EXPECTED = {
    "left_hand_wrist": 501, "right_hand_thumb_tip": 522 + 4, "body_nose": 0,
    "body_right_thumb": 22, "body_left_shoulder": 11, "face_chin": 33 + 152,
    "face_mouth_left_corner": 33 + 291, "face_upper_lip_top": 33 + 0,
}


@pytest.mark.parametrize("layout,size,expected", [(OPENPOSE, 137, OPENPOSE_EXPECTED),
                                                  (HOLISTIC, 543, HOLISTIC_EXPECTED)])
def test_layout_mapping_reads_the_documented_points(layout, size, expected):
    points = np.zeros((2, size, 3), np.float32)
    points[..., 0] = np.arange(size)  # x = the point's own index
    points[..., 2] = 0.5
    points[1, :, 2] = np.linspace(0, 1, size)  # confidence is carried through
    kp = to_signfuse(points, layout)
    assert kp.shape == (2, 75, 3) and kp.dtype == np.float32
    for name, index in expected.items():
        joint = SIGNFUSE_75_NAMES.index(name)
        assert kp[0, joint, 0] == index, name
        assert kp[1, joint, 2] == pytest.approx(points[1, index, 2])
    back = from_signfuse(kp, layout)
    assert back.shape == (2, size, 3)
    used = np.unique([kp[0, j, 0] for j in range(75)]).astype(int)
    np.testing.assert_array_equal(back[0, used, 0], used)  # every mapped point goes back
    unmapped = np.setdiff1d(np.arange(size), used)
    assert np.all(back[:, unmapped, 2] == 0)  # the rest: "not observed"
    with pytest.raises(ValueError, match=rf"expected {layout} keypoints of shape"):
        to_signfuse(points[:, :-1], layout)


def test_mediapipe_feature_layout():
    kp = np.random.default_rng(0).uniform(size=(3, 75, 3)).astype(np.float32)
    feat = mediapipe_feature(kp)
    assert feat.shape == (3, 258)
    pose = feat[:, :132].reshape(3, 33, 4)
    np.testing.assert_array_equal(pose[:, 11, :2], kp[:, 42 + 11, :2])  # left shoulder x, y
    np.testing.assert_array_equal(pose[:, 11, 3], kp[:, 42 + 11, 2])  # visibility = confidence
    assert np.all(pose[:, 23:] == 0) and np.all(pose[..., 2] == 0)  # legs absent, z = 0
    hands = feat[:, 132:].reshape(3, 42, 3)
    np.testing.assert_array_equal(hands[:, 21 + 8, :2], kp[:, 21 + 8, :2])  # right index tip


# ------------------------------------------------------------------ .pose files via pose-format


def _holistic_components() -> list[PoseHeaderComponent]:
    hand = [f"P{i}" for i in range(21)]
    return [PoseHeaderComponent("POSE_LANDMARKS", [f"B{i}" for i in range(33)], [], [], "XYZC"),
            PoseHeaderComponent("FACE_LANDMARKS", [str(i) for i in range(468)], [], [], "XYZC"),
            PoseHeaderComponent("LEFT_HAND_LANDMARKS", hand, [], [], "XYZC"),
            PoseHeaderComponent("RIGHT_HAND_LANDMARKS", hand, [], [], "XYZC"),
            PoseHeaderComponent("POSE_WORLD_LANDMARKS", [f"B{i}" for i in range(33)], [], [],
                                "XYZC")]


def _write_pose(path, components, frames, size=(640, 480), seed=0, masked=()):
    """A .pose file written with pose-format's API; returns (data, confidence) as written."""
    rng = np.random.default_rng(seed)
    points = sum(len(c.points) for c in components)
    dims = len(components[0].format) - 1
    data = rng.uniform(0, 1, (frames, 1, points, dims)).astype(np.float32)
    data[..., 0] *= size[0]
    data[..., 1] *= size[1]
    confidence = rng.uniform(0.2, 1, (frames, 1, points)).astype(np.float32)
    mask = np.zeros_like(data, dtype=bool)
    for t, p in masked:  # pose-format stores "not detected" as confidence 0 (read back masked)
        mask[t, 0, p] = True
        confidence[t, 0, p] = 0.0
    header = PoseHeader(0.2, PoseHeaderDimensions(size[0], size[1], 0), components)
    body = NumPyPoseBody(fps=25, data=np.ma.masked_array(data, mask), confidence=confidence)
    with open(path, "wb") as handle:
        Pose(header, body).write(handle)
    return data, confidence


def _index(root, rows):
    lines = ["name\tsplit\ttext\tgloss\tsigner"] + ["\t".join(r) for r in rows]
    (root / "index.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("layout", [OPENPOSE, HOLISTIC])
def test_pose_source_reads_pose_format_files(tmp_path, layout):
    components = list(OpenPose_Components) if layout == OPENPOSE else _holistic_components()
    size = (640, 480)
    left_wrist = 95 if layout == OPENPOSE else 501  # flat index of the left wrist
    data, conf = _write_pose(tmp_path / "clip_a.pose", components, 4, size,
                             masked=[(2, left_wrist)])
    _write_pose(tmp_path / "clip_b.pose", components, 6, size, seed=1)
    _index(tmp_path, [("clip_a", "train", "hallo welt", "HALLO WELT", "S1"),
                      ("clip_b", "train", "zwei", "", "S2"), ("clip_c", "dev", "x", "X", "")])
    (tmp_path / "clip_c.pose").write_bytes((tmp_path / "clip_a.pose").read_bytes())
    train = load_dataset("pose", "train", root=tmp_path)
    assert [s.name for s in train] == ["clip_a", "clip_b"]
    a = train[0]
    assert (a.num_frames, a.text, a.gloss, a.signer) == (4, "hallo welt", "HALLO WELT", "S1")
    assert train[1].gloss is None  # an empty optional gloss: not needed unless required
    kp = a.keypoints
    assert kp.shape == (4, 75, 3)
    joint = SIGNFUSE_75_NAMES.index("left_hand_wrist")
    np.testing.assert_allclose(kp[0, joint, :2], data[0, 0, left_wrist, :2] / size, rtol=1e-6)
    assert kp[0, joint, 2] == pytest.approx(conf[0, 0, left_wrist])
    assert kp[2, joint, 2] == 0  # masked in the file: not observed
    assert a.poses["mediapipe"].shape == (4, 258)
    np.testing.assert_array_equal(a.frame_labels, np.ones(4))  # default: every frame "sign"
    with pytest.raises(DatasetFormatError, match=r"line 3 \('clip_b'\): empty gloss"):
        load_dataset("pose", "train", root=tmp_path, require=("text", "gloss"))


def test_pose_source_errors_name_the_file(tmp_path):
    _write_pose(tmp_path / "ok.pose", list(OpenPose_Components), 3)
    raw = (tmp_path / "ok.pose").read_bytes()
    (tmp_path / "cut.pose").write_bytes(raw[: len(raw) - 40])
    (tmp_path / "junk.pose").write_bytes(b"not a pose file at all")
    odd = [PoseHeaderComponent("BODY", [f"J{i}" for i in range(18)], [], [], "XYC")]
    _write_pose(tmp_path / "odd.pose", odd, 2)
    _index(tmp_path, [(n, "train", "t", "G", "") for n in ("ok", "cut", "junk", "odd")])
    data = load_dataset("pose", "train", root=tmp_path)
    assert data[0].keypoints.shape == (3, 75, 3)
    with pytest.raises(DatasetFormatError, match=r"cut\.pose as a \.pose file \(damaged or "
                                                 r"truncated"):
        _ = data[1].keypoints
    with pytest.raises(DatasetFormatError, match=r"junk\.pose"):
        _ = data[2]
    with pytest.raises(DatasetFormatError, match=r"odd\.pose: unknown keypoint layout "
                                                 r"\(components BODY \(18\)\)"):
        _ = data[3].keypoints
    (tmp_path / "ok.pose").unlink()
    with pytest.raises(DatasetMissingError, match=r"index\.tsv, line 2: no pose file .*ok\.pose"):
        load_dataset("pose", "train", root=tmp_path)


def test_pose_export_round_trips_through_the_reader(tmp_path):
    assert main(["data", "export", "--format", "pose", "--pose-layout", "holistic543", "--out",
                 str(tmp_path), "--size", "2", "--splits", "dev", "--resolution", "32",
                 "--quiet"]) == 0
    corpus = SyntheticCorpus("dev", size=2, resolution=32)
    data = load_dataset("pose", "dev", root=tmp_path)
    for i, sample in enumerate(data):
        ref = corpus[i]
        assert (sample.name, sample.text, sample.gloss) == (ref.name, ref.text, ref.gloss)
        np.testing.assert_allclose(sample.keypoints, ref.keypoints, atol=1e-6)
    labels = load_dataset("pose", "dev", root=tmp_path, labels="frame_labels.tsv")
    np.testing.assert_array_equal(labels[0].frame_labels, corpus[0].frame_labels)


# --------------------------------------------------------------- derived streams, reader checks


def test_mouth_crop_is_cut_around_the_mouth_keypoints():
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    frames[:, 40:48, 20:30] = (200, 10, 10)  # a red mouth
    frames[2, 8:16, 40:50] = (10, 200, 10)  # frame 2: the mouth moved (green)
    kp = np.zeros((3, 75, 3), np.float32)
    mouth = [SIGNFUSE_75_NAMES.index(n) for n in ("face_mouth_right_corner",
                                                  "face_mouth_left_corner")]
    kp[:2, mouth[0]] = (20 / 64, 44 / 64, 0.9)
    kp[:2, mouth[1]] = (30 / 64, 44 / 64, 0.9)
    kp[2, mouth[0]] = (40 / 64, 12 / 64, 0.9)
    kp[2, mouth[1]] = (50 / 64, 12 / 64, 0.9)
    kp[1, mouth, 2] = 0.0  # frame 1: mouth not detected, reuses the nearest box (frame 0)
    lips = crop_mouths(frames, kp, "test")
    assert lips.shape == (3, 16, 16, 3)
    # side = 3 x mouth width = 30 px around the mouth centre (25, 44): the 10 x 8 px mouth is
    # in the middle, 80 / 900 of the crop; the corners are background
    red = lips[0, ..., 0] == 200
    assert red[6:10, 6:10].all() and not red[0, 0] and not red[-1, -1]
    assert red.mean() == pytest.approx(80 / 900, abs=0.03)
    assert (lips[1] == lips[0]).all()
    assert (lips[2, 6:10, 6:10, 1] == 200).all()
    with pytest.raises(DatasetFormatError, match="no frame has confident mouth keypoints"):
        crop_mouths(frames, np.zeros_like(kp), "test")


@pytest.fixture()
def phoenix(tmp_path):
    export_dataset("phoenix14t", tmp_path, size=2, splits=["dev"], resolution=32,
                   progress=False)
    return tmp_path


def test_phoenix_export_has_keypoints_lips_labels(phoenix):
    corpus = SyntheticCorpus("dev", size=2, resolution=32)
    sample = load_dataset("phoenix14t", "dev", root=phoenix)[0]
    assert sample.has("keypoints") and sample.has("lips") and sample.has("poses")
    ok = corpus[0].keypoints[..., 2] > 0
    np.testing.assert_allclose(sample.keypoints[..., :2][ok & (np.arange(75) < 42)],
                               corpus[0].keypoints[..., :2][ok & (np.arange(75) < 42)],
                               atol=1e-4)  # hands: JSON keeps 4 decimals of a pixel
    assert sample.lips.shape == corpus[0].lips.shape
    labelled = load_dataset("phoenix14t", "dev", root=phoenix, labels="frame_labels.tsv")[0]
    np.testing.assert_array_equal(labelled.frame_labels, corpus[0].frame_labels)
    bad = phoenix / "bad.tsv"
    bad.write_text(f"name\tframe_labels\n{sample.name}\tsign rest\n")
    with pytest.raises(DatasetFormatError, match=r"bad\.tsv, line 2: 2 frame label\(s\) for a "
                                                 r"video of \d+ frame"):
        _ = load_dataset("phoenix14t", "dev", root=phoenix, labels=bad)[0].frame_labels
    with pytest.raises(DatasetMissingError, match=r"keypoints_dir .*nowhere is not a folder"):
        load_dataset("phoenix14t", "dev", root=phoenix, keypoints_dir="nowhere")


def test_phoenix_deleted_last_frame_is_detected(phoenix):
    name = load_dataset("phoenix14t", "dev", root=phoenix)[0].name
    folder = phoenix / "features/fullFrame-210x260px/dev" / name
    last = sorted(folder.iterdir())[-1]
    last.unlink()
    with pytest.raises(DatasetFormatError, match=rf"keypoint folder .*{name} holds \d+ frame\(s\) "
                                                 r"but the video has \d+ .*deleted"):
        _ = load_dataset("phoenix14t", "dev", root=phoenix)[0]


def test_phoenix_empty_gloss_or_translation_names_the_row(phoenix):
    csv = phoenix / "annotations/manual/PHOENIX-2014-T.dev.corpus.csv"
    lines = csv.read_text().splitlines()
    fields = lines[2].split("|")
    lines[2] = "|".join([*fields[:5], "", fields[6]])
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"corpus\.csv, line 3 \('[^']+'\): empty "
                                                 r"gloss"):
        load_dataset("phoenix14t", "dev", root=phoenix)
    data = load_dataset("phoenix14t", "dev", root=phoenix, require=("text",))  # gloss-free
    assert data[1].gloss is None and data[1].text
    lines[2] = "|".join([*fields[:6], " "])
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"line 3 .*empty text"):
        load_dataset("phoenix14t", "dev", root=phoenix, require=("text",))


def test_signjoey_mixed_widths_and_trust_pickle_flag(tmp_path, capsys):
    entries = [{"name": f"v{i}", "signer": "S", "gloss": "A B", "text": "a b",
                "sign": np.zeros((3, width), np.float32)} for i, width in enumerate((8, 8, 6))]
    for split in ("train", "dev", "test"):
        (tmp_path / f"phoenix14t.pami0.{split}").write_bytes(gzip.compress(pickle.dumps(entries)))
    with pytest.raises(DatasetFormatError, match=r"entry 2 \('v2'\): 'sign' features are 6 wide "
                                                 r"but entry 0 has 8"):
        load_dataset("signjoey", "dev", root=tmp_path, trust_pickle=True)
    with pytest.raises(UntrustedPickleError, match=r"signbench run --trust-pickle"):
        load_dataset("signjoey", "dev", root=tmp_path)
    status = main(["run", "--methods", "hfa", "--dataset", "signjoey", "--root", str(tmp_path),
                   "--trust-pickle", "--out", str(tmp_path / "runs"), "--quiet"])
    assert status == 1  # the pickle is read; the run stops at the width check, not the gate
    failure = (tmp_path / "runs/failures/hfa.json").read_text()
    assert "6 wide but entry 0 has 8" in failure and "trust_pickle=True" not in failure


def test_docs_mapping_table_is_the_code():
    """docs/data.md prints the joint table; it must say what LAYOUT_TABLES does."""
    from pathlib import Path

    from harness.data.keypoints import LAYOUT_TABLES

    text = (Path(__file__).parents[1] / "docs/data.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1:5] for line in text.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert [int(r[0]) for r in rows] == list(range(42, 75))
    for joint, name, openpose, holistic in rows:
        j = int(joint)
        assert name.strip() == f"`{SIGNFUSE_75_NAMES[j]}`"
        component, point = LAYOUT_TABLES[OPENPOSE][j]
        kind = {"pose_keypoints_2d": "BODY_25", "face_keypoints_2d": "face"}.get(
            component, component.split("_")[1] + " hand")
        assert openpose.strip().startswith(f"{kind} {point}"), (j, openpose)
        component, point = LAYOUT_TABLES[HOLISTIC][j]
        kind = {"POSE_LANDMARKS": "pose", "FACE_LANDMARKS": "face mesh"}[component]
        assert holistic.strip() == f"{kind} {point}", (j, holistic)
