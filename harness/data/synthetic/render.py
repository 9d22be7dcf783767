"""RGB frames and mouth crops rendered from the hidden state (numpy only).

A frame is a signer-specific two-tone background, a clothed torso and a skin-coloured head
(static per video), arms as sleeves (three parallel point chains along shoulder–elbow–wrist),
and the hand and face joints as coloured blobs: every finger has its own hue (brighter towards
the tip), so handshape and hand position are visible in the pixels, as a real video would show
them. Points are splatted as 4×4-pixel Gaussian footprints with one ``np.bincount`` per colour
channel (no per-point Python loop, no blur pass) and composited with an alpha proportional to
the splat weight. Signer lighting multiplies the result by a gain and a linear gradient.

Mouth crops are drawn directly at crop resolution (``lips_size``: ``resolution // 4``, 16×16
at 64×64, 56×56 at 224) from the mouth state: skin, lip ellipse whose height and width follow
the mouthing, and a dark mouth cavity when open, so the crop content depends on what the signer
mouths. Everything is vectorised over frames (~20 ms for 100 frames at 64×64 on one core).
"""

from __future__ import annotations

import numpy as np

from harness.data.keypoints import FACE, HAND_EDGES, LEFT_HAND, RIGHT_HAND, UPPER_BODY
from harness.data.synthetic.state import HIPS, HiddenState, Signer

_FINGER_HUES = np.array([[1.0, 0.2, 0.2], [1.0, 0.85, 0.1], [0.2, 0.9, 0.2], [0.2, 0.6, 1.0],
                         [0.8, 0.3, 1.0]])


def _palette() -> tuple[np.ndarray, np.ndarray]:
    """Colours of the blob points: hands (joints + bone midpoints) and the face points."""
    hand = np.zeros((21, 3))
    hand[0] = (0.95, 0.95, 0.95)
    for f in range(5):
        for k in range(4):
            hand[1 + 4 * f + k] = _FINGER_HUES[f] * (0.55 + 0.15 * k)
    bones = np.array([(hand[a] + hand[b]) / 2 for a, b in HAND_EDGES])
    face = np.array([[0.25, 0.15, 0.1]] * 2 + [[0.6, 0.4, 0.3]] * 2 + [[0.7, 0.1, 0.15]] * 6)
    return np.concatenate([hand, bones]), face


_HAND_COLOURS, _FACE_COLOURS = _palette()
_EDGE_A = np.array([a for a, _ in HAND_EDGES])
_EDGE_B = np.array([b for _, b in HAND_EDGES])


def lips_size(resolution: int) -> int:
    """Side of the square mouth crop for a frame resolution."""
    return max(8, resolution // 4)


def _grid(res: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(res, dtype=np.float32) + 0.5) / res
    return c[None, :], c[:, None]  # x (1, W), y (H, 1)


def _lighting(signer: Signer, res: int) -> np.ndarray:
    x, y = _grid(res)
    g = signer.light_gain * (1 + signer.light_gradient[0] * (x - 0.5)
                             + signer.light_gradient[1] * (y - 0.5))
    return g[..., None].astype(np.float32)


def _static_layer(joints: np.ndarray, signer: Signer, res: int) -> np.ndarray:
    """(res, res, 3) background + torso + head (the body does not move in this corpus)."""
    x, y = _grid(res)
    bg = signer.background[0] * (1 - y[..., None]) + signer.background[1] * y[..., None]
    img = np.broadcast_to(bg, (res, res, 3)).astype(np.float32)
    body = joints[0, UPPER_BODY]
    hips = signer.to_image(HIPS)
    quad = np.array([body[12], body[11], hips[1], hips[0]])  # clockwise in image space
    inside = np.ones((res, res), dtype=bool)
    for k in range(4):
        (ax, ay), (bx, by) = quad[k], quad[(k + 1) % 4]
        inside &= (bx - ax) * (y - ay) - (by - ay) * (x - ax) >= 0
    img[inside] = signer.cloth
    centre = signer.to_image(np.array([0.0, -0.93]))
    rx, ry = signer.scale * 0.2, signer.scale * 0.27
    head = ((x - centre[0]) / rx) ** 2 + ((y - centre[1]) / ry) ** 2
    img = np.where((head <= 1)[..., None], signer.skin.astype(np.float32), img)
    neck = (np.abs(x - centre[0]) < rx * 0.45) & (y > centre[1]) & (y < body[11, 1])
    img[neck] = signer.skin * 0.85
    return img


_OFFSETS = np.arange(-1, 3)


def _splat(points: np.ndarray, weights: np.ndarray, res: int, sigma: float) -> np.ndarray:
    """Splat (T, P, 2) pixel-coordinate points as 4×4-pixel Gaussian footprints (std ``sigma``
    pixels) with (C, P) weights per channel -> (C, T, res, res) float32 accumulators.

    Points are accumulated on a canvas with a 3-pixel margin (points outside the image are
    clamped into the margin, which is cropped), so no per-entry bounds masks are needed."""
    t = points.shape[0]
    pad = 3
    side = res + 2 * pad
    x0 = np.clip(np.floor(points[..., 0]), -2, res).astype(np.int64)
    y0 = np.clip(np.floor(points[..., 1]), -2, res).astype(np.int64)
    gx = np.exp(-((_OFFSETS - (points[..., 0] - x0)[..., None]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((_OFFSETS - (points[..., 1] - y0)[..., None]) ** 2) / (2 * sigma**2))
    xi = x0[..., None] + _OFFSETS + pad  # (T, P, 4), within [0, side)
    yi = y0[..., None] + _OFFSETS + pad
    idx = ((np.arange(t)[:, None, None, None] * side + yi[..., :, None]) * side
           + xi[..., None, :]).ravel()
    w = gy[..., :, None] * gx[..., None, :]  # (T, P, 4, 4)
    size = t * side * side
    acc = np.empty((len(weights), t, side, side), dtype=np.float32)
    for ch, cw in enumerate(weights):
        acc[ch] = np.bincount(idx, weights=(w * cw[None, :, None, None]).ravel(),
                              minlength=size).reshape(t, side, side)
    return acc[:, :, pad:pad + res, pad:pad + res]


def _composite(frames: np.ndarray, acc: np.ndarray, colour: np.ndarray | None,
               gain: float) -> None:
    """Alpha-composite splat accumulators onto channel-first frames (3, T, H, W) in place."""
    weight = acc[0]
    alpha = np.minimum(weight * gain, 1.0)
    frames *= (1.0 - alpha)[None]
    if colour is None:  # per-point colours: weighted mean colour = acc[1:] / weight
        frames += acc[1:] * (alpha / np.maximum(weight, 1e-6))[None]
    else:
        frames += colour.reshape(3, 1, 1, 1) * alpha[None]


def _draw_arms(frames: np.ndarray, joints: np.ndarray, signer: Signer) -> None:
    """Arms as three parallel point chains (sleeves), splatted and blurred."""
    res = frames.shape[2]
    body = joints[:, UPPER_BODY] * res - 0.5
    half = signer.scale * 0.09 * res  # half the sleeve width in pixels
    n = max(6, res // 5)
    u = np.linspace(0, 1, n)[None, :, None]
    chains = []
    for a, b in ((11, 13), (13, 15), (12, 14), (14, 16)):
        pa, pb = body[:, a][:, None], body[:, b][:, None]
        d = pb - pa
        normal = np.stack([-d[..., 1], d[..., 0]], -1) / np.maximum(
            np.linalg.norm(d, axis=-1, keepdims=True), 1e-6)
        line = pa + u * d
        chains += [line + normal * off for off in np.linspace(-half, half, 3)]
    pts = np.concatenate(chains, axis=1)
    acc = _splat(pts, np.ones((1, pts.shape[1]), np.float32), res, sigma=0.7)
    _composite(frames, acc, (signer.cloth * 0.8 + 0.1).astype(np.float32), gain=1.5)


def _draw_blobs(frames: np.ndarray, joints: np.ndarray) -> None:
    res = frames.shape[2]
    pts, cols = [], []
    for hand in (joints[:, LEFT_HAND], joints[:, RIGHT_HAND]):
        pts += [hand, (hand[:, _EDGE_A] + hand[:, _EDGE_B]) / 2]
        cols.append(_HAND_COLOURS)
    pts.append(joints[:, FACE])
    cols.append(_FACE_COLOURS)
    p = np.concatenate(pts, axis=1) * res - 0.5  # (T, P, 2) pixel coordinates
    c = np.concatenate(cols).astype(np.float32)  # (P, 3)
    weights = np.concatenate([np.ones((1, len(c)), np.float32), c.T])
    _composite(frames, _splat(p, weights, res, sigma=0.9), None, gain=1.5)


def render_frames(joints: np.ndarray, state: HiddenState, resolution: int) -> np.ndarray:
    """(T, res, res, 3) uint8 frames from the noiseless image-space joints (T, 75, 2)."""
    signer = state.signer
    static = np.moveaxis(_static_layer(joints, signer, resolution), -1, 0)  # (3, H, W)
    # channel-first (3, T, H, W) while compositing: every pass runs over contiguous planes
    frames = np.repeat(static[:, None], len(joints), axis=1)
    _draw_arms(frames, joints, signer)
    _draw_blobs(frames, joints)
    frames *= _lighting(signer, resolution)[..., 0]
    out = np.clip(frames * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(out, 0, -1))


def render_lips(state: HiddenState, size: int) -> np.ndarray:
    """(T, size, size, 3) uint8 mouth crops drawn from the mouth state."""
    signer = state.signer
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    u, v = c[None, None, :], c[None, :, None]
    open_ = state.mouth[:, 0].astype(np.float32)[:, None, None]
    width = state.mouth[:, 1].astype(np.float32)[:, None, None]
    a = 0.5 + 0.4 * width
    b = 0.2 + 0.6 * open_
    soft = size / 4
    outer = np.clip((1 - np.sqrt((u / a) ** 2 + (v / b) ** 2)) * soft, 0, 1)[..., None]
    bi = np.maximum(b - 0.12, 1e-3)
    inner = np.clip((1 - np.sqrt((u / (a * 0.8)) ** 2 + (v / bi) ** 2)) * soft, 0, 1)
    inner = (inner * np.clip(open_ * 4 - 0.3, 0, 1))[..., None]
    img = np.broadcast_to(signer.skin.astype(np.float32), (*outer.shape[:3], 3)).copy()
    img = img * (1 - outer) + outer * np.array([0.65, 0.25, 0.28], dtype=np.float32)
    img = img * (1 - inner) + inner * np.array([0.12, 0.04, 0.05], dtype=np.float32)
    img *= signer.light_gain
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
