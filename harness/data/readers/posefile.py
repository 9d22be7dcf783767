"""``.pose`` files (the ``pose-format`` library) read into and written from SignBench's 75 joints.

:func:`read_pose_file` reads one file with ``pose_format.Pose.read``, recognises its layout from
the header's component names (OpenPose BODY_25 + face + hands, or MediaPipe Holistic; extra
components such as ``POSE_WORLD_LANDMARKS`` are ignored), takes the first person, divides x / y by
the header's width / height and maps the points onto the 75 joints
(``harness.data.keypoints.to_signfuse``; confidence kept, masked points get confidence 0).
A damaged or truncated file, an unknown layout or a file without frames raises
``DatasetFormatError`` naming the file. :func:`write_pose_file` is the inverse (exports, tests).
Mapping tables: docs/data.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data.keypoints import HOLISTIC, LAYOUT_COMPONENTS, OPENPOSE, from_signfuse, to_signfuse
from harness.data.readers.common import DatasetFormatError, DatasetMissingError

#: Point names written for each component (pose-format headers name every point).
_HAND = ("WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP", "INDEX_FINGER_MCP",
         "INDEX_FINGER_PIP", "INDEX_FINGER_DIP", "INDEX_FINGER_TIP", "MIDDLE_FINGER_MCP",
         "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP", "MIDDLE_FINGER_TIP", "RING_FINGER_MCP",
         "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP", "PINKY_MCP", "PINKY_PIP",
         "PINKY_DIP", "PINKY_TIP")
_POSE33 = ("NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE",
           "RIGHT_EYE_OUTER", "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT",
           "LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW", "LEFT_WRIST",
           "RIGHT_WRIST", "LEFT_PINKY", "RIGHT_PINKY", "LEFT_INDEX", "RIGHT_INDEX", "LEFT_THUMB",
           "RIGHT_THUMB", "LEFT_HIP", "RIGHT_HIP", "LEFT_KNEE", "RIGHT_KNEE", "LEFT_ANKLE",
           "RIGHT_ANKLE", "LEFT_HEEL", "RIGHT_HEEL", "LEFT_FOOT_INDEX", "RIGHT_FOOT_INDEX")


def detect_layout(component_sizes: dict[str, int], path: Path) -> str:
    """The layout whose components (names and point counts) a header holds."""
    for layout, components in LAYOUT_COMPONENTS.items():
        if all(component_sizes.get(name) == n for name, n in components):
            return layout
    expected = "; ".join(f"{layout}: " + ", ".join(f"{c} ({n})" for c, n in comps)
                         for layout, comps in LAYOUT_COMPONENTS.items())
    found = ", ".join(f"{c} ({n})" for c, n in component_sizes.items())
    raise DatasetFormatError(f"pose: {path}: unknown keypoint layout (components {found}); "
                             f"expected {expected}")


def read_pose_file(path: Path) -> np.ndarray:
    """(T, 75, 3) float32 keypoints (x, y in [0, 1], confidence) of one ``.pose`` file."""
    from pose_format import Pose

    try:
        buffer = Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetMissingError(f"pose: pose file {path} is missing") from None
    try:
        pose = Pose.read(buffer)
        data = np.ma.getdata(pose.body.data)
        mask = np.ma.getmaskarray(pose.body.data)
        confidence = np.asarray(pose.body.confidence, dtype=np.float32)
    except Exception as exc:  # pose-format raises struct / numpy / index errors on bad bytes
        raise DatasetFormatError(f"pose: cannot read {path} as a .pose file (damaged or "
                                 f"truncated?): {type(exc).__name__}: {exc}") from None
    header = pose.header
    sizes = {c.name: len(c.points) for c in header.components}
    layout = detect_layout(sizes, path)
    frames = data.shape[0]
    if frames == 0 or data.shape[1] == 0:
        raise DatasetFormatError(f"pose: {path} holds {frames} frame(s) and {data.shape[1]} "
                                 f"person(s); expected at least one of each")
    expected_points = sum(sizes.values())
    if data.shape[2] != expected_points or confidence.shape[:3] != data.shape[:3]:
        raise DatasetFormatError(f"pose: {path}: body holds {data.shape[2]} points, the header "
                                 f"{expected_points} (damaged file?)")
    keep = []
    start = 0
    for c in header.components:
        keep.append(np.arange(start, start + len(c.points)))
        start += len(c.points)
    order = {c.name: k for k, c in enumerate(header.components)}
    index = np.concatenate([keep[order[name]] for name, _ in LAYOUT_COMPONENTS[layout]])
    xy = data[:, 0, index, :2].astype(np.float32)
    conf = np.where(mask[:, 0, index].any(axis=-1), 0.0, confidence[:, 0, index])
    width, height = float(header.dimensions.width), float(header.dimensions.height)
    if width > 0 and height > 0:
        xy = xy / np.array([width, height], dtype=np.float32)
    points = np.concatenate([xy, conf[..., None].astype(np.float32)], axis=-1)
    if not np.isfinite(points).all():
        raise DatasetFormatError(f"pose: {path} holds NaN or infinite coordinates")
    return to_signfuse(points, layout)


def _components(layout: str):
    from pose_format.pose_header import PoseHeaderComponent

    if layout == OPENPOSE:
        from pose_format.utils.openpose import OpenPose_Components

        return list(OpenPose_Components)
    if layout != HOLISTIC:
        raise ValueError(f"unknown .pose layout {layout!r}; expected {OPENPOSE} or {HOLISTIC}")
    names = {"POSE_LANDMARKS": _POSE33, "FACE_LANDMARKS": tuple(str(i) for i in range(468)),
             "LEFT_HAND_LANDMARKS": _HAND, "RIGHT_HAND_LANDMARKS": _HAND}
    return [PoseHeaderComponent(name=name, points=list(names[name]), limbs=[], colors=[],
                                point_format="XYZC")
            for name, _ in LAYOUT_COMPONENTS[HOLISTIC]]


def write_pose_file(path: Path, keypoints: np.ndarray, layout: str = OPENPOSE,
                    size: tuple[int, int] = (256, 256), fps: float = 25.0) -> Path:
    """Write (T, 75, 3) keypoints as a ``.pose`` file of ``layout`` (pixels of ``size``)."""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderDimensions

    components = _components(layout)
    points = from_signfuse(keypoints, layout)
    dims = len(components[0].format) - 1
    data = np.zeros((len(points), 1, points.shape[1], dims), dtype=np.float32)
    data[..., 0] = points[:, None, :, 0] * size[0]
    data[..., 1] = points[:, None, :, 1] * size[1]
    confidence = points[:, None, :, 2].astype(np.float32)
    header = PoseHeader(version=0.2, dimensions=PoseHeaderDimensions(size[0], size[1], 0),
                        components=components)
    body = NumPyPoseBody(fps=fps, data=np.ma.masked_array(data, mask=np.zeros_like(data, bool)),
                         confidence=confidence)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        Pose(header, body).write(handle)
    tmp.replace(path)
    return path
