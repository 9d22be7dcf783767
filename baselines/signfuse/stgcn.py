"""SignFuse's skeletal stream: the 75-joint skeleton graph and the ST-GCN encoder (Sec. 3.3).

Skeleton graph (our construction; the paper says "natural skeleton connectivity (bone
connections)" and gives no edge list)
-----------------------------------------------------------------------------------------------
Joints follow ``harness.data.keypoints`` (SignFuse-75): left hand 0–20, right hand 21–41 (21-point
hand model), upper body 42–64 (MediaPipe Pose 0–22), face 65–74 (ten iBUG-68 points). Edges:

* the bones of ``harness.data.keypoints.SIGNFUSE_75_EDGES``: each hand's 20 bones (wrist → thumb
  CMC/MCP/IP/tip and wrist → MCP/PIP/DIP/tip of every finger), the pose's face/arm/hand bones
  (nose–eyes–ears, mouth corners, shoulders, shoulder–elbow–wrist, wrist–pinky/index/thumb,
  pinky–index), the outer lip ring and the inner lip pair;
* links that join the parts into one connected graph (``LINK_EDGES``, ours): hand wrist ↔ pose
  wrist on each side, pose nose ↔ both shoulders (a neck proxy: the pose has no neck joint),
  pose nose ↔ both pose mouth corners, face nose tip ↔ pose nose, both brows ↔ face nose tip,
  face nose tip ↔ upper lip top, chin ↔ lower lip bottom, upper / lower lip midpoints ↔ the inner
  lip points. 75 joints, 80 undirected edges, one component (tested).

Partitions (K = 3; ST-GCN's *spatial configuration* strategy, Yan et al. 2018): the root is the
pose nose (joint 42, the graph's centre of the head–shoulder "neck"); ``hop`` = shortest-path
distance to the root. The symmetric-normalised adjacency with self-loops
Â = D^-1/2 (A + I) D^-1/2 (D the degree matrix of A + I) is split entry-wise into

* ``self``: entries (i, j) with hop(j) == hop(i) — the diagonal, plus neighbours at the same
  distance from the root (ST-GCN's "root" subset);
* ``inward`` (centripetal): hop(j) < hop(i) — j is closer to the root;
* ``outward`` (centrifugal): hop(j) > hop(i).

So Σ_k Â_k = Â exactly (one normalisation for the whole graph; eq. 4's D̃_k^-1/2 Ã_k D̃_k^-1/2 is
read as that, Ã = A + I with I in the ``self`` partition) and ``outward`` = ``inward``ᵀ because
Â is symmetric. Rows are indexed by the output joint i, columns by the input joint j:
y_i = Σ_k Σ_j Â_k[i, j] x_j W_k.

ST-GCN encoder (Table 1: 4 blocks, channels [2, 64, 128, 256, 512], temporal kernel 9, stride 2
in block 3) — each block (Yan et al.'s unit, without their learnable edge-importance masks, which
the paper's eq. 4 does not have): spatial graph conv (1×1 conv to K·C_out, sum over partitions
with Â_k) → BN → ReLU → temporal conv (9 × 1, stride s, padding 4) → BN, plus a residual (none in
block 1, as ST-GCN; identity when shapes match, else 1×1 conv with stride + BN) → ReLU; dropout
before the temporal BN in training. Input: (x, y) of each joint (C = 2, confidence dropped as in
the paper's s_t ∈ R^{75×2}), signer-normalised first (centre = mid-shoulder, unit = shoulder
width, over the whole clip; hands and face stay in that body frame so the graph sees one
coordinate system), then — ``hand_gain`` > 0 (SignFuse's default 3, ``skeleton_hand_gain``) —
each hand's 20 non-wrist joints replaced by their offset from that hand's wrist (same unit) ×
``hand_gain``, the wrists staying in the body frame; then ST-GCN's ``data_bn`` (BatchNorm over
V·C). Why the hand-local coordinates (ours; C stays 2, the paper's (x, y)): in the body frame a
hand's finger configuration is a ~0.01–0.03 ripple on a ~0.2 wrist trajectory, and every finger
joint mostly repeats the wrist's motion; wrist-relative offsets make the handshape as large as
the trajectory (the recipe of ``baselines.common.encoders.normalize_keypoints``, whose keypoint
stream learns gloss CTC quickly), while no information is lost (wrist + offsets give back every
joint). ``hand_gain`` = 0 is the literal body-frame input. Padded frames are zero before
and after every block (so a batch's padding never leaks into valid frames through the temporal
convs beyond what zero padding would). Output: mean over joints → (B, T', 512),
T' = ⌈T/2⌉.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from harness.data.keypoints import FACE, NUM_SIGNFUSE, SIGNFUSE_75_EDGES, UPPER_BODY

_BODY, _FACE = UPPER_BODY.start, FACE.start
#: Root joint of the partitions: the pose nose.
ROOT_JOINT = _BODY + 0
#: Edges we add to join hands, pose and face into one graph (module docstring).
LINK_EDGES: tuple[tuple[int, int], ...] = (
    (0, _BODY + 15), (21, _BODY + 16),  # hand wrist <-> pose wrist (left, right)
    (_BODY + 0, _BODY + 11), (_BODY + 0, _BODY + 12),  # nose <-> shoulders (neck proxy)
    (_BODY + 0, _BODY + 9), (_BODY + 0, _BODY + 10),  # nose <-> pose mouth corners
    (_FACE + 2, _BODY + 0),  # face nose tip <-> pose nose
    (_FACE + 0, _FACE + 2), (_FACE + 1, _FACE + 2),  # brows <-> nose tip
    (_FACE + 2, _FACE + 6),  # nose tip <-> upper lip top
    (_FACE + 3, _FACE + 7),  # chin <-> lower lip bottom
    (_FACE + 6, _FACE + 8), (_FACE + 7, _FACE + 9),  # outer <-> inner lip midpoints
)
SKELETON_EDGES: tuple[tuple[int, int], ...] = tuple(SIGNFUSE_75_EDGES) + LINK_EDGES
PARTITIONS: tuple[str, ...] = ("self", "inward", "outward")
#: Shoulder joints (left, right) used to normalise the skeleton.
SHOULDERS: tuple[int, int] = (_BODY + 11, _BODY + 12)
#: First joint (the wrist) of each hand, and joints per hand (hands are joints 0–41).
HAND_STARTS: tuple[int, int] = (0, 21)
HAND_JOINTS = 21


def adjacency(num_nodes: int, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    """Symmetric 0/1 adjacency (no self-loops); raises on bad or self edges."""
    a = np.zeros((num_nodes, num_nodes), dtype=np.float64)
    for i, j in edges:
        if not (0 <= i < num_nodes and 0 <= j < num_nodes) or i == j:
            raise ValueError(f"skeleton edge ({i}, {j}) is invalid for {num_nodes} joints")
        a[i, j] = a[j, i] = 1.0
    return a


def hop_distance(a: np.ndarray, root: int) -> np.ndarray:
    """Shortest-path hops from ``root`` (breadth-first); unreachable joints raise."""
    n = len(a)
    hop = np.full(n, -1, dtype=np.int64)
    hop[root] = 0
    queue = deque([root])
    while queue:
        i = queue.popleft()
        for j in np.nonzero(a[i])[0]:
            if hop[j] < 0:
                hop[j] = hop[i] + 1
                queue.append(j)
    if (hop < 0).any():
        raise ValueError(f"skeleton graph is not connected: joints {np.nonzero(hop < 0)[0]} "
                         f"cannot be reached from root {root}")
    return hop


def normalized_adjacency(a: np.ndarray) -> np.ndarray:
    """Â = D^-1/2 (A + I) D^-1/2 with D the degree matrix of A + I."""
    a_tilde = a + np.eye(len(a))
    d = 1.0 / np.sqrt(a_tilde.sum(1))
    return d[:, None] * a_tilde * d[None, :]


def spatial_partitions(num_nodes: int, edges: Sequence[tuple[int, int]], root: int
                       ) -> np.ndarray:
    """(3, V, V) partitions (self, inward, outward) of Â, summing to Â (module docstring)."""
    a = adjacency(num_nodes, edges)
    hop = hop_distance(a, root)
    norm = normalized_adjacency(a)
    hi, hj = hop[:, None], hop[None, :]
    parts = np.stack([norm * (hj == hi), norm * (hj < hi), norm * (hj > hi)])
    return parts.astype(np.float32)


def skeleton_partitions() -> np.ndarray:
    """The SignFuse-75 graph's (3, 75, 75) partitions."""
    return spatial_partitions(NUM_SIGNFUSE, SKELETON_EDGES, ROOT_JOINT)


def normalize_skeleton(kp: torch.Tensor, mask: torch.Tensor, hand_gain: float = 0.0
                       ) -> torch.Tensor:
    """(B, T, 75, ≥2) keypoints → (B, T, 75, 2) signer-normalised (x, y); undetected joints
    (confidence 0) and padded frames are zero. Centre = mean mid-shoulder over the clip's frames
    that see both shoulders, unit = their mean shoulder width (image frame when none).
    ``hand_gain`` > 0: each hand's joints 1–20 become wrist-relative (joint − hand wrist, same
    unit) × ``hand_gain``; the hand wrists stay in the body frame (module docstring)."""
    xy = kp[..., :2]
    conf = kp[..., 2] if kp.shape[-1] > 2 else torch.ones_like(kp[..., 0])
    valid_t = mask.to(kp.dtype)
    seen = (conf > 0).to(kp.dtype) * valid_t[..., None]
    left, right = SHOULDERS
    both = seen[..., left] * seen[..., right]
    n = both.sum(1).clamp_min(1.0)
    mid = ((xy[:, :, left] + xy[:, :, right]) / 2 * both[..., None]).sum(1) / n[:, None]
    width = ((xy[:, :, left] - xy[:, :, right]).norm(dim=-1) * both).sum(1) / n
    has = both.sum(1) > 0
    mid = torch.where(has[:, None], mid, torch.full_like(mid, 0.5))
    width = torch.where(has, width, torch.full_like(width, 0.5)).clamp_min(1e-3)
    body = (xy - mid[:, None, None, :]) / width[:, None, None, None] * seen[..., None]
    if hand_gain <= 0:
        return body
    parts = []
    for start in HAND_STARTS:
        wrist, fingers = body[:, :, start:start + 1], body[:, :, start + 1:start + HAND_JOINTS]
        both_seen = seen[:, :, start + 1:start + HAND_JOINTS, None] * seen[:, :, start:start + 1,
                                                                          None]
        parts += [wrist, (fingers - wrist) * hand_gain * both_seen]
    return torch.cat([*parts, body[:, :, HAND_STARTS[-1] + HAND_JOINTS:]], dim=2)


class STGCNBlock(nn.Module):
    """One ST-GCN unit: partitioned graph conv → BN → ReLU → temporal conv → BN (+ residual)."""

    def __init__(self, c_in: int, c_out: int, partitions: int = 3, kernel: int = 9,
                 stride: int = 1, residual: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"STGCNBlock: temporal kernel must be odd, got {kernel}")
        self.partitions, self.c_out = partitions, c_out
        self.gcn = nn.Conv2d(c_in, c_out * partitions, kernel_size=1)
        self.gcn_bn = nn.BatchNorm2d(c_out)
        self.tcn = nn.Conv2d(c_out, c_out, kernel_size=(kernel, 1), stride=(stride, 1),
                             padding=(kernel // 2, 0))
        self.tcn_bn = nn.BatchNorm2d(c_out)
        self.dropout = nn.Dropout(dropout)
        if not residual:
            self.residual = None
        elif c_in == c_out and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=(stride, 1)), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, T, V), adj (K, V, V) (rows: output joint) → (B, C_out, T', V)."""
        b, _, t, v = x.shape
        y = self.gcn(x).view(b, self.partitions, self.c_out * t, v)
        # y_i = Σ_k Σ_j Â_k[i, j] x_j: one batched (C·T, V) @ (V, V) product per partition
        y = (y @ adj.to(y.dtype).transpose(1, 2)[None]).sum(1).view(b, self.c_out, t, v)
        y = torch.relu(self.gcn_bn(y))
        y = self.tcn_bn(self.dropout(self.tcn(y)))
        if self.residual is not None:
            y = y + self.residual(x)
        return torch.relu(y)


def downsampled_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """Valid positions after a stride-``stride`` conv with 'same' padding: ⌈len / stride⌉."""
    lengths = mask.sum(1)
    out_len = -(-mask.shape[1] // stride)
    n = torch.div(lengths + stride - 1, stride, rounding_mode="floor")
    return torch.arange(out_len, device=mask.device)[None] < n[:, None]


class STGCN(nn.Module):
    """SignFuse's skeletal stream: (B, T, 75, C) keypoints + mask → (B, ⌈T/2⌉, d), mask."""

    def __init__(self, channels: Sequence[int] = (2, 64, 128, 256, 512), kernel: int = 9,
                 strides: Sequence[int] = (1, 1, 2, 1), dropout: float = 0.0,
                 joints: int = NUM_SIGNFUSE, hand_gain: float = 0.0) -> None:
        super().__init__()
        if len(strides) != len(channels) - 1:
            raise ValueError(f"STGCN: {len(channels) - 1} blocks but {len(strides)} strides")
        if joints != NUM_SIGNFUSE:
            raise ValueError(f"STGCN: the skeleton graph has {NUM_SIGNFUSE} joints, got {joints}")
        self.joints, self.in_channels, self.hand_gain = joints, channels[0], float(hand_gain)
        self.register_buffer("A", torch.from_numpy(skeleton_partitions()), persistent=False)
        self.data_bn = nn.BatchNorm1d(joints * channels[0])
        self.blocks = nn.ModuleList(
            STGCNBlock(c_in, c_out, len(PARTITIONS), kernel, s, residual=i > 0, dropout=dropout)
            for i, (c_in, c_out, s) in enumerate(zip(channels[:-1], channels[1:], strides,
                                                     strict=True)))
        self.strides = tuple(strides)
        self.num_features = channels[-1]

    def forward(self, keypoints: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if keypoints.dim() != 4 or keypoints.shape[2] != self.joints or keypoints.shape[3] < 2:
            raise ValueError(f"STGCN: keypoints must be (B, T, {self.joints}, ≥2), "
                             f"got {tuple(keypoints.shape)}")
        if tuple(mask.shape) != tuple(keypoints.shape[:2]):
            raise ValueError(f"STGCN: mask has shape {tuple(mask.shape)}, expected "
                             f"{tuple(keypoints.shape[:2])}")
        x = normalize_skeleton(keypoints.float(), mask, self.hand_gain)  # (B, T, V, 2)
        b, t, v, c = x.shape
        x = self.data_bn(x.permute(0, 2, 3, 1).reshape(b, v * c, t))
        x = x.view(b, v, c, t).permute(0, 2, 3, 1)  # (B, C, T, V)
        x = x * mask[:, None, :, None].to(x.dtype)
        for block, stride in zip(self.blocks, self.strides, strict=True):
            x = block(x, self.A)
            if stride > 1:
                mask = downsampled_mask(mask, stride)
            x = x * mask[:, None, :, None].to(x.dtype)
        return x.mean(-1).transpose(1, 2), mask  # mean over joints → (B, T', C)


__all__ = ["HAND_JOINTS", "HAND_STARTS", "LINK_EDGES", "PARTITIONS", "ROOT_JOINT",
           "SKELETON_EDGES", "STGCN", "STGCNBlock",
           "adjacency", "downsampled_mask", "hop_distance", "normalize_skeleton",
           "normalized_adjacency", "skeleton_partitions", "spatial_partitions"]
