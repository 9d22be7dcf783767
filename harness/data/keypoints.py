"""Keypoint layouts used by SignBench and the mappings between them.

* **SignFuse 75** — the joint selection SignBench's keypoint streams use: 42 hand joints, 23
  upper-body joints and 10 face joints. Order (our choice, documented here): left hand 0–20,
  right hand 21–41 (each in the standard 21-point hand order: wrist, thumb CMC/MCP/IP/tip, then
  MCP/PIP/DIP/tip of index, middle, ring, pinky), upper body 42–64 (MediaPipe Pose landmarks
  0–22: nose, eyes, ears, mouth corners, shoulders, elbows, wrists, pinky/index/thumb
  knuckles), face 65–74 (ten iBUG-68 points: brows, nose tip, chin, lip corners and lip
  midpoints). "Left"/"right" are the signer's own sides.
* **COCO-WholeBody 133** — body 0–16 (COCO-17), feet 17–22, face 23–90 (iBUG 68), left hand
  91–111, right hand 112–132. ``to_coco_wholebody`` maps 75 -> 133; the 133 joints nothing maps
  to (feet, hips, legs, most of the face) get x = y = 0 and confidence 0, so consumers can tell
  "not observed" from "at the origin".
* **MediaPipe Holistic** — 33 pose + 468 face + 21 + 21 hand landmarks; SignX's MediaPipe pose
  feature is 33×4 (x, y, z, visibility) + 2×21×3 = 258 values.
* **OpenPose BODY_25 + face + hands** — 25 + 70 + 21 + 21 = 137 points (How2Sign's JSON).

``to_signfuse(points, layout)`` maps an OpenPose-137 or Holistic-543 array onto the 75 joints
(confidence kept; a joint with no counterpart gets confidence 0) and ``from_signfuse`` goes
back (for exports). The joint-by-joint tables are ``LAYOUT_TABLES``; docs/data.md prints them.
"""

from __future__ import annotations

import numpy as np

HAND_JOINT_NAMES: tuple[str, ...] = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
HAND_EDGES: tuple[tuple[int, int], ...] = tuple(
    (0 if j == base else j - 1, j) for base in (1, 5, 9, 13, 17) for j in range(base, base + 4)
)

#: MediaPipe Pose landmarks 0–22 (the upper body).
UPPER_BODY_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
)
UPPER_BODY_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
    (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
)
#: Face points as (name, iBUG-68 index).
FACE_POINTS: tuple[tuple[str, int], ...] = (
    ("right_brow", 19), ("left_brow", 24), ("nose_tip", 30), ("chin", 8),
    ("mouth_right_corner", 48), ("mouth_left_corner", 54), ("upper_lip_top", 51),
    ("lower_lip_bottom", 57), ("upper_lip_inner", 62), ("lower_lip_inner", 66),
)
FACE_EDGES: tuple[tuple[int, int], ...] = ((4, 6), (6, 5), (5, 7), (7, 4), (8, 9))

LEFT_HAND = slice(0, 21)
RIGHT_HAND = slice(21, 42)
UPPER_BODY = slice(42, 65)
FACE = slice(65, 75)
NUM_SIGNFUSE = 75

SIGNFUSE_75_NAMES: tuple[str, ...] = (
    tuple(f"left_hand_{n}" for n in HAND_JOINT_NAMES)
    + tuple(f"right_hand_{n}" for n in HAND_JOINT_NAMES)
    + tuple(f"body_{n}" for n in UPPER_BODY_NAMES)
    + tuple(f"face_{n}" for n, _ in FACE_POINTS)
)
SIGNFUSE_75_EDGES: tuple[tuple[int, int], ...] = (
    tuple((a, b) for a, b in HAND_EDGES)
    + tuple((a + 21, b + 21) for a, b in HAND_EDGES)
    + tuple((a + 42, b + 42) for a, b in UPPER_BODY_EDGES)
    + tuple((a + 65, b + 65) for a, b in FACE_EDGES)
)

COCO_WHOLEBODY_RANGES: dict[str, tuple[int, int]] = {
    "body": (0, 17), "feet": (17, 23), "face": (23, 91), "left_hand": (91, 112),
    "right_hand": (112, 133),
}
NUM_COCO_WHOLEBODY = 133
COCO_BODY_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

MEDIAPIPE_POSE, MEDIAPIPE_FACE, MEDIAPIPE_HAND = 33, 468, 21
MEDIAPIPE_HOLISTIC = MEDIAPIPE_POSE + MEDIAPIPE_FACE + 2 * MEDIAPIPE_HAND  # 543
MEDIAPIPE_POSE_FEATURE_WIDTH = MEDIAPIPE_POSE * 4 + 2 * MEDIAPIPE_HAND * 3  # 258


def _signfuse_to_coco() -> np.ndarray:
    face = COCO_WHOLEBODY_RANGES["face"][0]
    body = {"nose": 0, "left_eye": 1, "right_eye": 2, "left_ear": 3, "right_ear": 4,
            "left_shoulder": 5, "right_shoulder": 6, "left_elbow": 7, "right_elbow": 8,
            "left_wrist": 9, "right_wrist": 10,
            # eye corners are iBUG points (36/39 the signer's right eye, 42/45 the left)
            "right_eye_outer": face + 36, "right_eye_inner": face + 39,
            "left_eye_inner": face + 42, "left_eye_outer": face + 45}
    out = np.full(NUM_SIGNFUSE, -1, dtype=np.int64)
    out[LEFT_HAND] = np.arange(91, 112)
    out[RIGHT_HAND] = np.arange(112, 133)
    for i, name in enumerate(UPPER_BODY_NAMES):
        out[42 + i] = body.get(name, -1)  # mouth corners come from the face points instead
    for i, (_, ibug) in enumerate(FACE_POINTS):
        out[65 + i] = face + ibug
    return out


#: For each SignFuse joint, its COCO-WholeBody index (-1: no counterpart, dropped).
SIGNFUSE_TO_COCO133: np.ndarray = _signfuse_to_coco()


def to_coco_wholebody(keypoints: np.ndarray) -> np.ndarray:
    """(T, 75, C) SignFuse keypoints -> (T, 133, C) COCO-WholeBody; unmapped joints are zeros."""
    kp = np.asarray(keypoints)
    if kp.ndim != 3 or kp.shape[1] != NUM_SIGNFUSE:
        raise ValueError(f"expected SignFuse keypoints of shape (T, {NUM_SIGNFUSE}, C), "
                         f"got {kp.shape}")
    out = np.zeros((kp.shape[0], NUM_COCO_WHOLEBODY, kp.shape[2]), dtype=kp.dtype)
    src = np.nonzero(SIGNFUSE_TO_COCO133 >= 0)[0]
    out[:, SIGNFUSE_TO_COCO133[src]] = kp[:, src]
    return out


# --------------------------------------------------------------------------------------------
# Source layouts (OpenPose BODY_25 + face + hands, MediaPipe Holistic) -> SignFuse 75
# --------------------------------------------------------------------------------------------

OPENPOSE = "openpose137"
HOLISTIC = "holistic543"
#: Each layout's components (the names pose-format and OpenPose JSON use) and point counts.
LAYOUT_COMPONENTS: dict[str, tuple[tuple[str, int], ...]] = {
    OPENPOSE: (("pose_keypoints_2d", 25), ("face_keypoints_2d", 70),
               ("hand_left_keypoints_2d", 21), ("hand_right_keypoints_2d", 21)),
    HOLISTIC: (("POSE_LANDMARKS", MEDIAPIPE_POSE), ("FACE_LANDMARKS", MEDIAPIPE_FACE),
               ("LEFT_HAND_LANDMARKS", MEDIAPIPE_HAND), ("RIGHT_HAND_LANDMARKS", MEDIAPIPE_HAND)),
}
OPENPOSE_BODY25: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)
_OP_BODY = {n: i for i, n in enumerate(OPENPOSE_BODY25)}
#: Upper-body joint -> (OpenPose component, point): BODY_25 where it has the joint, the iBUG face
#: (OpenPose face 0-67 is iBUG-68) for eye corners and mouth corners, the hands' MCP joints for
#: MediaPipe's pinky / index / thumb knuckles.
_OPENPOSE_BODY: dict[str, tuple[str, int]] = {
    "nose": ("pose_keypoints_2d", _OP_BODY["Nose"]),
    "left_eye_inner": ("face_keypoints_2d", 42),
    "left_eye": ("pose_keypoints_2d", _OP_BODY["LEye"]),
    "left_eye_outer": ("face_keypoints_2d", 45), "right_eye_inner": ("face_keypoints_2d", 39),
    "right_eye": ("pose_keypoints_2d", _OP_BODY["REye"]),
    "right_eye_outer": ("face_keypoints_2d", 36),
    "left_ear": ("pose_keypoints_2d", _OP_BODY["LEar"]),
    "right_ear": ("pose_keypoints_2d", _OP_BODY["REar"]),
    "mouth_left": ("face_keypoints_2d", 54), "mouth_right": ("face_keypoints_2d", 48),
    "left_shoulder": ("pose_keypoints_2d", _OP_BODY["LShoulder"]),
    "right_shoulder": ("pose_keypoints_2d", _OP_BODY["RShoulder"]),
    "left_elbow": ("pose_keypoints_2d", _OP_BODY["LElbow"]),
    "right_elbow": ("pose_keypoints_2d", _OP_BODY["RElbow"]),
    "left_wrist": ("pose_keypoints_2d", _OP_BODY["LWrist"]),
    "right_wrist": ("pose_keypoints_2d", _OP_BODY["RWrist"]),
    "left_pinky": ("hand_left_keypoints_2d", 17), "right_pinky": ("hand_right_keypoints_2d", 17),
    "left_index": ("hand_left_keypoints_2d", 5), "right_index": ("hand_right_keypoints_2d", 5),
    "left_thumb": ("hand_left_keypoints_2d", 2), "right_thumb": ("hand_right_keypoints_2d", 2),
}
#: The ten face points in MediaPipe Face Mesh numbering (same order as ``FACE_POINTS``).
FACE_MESH_POINTS: tuple[int, ...] = (105, 334, 1, 152, 61, 291, 0, 17, 13, 14)


def _table(layout: str) -> tuple[tuple[str, int], ...]:
    if layout == OPENPOSE:
        hands = ("hand_left_keypoints_2d", "hand_right_keypoints_2d")
        body = tuple(_OPENPOSE_BODY[n] for n in UPPER_BODY_NAMES)
        face = tuple(("face_keypoints_2d", ibug) for _, ibug in FACE_POINTS)
    else:
        hands = ("LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS")
        body = tuple(("POSE_LANDMARKS", i) for i in range(len(UPPER_BODY_NAMES)))
        face = tuple(("FACE_LANDMARKS", i) for i in FACE_MESH_POINTS)
    hand = tuple((c, j) for c in hands for j in range(len(HAND_JOINT_NAMES)))
    return hand + body + face


#: For each layout and each of the 75 joints, the (component, point index) it is read from.
LAYOUT_TABLES: dict[str, tuple[tuple[str, int], ...]] = {n: _table(n) for n in LAYOUT_COMPONENTS}


def layout_size(layout: str) -> int:
    """Number of points of ``layout`` (137 for OpenPose, 543 for Holistic)."""
    return sum(n for _, n in LAYOUT_COMPONENTS[_known(layout)])


def _known(layout: str) -> str:
    if layout not in LAYOUT_COMPONENTS:
        raise ValueError(f"unknown keypoint layout {layout!r}; expected one of "
                         f"{sorted(LAYOUT_COMPONENTS)}")
    return layout


def layout_index(layout: str) -> np.ndarray:
    """(75,) flat index into ``layout``'s stacked points for each SignFuse joint."""
    offsets, start = {}, 0
    for name, n in LAYOUT_COMPONENTS[_known(layout)]:
        offsets[name] = start
        start += n
    return np.array([offsets[c] + i for c, i in LAYOUT_TABLES[layout]], dtype=np.int64)


def to_signfuse(points: np.ndarray, layout: str) -> np.ndarray:
    """(T, P, 3) points of ``layout`` (x, y, confidence) -> (T, 75, 3) float32 SignFuse joints."""
    pts = np.asarray(points)
    size = layout_size(layout)
    if pts.ndim != 3 or pts.shape[1] != size or pts.shape[2] != 3:
        raise ValueError(f"expected {layout} keypoints of shape (T, {size}, 3), got {pts.shape}")
    return np.ascontiguousarray(pts[:, layout_index(layout)], dtype=np.float32)


def from_signfuse(keypoints: np.ndarray, layout: str) -> np.ndarray:
    """(T, 75, 3) SignFuse joints -> (T, P, 3) points of ``layout``; points no joint maps to get
    zeros (confidence 0). Where two joints read one point, the first joint's value is written."""
    kp = np.asarray(keypoints)
    if kp.ndim != 3 or kp.shape[1] != NUM_SIGNFUSE:
        raise ValueError(f"expected SignFuse keypoints of shape (T, {NUM_SIGNFUSE}, C), "
                         f"got {kp.shape}")
    out = np.zeros((kp.shape[0], layout_size(layout), kp.shape[2]), dtype=np.float32)
    index = layout_index(layout)
    first = np.unique(index, return_index=True)[1]
    out[:, index[first]] = kp[:, first]
    return out


def mediapipe_feature(keypoints: np.ndarray) -> np.ndarray:
    """SignX's MediaPipe pose format (T, 258) from (T, 75, 3) joints: 33 pose landmarks as
    (x, y, z, visibility) then both hands as (x, y, z); z is 0 (2-D keypoints), visibility is
    the joint's confidence, and the 10 lower-body landmarks the 75 joints lack are zeros."""
    kp = np.asarray(keypoints, dtype=np.float32)
    t = kp.shape[0]
    pose = np.zeros((t, MEDIAPIPE_POSE, 4), dtype=np.float32)
    pose[:, : len(UPPER_BODY_NAMES), :2] = kp[:, UPPER_BODY, :2]
    pose[:, : len(UPPER_BODY_NAMES), 3] = kp[:, UPPER_BODY, 2]
    hands = np.zeros((t, 2 * MEDIAPIPE_HAND, 3), dtype=np.float32)
    hands[:, :MEDIAPIPE_HAND, :2] = kp[:, LEFT_HAND, :2]
    hands[:, MEDIAPIPE_HAND:, :2] = kp[:, RIGHT_HAND, :2]
    return np.concatenate([pose.reshape(t, -1), hands.reshape(t, -1)], axis=1)
