"""Linear probes: how well a part's frozen features predict held-out targets.

The independent check that a vision / keypoint stand-in learnt its objective (the tests and the
numbers in docs/pretrain.md): features of the training split's frames → targets by ridge
regression (closed form, features z-scored on the training rows, ``alpha`` × N on the diagonal),
scored on the dev split's frames as masked MSE and R² (1 − SSE / SST with the dev mean, over the
seen entries). A randomly initialised part with the same probe is the baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from harness.pretrain.parts import pixels, read_features, readout


def ridge_fit(x: torch.Tensor, y: torch.Tensor, alpha: float = 0.1
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mu, sigma, W, b) of ``y ≈ ((x − mu) / sigma) @ W + b``, in float64."""
    x, y = x.double(), y.double()
    mu, sigma = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mu) / sigma
    b = y.mean(0)
    gram = z.T @ z + alpha * len(z) * torch.eye(z.shape[1], dtype=z.dtype)
    w = torch.linalg.solve(gram, z.T @ (y - b))
    return mu, sigma, w, b


def ridge_predict(fitted: tuple[torch.Tensor, ...], x: torch.Tensor) -> torch.Tensor:
    mu, sigma, w, b = fitted
    return ((x.double() - mu) / sigma) @ w + b


def scores(pred: torch.Tensor, y: torch.Tensor, seen: torch.Tensor) -> dict[str, float]:
    """Masked MSE and R² of ``pred`` against ``y`` over the ``seen`` entries."""
    pred, y, seen = pred.double(), y.double(), seen.double()
    count = seen.sum(0).clamp_min(1.0)
    mean = (y * seen).sum(0) / count
    sse = ((pred - y) ** 2 * seen).sum()
    sst = ((y - mean) ** 2 * seen).sum().clamp_min(1e-12)
    return {"mse": float(sse / seen.sum().clamp_min(1.0)), "r2": float(1 - sse / sst)}


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, train_seen: torch.Tensor,
                 test_x: torch.Tensor, test_y: torch.Tensor, test_seen: torch.Tensor,
                 alpha: float = 0.1) -> dict[str, float]:
    """Fit on the training rows (unseen targets count as the training mean), score on test."""
    count = train_seen.sum(0).clamp_min(1.0)
    fill = (train_y * train_seen).sum(0) / count
    y = torch.where(train_seen > 0, train_y, fill.expand_as(train_y))
    return scores(ridge_predict(ridge_fit(train_x, y, alpha), test_x), test_y, test_seen)


@torch.no_grad()
def frame_features(part: nn.Module, cfg: Mapping[str, Any], images: torch.Tensor,
                   readout_name: str, batch_size: int = 256) -> torch.Tensor:
    """(N, F) frozen features of uint8 ``images`` (N, H, W, 3) as the method reads them."""
    was = part.training
    part.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = pixels(images[i:i + batch_size], cfg["resolution"], cfg.get("normalize"))
        out.append(readout(read_features(part, cfg.get("call", "forward"), x), readout_name))
    part.train(was)
    return torch.cat(out)


__all__ = ["frame_features", "linear_probe", "ridge_fit", "ridge_predict", "scores"]
