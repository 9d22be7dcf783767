"""The hidden state of a synthetic video and the SignFuse-75 keypoints it implies.

Every stream of a synthetic sample (keypoints, RGB frames, mouth crops, the five pose formats)
is computed from one ``HiddenState``: per-frame canonical wrist positions, hand parameters
(five finger curls + rotation per hand) and mouth (openness, width), plus the signer. That is
what makes the streams consistent, and corruption of one stream independent of the others.

Timeline of a sentence: a rest hold (2–5 frames), then for every gloss a transition (2–4
frames, labelled *rest*: movement epenthesis) followed by the sign (template length × signer
speed × instance jitter 0.9–1.1, labelled *sign*) or a fingerspelled name (``LETTER_FRAMES`` ×
speed per letter, labelled *fingerspelling*), then a transition back and a final rest hold.
Instances vary: trajectory amplitude ×U(0.9, 1.1), offset N(0, 0.03), handshape N(0, 0.03).

Signers (``num_signers`` of them, drawn from the corpus seed): scale 0.27–0.33 of the image per
shoulder width, offset ±0.03, speed 0.8–1.25, background colours, lighting, skin and clothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.keypoints import FACE, LEFT_HAND, RIGHT_HAND, UPPER_BODY
from harness.data.sample import FRAME_FINGERSPELLING, FRAME_REST, FRAME_SIGN
from harness.data.synthetic.language import FINGERSPELL_PREFIX, Sentence
from harness.data.synthetic.signs import (
    LETTER_FRAMES,
    NEUTRAL_MOUTH,
    REST_HAND,
    REST_LEFT,
    REST_RIGHT,
    letter_template,
    sign_template,
)

BODY_CENTRE = np.array([0.5, 0.42])  # image position of the shoulder midpoint (before offset)
HIPS = np.array([[-0.36, 1.65], [0.36, 1.65]])  # canonical right, left hip (rendering only)
ARM = 0.62  # canonical upper-arm and forearm length


@dataclass(frozen=True)
class Signer:
    """Per-signer appearance and motion style."""

    id: int
    scale: float
    offset: np.ndarray  # (2,)
    speed: float
    background: np.ndarray  # (2, 3) top and bottom colour, 0..1
    light_gain: float
    light_gradient: np.ndarray  # (2,) brightness slope along x, y
    skin: np.ndarray  # (3,)
    cloth: np.ndarray  # (3,)

    @property
    def name(self) -> str:
        return f"Signer{self.id + 1:02d}"

    def to_image(self, canonical: np.ndarray) -> np.ndarray:
        """Canonical body coordinates (..., 2) -> normalised image coordinates."""
        return BODY_CENTRE + self.offset + self.scale * canonical


def make_signer(seed: int, signer_id: int) -> Signer:
    rng = np.random.default_rng([seed, 7919, signer_id])
    return Signer(
        id=signer_id, scale=float(rng.uniform(0.27, 0.33)), offset=rng.uniform(-0.03, 0.03, 2),
        speed=float(rng.uniform(0.8, 1.25)), background=rng.uniform(0.15, 0.85, (2, 3)),
        light_gain=float(rng.uniform(0.8, 1.15)), light_gradient=rng.uniform(-0.25, 0.25, 2),
        skin=np.array([0.85, 0.65, 0.5]) * rng.uniform(0.6, 1.1),
        cloth=rng.uniform(0.0, 0.6, 3),
    )


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, end)`` carry ``label`` for ``token`` (a gloss or ``fs-NAME``)."""

    start: int
    end: int
    label: int
    token: str


@dataclass
class HiddenState:
    """Per-frame canonical state of one video."""

    signer: Signer
    right: np.ndarray  # (T, 2) right wrist
    left: np.ndarray  # (T, 2)
    right_hand: np.ndarray  # (T, 6) curls + rotation
    left_hand: np.ndarray  # (T, 6)
    mouth: np.ndarray  # (T, 2) openness, width
    labels: np.ndarray  # (T,) int8
    segments: list[Segment]

    @property
    def num_frames(self) -> int:
        return len(self.labels)


class _Track:
    """Accumulates per-frame parameter blocks."""

    KEYS = ("right", "left", "right_hand", "left_hand", "mouth")

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in self.KEYS}
        self.labels: list[np.ndarray] = []
        self.length = 0

    def add(self, block: dict[str, np.ndarray], label: int) -> None:
        n = len(block["right"])
        for k in self.KEYS:
            self.parts[k].append(np.asarray(block[k], dtype=np.float64).reshape(n, -1))
        self.labels.append(np.full(n, label, dtype=np.int8))
        self.length += n

    def last(self) -> dict[str, np.ndarray]:
        return {k: self.parts[k][-1][-1] for k in self.KEYS}

    def transition(self, target: dict[str, np.ndarray], n: int) -> None:
        a = self.last()
        f = (np.arange(1, n + 1) / (n + 1))[:, None]
        f = f * f * (3 - 2 * f)
        self.add({k: a[k] * (1 - f) + np.asarray(target[k]) * f for k in self.KEYS}, FRAME_REST)


def _hold(values: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {k: np.tile(np.asarray(v, dtype=np.float64), (n, 1)) for k, v in values.items()}


_REST = {"right": REST_RIGHT, "left": REST_LEFT, "right_hand": REST_HAND,
         "left_hand": REST_HAND, "mouth": NEUTRAL_MOUTH}


def build_state(sentence: Sentence, signer: Signer, rng: np.random.Generator) -> HiddenState:
    """The hidden state of ``signer`` signing ``sentence``; random choices come from ``rng``."""
    track = _Track()
    track.add(_hold(_REST, int(rng.integers(2, 6))), FRAME_REST)
    segments: list[Segment] = []

    def n_transition() -> int:
        return max(1, round(rng.integers(2, 5) * signer.speed))

    for token in sentence.glosses:
        if token.startswith(FINGERSPELL_PREFIX):
            letters = [letter_template(c) for c in token[len(FINGERSPELL_PREFIX):]]
            first = letters[0]
            track.transition({"right": first.position, "left": REST_LEFT, "right_hand": first.hand,
                              "left_hand": REST_HAND, "mouth": first.mouth}, n_transition())
            start = track.length
            per = max(2, round(LETTER_FRAMES * signer.speed))
            for lt in letters:
                block = _hold({"right": lt.position, "left": REST_LEFT, "right_hand": lt.hand,
                               "left_hand": REST_HAND, "mouth": lt.mouth}, per)
                block["right"] = block["right"] + rng.normal(0, 0.01, (per, 2))
                track.add(block, FRAME_FINGERSPELLING)
            segments.append(Segment(start, track.length, FRAME_FINGERSPELLING, token))
            continue
        tpl = sign_template(token)
        n = max(4, round(tpl.length * signer.speed * rng.uniform(0.9, 1.1)))
        curves = tpl.resample(n)
        block = {"mouth": curves["mouth"]}
        for side in ("right", "left"):
            c = curves[side]
            if side == "left" and not tpl.two_handed:
                block[side] = c
                continue
            centre = c.mean(axis=0)
            block[side] = centre + (c - centre) * rng.uniform(0.9, 1.1) + rng.normal(0, 0.03, 2)
        block["right_hand"] = np.tile(tpl.right_hand + rng.normal(0, 0.03, 6), (n, 1))
        block["left_hand"] = np.tile(tpl.left_hand + rng.normal(0, 0.03, 6), (n, 1))
        track.transition({k: v[0] for k, v in block.items()}, n_transition())
        start = track.length
        track.add(block, FRAME_SIGN)
        segments.append(Segment(start, track.length, FRAME_SIGN, token))
    track.transition(_REST, n_transition())
    track.add(_hold(_REST, int(rng.integers(2, 6))), FRAME_REST)
    parts = {k: np.concatenate(v) for k, v in track.parts.items()}
    return HiddenState(signer=signer, labels=np.concatenate(track.labels), segments=segments,
                       **parts)


# ------------------------------------------------------------------------------------ geometry

# Canonical hand (right hand, palm to the camera, fingers up): MCP bases relative to the wrist,
# base directions (radians from "up", positive towards +x) and segment lengths.
_MCP = np.array([[0.07, -0.07], [0.07, -0.24], [0.02, -0.26], [-0.03, -0.24], [-0.08, -0.21]])
_DIR = np.array([0.9, 0.15, 0.0, -0.12, -0.25])
_SEG = np.array([[0.09, 0.08, 0.07], [0.10, 0.07, 0.06], [0.11, 0.08, 0.06],
                 [0.10, 0.07, 0.06], [0.08, 0.06, 0.05]])


def hand_offsets(params: np.ndarray, mirror: bool) -> np.ndarray:
    """(T, 6) curls + rotation -> (T, 21, 2) canonical joint offsets from the wrist.

    Curling a finger bends it (each segment turns by 0.7·curl more) and foreshortens it (the
    finger folds towards the palm, out of the image plane)."""
    t = len(params)
    curls, rot = params[:, :5], params[:, 5]
    out = np.zeros((t, 21, 2))
    side = -1.0 if mirror else 1.0
    for f in range(5):
        c = curls[:, f]
        pos = np.tile(_MCP[f], (t, 1))
        out[:, 1 + 4 * f] = pos
        for s in range(3):
            ang = _DIR[f] + c * 0.7 * (s + 1) * (1 if f == 0 else -1)
            length = _SEG[f, s] * (1 - 0.75 * c)
            pos = pos + length[:, None] * np.stack([np.sin(ang), -np.cos(ang)], axis=1)
            out[:, 2 + 4 * f + s] = pos
    cos, sin = np.cos(rot)[:, None], np.sin(rot)[:, None]
    x, y = out[..., 0], out[..., 1]
    out = np.stack([x * cos - y * sin, x * sin + y * cos], axis=-1)
    out[..., 0] *= side
    return out


_BODY_FIXED = {  # canonical upper-body landmarks that do not depend on the hands
    0: (0.0, -0.95), 1: (0.06, -1.05), 2: (0.09, -1.06), 3: (0.13, -1.05), 4: (-0.06, -1.05),
    5: (-0.09, -1.06), 6: (-0.13, -1.05), 7: (0.22, -1.0), 8: (-0.22, -1.0), 11: (0.5, 0.0),
    12: (-0.5, 0.0),
}


def _elbow(shoulder: np.ndarray, wrist: np.ndarray, outward: float) -> np.ndarray:
    d = wrist - shoulder
    dist = np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    bend = np.sqrt(np.maximum(ARM**2 - (dist / 2) ** 2, 0.0))
    perp = np.stack([-d[:, 1], d[:, 0]], axis=1) / dist
    flip = np.sign((perp * [outward, 1.0]).sum(axis=1, keepdims=True))
    flip[flip == 0] = 1.0
    return shoulder + d / 2 + perp * flip * bend


def canonical_joints(state: HiddenState) -> np.ndarray:
    """(T, 75, 2) SignFuse joints in canonical body coordinates."""
    t = state.num_frames
    j = np.zeros((t, 75, 2))
    j[:, RIGHT_HAND] = state.right[:, None] + hand_offsets(state.right_hand, mirror=False)
    j[:, LEFT_HAND] = state.left[:, None] + hand_offsets(state.left_hand, mirror=True)
    body = np.zeros((t, 23, 2))
    for i, xy in _BODY_FIXED.items():
        body[:, i] = xy
    open_, width = state.mouth[:, 0], state.mouth[:, 1]
    half = 0.05 + 0.04 * width
    body[:, 9] = np.stack([half, np.full(t, -0.8)], axis=1)  # mouth_left (signer's left = +x)
    body[:, 10] = np.stack([-half, np.full(t, -0.8)], axis=1)
    body[:, 15], body[:, 16] = state.left, state.right
    body[:, 13] = _elbow(body[:, 11], state.left, outward=1.0)
    body[:, 14] = _elbow(body[:, 12], state.right, outward=-1.0)
    lh, rh = j[:, LEFT_HAND], j[:, RIGHT_HAND]
    body[:, 17], body[:, 18] = lh[:, 17], rh[:, 17]
    body[:, 19], body[:, 20] = lh[:, 5], rh[:, 5]
    body[:, 21], body[:, 22] = lh[:, 4], rh[:, 4]
    j[:, UPPER_BODY] = body
    zeros = np.zeros(t)
    face = np.stack([
        np.stack([zeros - 0.1, zeros - 1.13], 1), np.stack([zeros + 0.1, zeros - 1.13], 1),
        np.stack([zeros, zeros - 0.92], 1), np.stack([zeros, -0.64 + 0.08 * open_], 1),
        body[:, 10], body[:, 9],
        np.stack([zeros, zeros - 0.835], 1), np.stack([zeros, -0.775 + 0.07 * open_], 1),
        np.stack([zeros, zeros - 0.81], 1), np.stack([zeros, -0.8 + 0.06 * open_], 1),
    ], axis=1)
    j[:, FACE] = face
    return j


def clean_keypoints(state: HiddenState, rng: np.random.Generator, noise: float) -> np.ndarray:
    """(T, 75, 3) float32 image-space keypoints: hidden state + observation noise ``noise``
    (std in image units), confidence 0.85–1."""
    xy = state.signer.to_image(canonical_joints(state))
    if noise > 0:
        xy = xy + rng.normal(0.0, noise, xy.shape)
    conf = 1.0 - np.abs(rng.normal(0.0, 0.05, xy.shape[:2])).clip(0, 0.15)
    return np.concatenate([xy, conf[..., None]], axis=-1).astype(np.float32)
