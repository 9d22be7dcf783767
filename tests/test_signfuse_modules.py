"""SignFuse's building blocks: skeleton graph and partitions, module shapes at the paper's
dimensions, the masked pooling, the alignment target, InfoNCE, the hand-local skeleton input and
the word-presence aid (``baselines.signfuse.{stgcn, visual, cmfa, hta, sla, losses,
word_presence}``). The method itself is tested in ``tests/test_signfuse.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.common.llm import resample_tokens
from baselines.signfuse.cmfa import CMFA
from baselines.signfuse.hta import HTA, masked_adaptive_pool
from baselines.signfuse.losses import info_nce
from baselines.signfuse.sla import SLA
from baselines.signfuse.stgcn import (
    ROOT_JOINT,
    SKELETON_EDGES,
    STGCN,
    adjacency,
    hop_distance,
    normalize_skeleton,
    skeleton_partitions,
    spatial_partitions,
)
from baselines.signfuse.visual import VisualStream
from baselines.signfuse.word_presence import (
    WordPresenceHead,
    word_presence_loss,
    word_presence_targets,
)
from harness.data.keypoints import SIGNFUSE_75_EDGES

# ------------------------------------------------------------------------------ graph


def test_partitions_on_a_known_small_graph():
    # path 0 - 1 - 2 plus 1 - 3, root 0: hops 0, 1, 2, 2; degrees with self loops 2, 4, 2, 2
    parts = spatial_partitions(4, [(0, 1), (1, 2), (1, 3)], root=0)
    deg = np.array([2.0, 4.0, 2.0, 2.0])
    a_tilde = np.eye(4)
    for i, j in [(0, 1), (1, 2), (1, 3)]:
        a_tilde[i, j] = a_tilde[j, i] = 1
    norm = a_tilde / np.sqrt(np.outer(deg, deg))
    expect_self = np.diag(np.diag(norm))
    expect_in = np.zeros((4, 4))
    expect_out = np.zeros((4, 4))
    for child, parent in [(1, 0), (2, 1), (3, 1)]:  # child is farther from the root
        expect_in[child, parent] = norm[child, parent]  # child gathers from its parent
        expect_out[parent, child] = norm[parent, child]
    np.testing.assert_allclose(parts[0], expect_self, rtol=1e-6)
    np.testing.assert_allclose(parts[1], expect_in, rtol=1e-6)
    np.testing.assert_allclose(parts[2], expect_out, rtol=1e-6)
    assert parts[1, 1, 0] == pytest.approx(1 / math.sqrt(8))


def test_equal_distance_neighbours_go_to_the_self_partition():
    # triangle 0-1-2 with root 0: 1 and 2 are both at hop 1 and adjacent
    parts = spatial_partitions(3, [(0, 1), (1, 2), (0, 2)], root=0)
    assert parts[0, 1, 2] == pytest.approx(1 / 3) and parts[0, 2, 1] == pytest.approx(1 / 3)
    assert parts[1, 1, 2] == 0 and parts[2, 1, 2] == 0


def test_skeleton_graph_is_connected_and_symmetric_normalised():
    a = adjacency(75, SKELETON_EDGES)
    hop = hop_distance(a, ROOT_JOINT)
    assert (hop >= 0).all() and hop.max() > 5
    for i, j in SIGNFUSE_75_EDGES:  # every bone of the keypoint layout is an edge
        assert a[i, j] == 1
    parts = skeleton_partitions()
    full = parts.sum(0).astype(np.float64)
    a_t = torch.tensor(a) + torch.eye(75, dtype=torch.float64)
    d = a_t.sum(1).rsqrt()
    reference = (d[:, None] * a_t * d[None, :]).numpy()
    np.testing.assert_allclose(full, reference, atol=1e-6)
    np.testing.assert_allclose(full, full.T, atol=1e-7)
    np.testing.assert_allclose(parts[1], parts[2].T, atol=1e-7)
    # partitions are disjoint and the self partition holds the diagonal
    assert ((parts > 0).sum(0) <= 1).all()
    np.testing.assert_allclose(np.diag(parts[0]), np.diag(reference), atol=1e-6)


def test_bad_graphs_raise():
    with pytest.raises(ValueError, match="not connected"):
        spatial_partitions(3, [(0, 1)], root=0)
    with pytest.raises(ValueError, match="invalid"):
        adjacency(3, [(0, 3)])


# ------------------------------------------------------------------------------ modules


def test_module_shapes_at_paper_dimensions():
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (2, 7, 32, 32, 3), dtype=torch.uint8)
    kp = torch.rand(2, 7, 75, 3)
    mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    vis = VisualStream(512, 64)
    assert vis.backbone.num_features == 2048
    fv, mv = vis(frames, mask)
    assert fv.shape == (2, 4, 512) and mv.sum(1).tolist() == [4, 3]
    fs, ms = STGCN((2, 64, 128, 256, 512))(kp, mask)
    assert fs.shape == (2, 4, 512) and torch.equal(ms, mv)
    f = CMFA(512, 8, 3, 2048)(fv, fs, mv)
    assert f.shape == (2, 4, 512) and f[1, 3].abs().sum() == 0  # padded row zeroed
    h = HTA(512, 64, 8)(f, mv)
    assert h.shape == (2, 64, 512)
    with torch.device("meta"):
        sla = SLA(512, 4096, 32)
        e = sla(torch.empty(2, 64, 512))
    assert e.shape == (2, 32, 4096)


def test_masked_adaptive_pool_matches_torch():
    x = torch.randn(2, 13, 5)
    full = torch.ones(2, 13, dtype=torch.bool)
    for out in (4, 13, 20):
        ref = F.adaptive_avg_pool1d(x.transpose(1, 2), out).transpose(1, 2)
        torch.testing.assert_close(masked_adaptive_pool(x, full, out), ref)
    mask = torch.arange(13)[None] < torch.tensor([[13], [6]])
    got = masked_adaptive_pool(x, mask, 4)
    ref = F.adaptive_avg_pool1d(x[1:, :6].transpose(1, 2), 4).transpose(1, 2)
    torch.testing.assert_close(got[1:], ref)


def test_resample_tokens_is_linear_interpolation():
    e = torch.randn(2, 6, 3)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    out = resample_tokens(e, mask, 7)
    pos = np.linspace(0, 3, 7)
    ref = np.stack([np.interp(pos, np.arange(4), e[1, :4, c].numpy()) for c in range(3)], -1)
    np.testing.assert_allclose(out[1].numpy(), ref, atol=1e-5)
    torch.testing.assert_close(out[0, [0, -1]], e[0, [0, -1]])


def test_info_nce_reference():
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    sim = torch.tensor([[float(F.cosine_similarity(x, y, dim=0)) for y in b] for x in a]) / 0.07
    ref = -0.5 * (torch.log_softmax(sim, 1).diag().mean() + torch.log_softmax(sim, 0).diag().mean())
    torch.testing.assert_close(info_nce(a, b, 0.07), ref, rtol=1e-5, atol=1e-5)


def test_hand_local_skeleton_input():
    torch.manual_seed(0)
    kp = torch.rand(2, 5, 75, 3) + torch.tensor([0.0, 0.0, 0.5])  # every joint detected
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    body = normalize_skeleton(kp, mask)
    local = normalize_skeleton(kp, mask, hand_gain=3.0)
    # independent reference: shoulders are pose joints 11 / 12 (42 + 11, 42 + 12)
    b, t = 1, 2
    ls, rs = kp[b, :3, 53, :2], kp[b, :3, 54, :2]
    mid, width = ((ls + rs) / 2).mean(0), (ls - rs).norm(dim=-1).mean()
    ref_body = (kp[b, t, :, :2] - mid) / width
    torch.testing.assert_close(body[b, t], ref_body)
    for wrist in (0, 21):
        torch.testing.assert_close(local[b, t, wrist], ref_body[wrist])  # wrist: body frame
        fingers = slice(wrist + 1, wrist + 21)
        torch.testing.assert_close(local[b, t, fingers],
                                   (ref_body[fingers] - ref_body[wrist]) * 3.0)
    torch.testing.assert_close(local[:, :, 42:], body[:, :, 42:])  # pose and face unchanged
    assert local[1, 3:].abs().sum() == 0  # padded frames stay zero


# ------------------------------------------------------------------------------ stream_pretrain


def test_word_presence_targets_and_loss_reference():
    ids = torch.tensor([[1, 5, 7, 5, 2, 0], [1, 3, 2, 0, 0, 0]])
    mask = ids != 0
    mask[0, 5] = True  # a valid pad id must still be excluded
    y = word_presence_targets(ids, mask, 9, exclude=(0, 1, 2))
    ref = torch.zeros(2, 9)
    ref[0, [5, 7]] = 1
    ref[1, 3] = 1
    assert torch.equal(y, ref)
    z = torch.randn(2, 9)
    manual = -(ref * torch.log(torch.sigmoid(z)) + (1 - ref) * torch.log(1 - torch.sigmoid(z)))
    torch.testing.assert_close(word_presence_loss(z, ref), manual.sum(1).mean())
    with pytest.raises(ValueError, match="token ids"):
        word_presence_targets(ids, mask, 6)
    with pytest.raises(ValueError, match="differ"):
        word_presence_loss(z, ref[:, :4])


def test_word_presence_head_pools_valid_steps_only():
    head = WordPresenceHead(3, 5)
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    x[0, 2:] = 100.0  # padding must not win the max
    out = head(x, mask)
    ref = head.proj(torch.stack([x[0, :2].max(0).values, x[1].max(0).values]))
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match="no valid"):
        head(x, torch.zeros(2, 4, dtype=torch.bool))
