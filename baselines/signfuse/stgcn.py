"""SignFuse's skeletal stream: the 75-joint skeleton graph and the ST-GCN encoder (Sec. 3.3).

* Graph (our construction; the paper gives no edge list): the bones of
  ``harness.data.keypoints.SIGNFUSE_75_EDGES`` plus ``LINK_EDGES`` joining hands, pose and face
  into one connected graph (75 joints, 80 undirected edges).
* Partitions (K = 3, eq. 4; ST-GCN's spatial configuration, Yan et al. 2018): the symmetric-
  normalised Â = D^-1/2 (A + I) D^-1/2 split entry-wise by hop distance to the root (pose nose)
  into ``self`` / ``inward`` / ``outward``, so Σ_k Â_k = Â; y_i = Σ_k Σ_j Â_k[i, j] x_j W_k.
* ``STGCN`` (Table 1: 4 blocks, channels [2, 64, 128, 256, 512], temporal kernel 9, stride 2
  in block 3): ``normalize_skeleton`` (signer-normalised (x, y); ``hand_gain`` > 0: hand joints
  relative to their wrist) → ``data_bn`` → ``STGCNBlock``s → mean over joints → (B, T', d).
  Padded frames are zero before and after every block.

The edge list, the partition rule, the block layout and why the hand-local input: see
``docs/methods/signfuse.md``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from baselines.common.encoders import shoulder_frame
from baselines.signfuse.masks import downsampled_mask
from harness.data.keypoints import FACE, NUM_SIGNFUSE, SIGNFUSE_75_EDGES, UPPER_BODY

_BODY, _FACE = UPPER_BODY.start, FACE.start
#: Root joint of the partitions: the pose nose.
ROOT_JOINT = _BODY + 0
#: Edges we add to join hands, pose and face into one graph (docs/methods/signfuse.md).
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
    """(3, V, V) partitions (self, inward, outward) of Â, summing to Â: entry (i, j) goes to
    ``self`` if hop(j) == hop(i) (the diagonal and equal-distance neighbours), ``inward`` if
    hop(j) < hop(i), ``outward`` if hop(j) > hop(i); rows are the output joint i."""
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
    unit) × ``hand_gain``; the hand wrists stay in the body frame (docs/methods/signfuse.md,
    "hand-local skeleton input")."""
    xy = kp[..., :2]
    conf = kp[..., 2] if kp.shape[-1] > 2 else torch.ones_like(kp[..., 0])
    valid_t = mask.to(kp.dtype)
    seen = (conf > 0).to(kp.dtype) * valid_t[..., None]
    mid, width = shoulder_frame(xy, seen, SHOULDERS)
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

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """x (B, C_in, T, V), adj (K, V, V) (rows: output joint), mask (B, T) → (B, C_out, T', V).

        With ``mask``, padded time steps are zeroed before the temporal conv (after the graph
        conv's bias, BN shift and ReLU they are not zero), so padding never reaches a valid
        output: a sample's features do not depend on the batch it is padded in."""
        b, _, t, v = x.shape
        y = self.gcn(x).view(b, self.partitions, self.c_out * t, v)
        # y_i = Σ_k Σ_j Â_k[i, j] x_j: one batched (C·T, V) @ (V, V) product per partition
        y = (y @ adj.to(y.dtype).transpose(1, 2)[None]).sum(1).view(b, self.c_out, t, v)
        y = torch.relu(self.gcn_bn(y))
        if mask is not None:
            y = y * mask[:, None, :, None].to(y.dtype)
        y = self.tcn_bn(self.dropout(self.tcn(y)))
        if self.residual is not None:
            y = y + self.residual(x)
        return torch.relu(y)


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
            x = block(x, self.A, mask)
            if stride > 1:
                mask = downsampled_mask(mask, stride)
            x = x * mask[:, None, :, None].to(x.dtype)
        return x.mean(-1).transpose(1, 2), mask  # mean over joints → (B, T', C)


class StridedSTGCN(STGCN):
    """``STGCN`` that reads every ``frame_stride``-th frame, as ``SignFuse`` feeds it: the
    ``keypoint`` stand-in trains through this view (same parameters and names as ``STGCN``, so
    its weights load strictly into the method's ST-GCN)."""

    def __init__(self, frame_stride: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frame_stride = int(frame_stride)

    def forward(self, keypoints: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.frame_stride
        return super().forward(keypoints[:, ::k], mask[:, ::k])


__all__ = ["HAND_JOINTS", "HAND_STARTS", "LINK_EDGES", "PARTITIONS", "ROOT_JOINT",
           "SKELETON_EDGES", "STGCN", "STGCNBlock", "StridedSTGCN",
           "adjacency", "hop_distance", "normalize_skeleton",
           "normalized_adjacency", "skeleton_partitions", "spatial_partitions"]
