"""The optimisation loop every stand-in trainer can share: seeded, AdamW, warm-up + cosine.

:func:`fit` runs ``recipe.epochs`` passes over ``num_items`` training items in batches of
``recipe.batch_size`` (a fresh seeded permutation per epoch), calls ``loss_fn(indices, epoch)``
for each batch's loss, steps AdamW (``recipe.lr``, ``recipe.weight_decay``) under a linear
warm-up over ``recipe.warmup`` of the steps then cosine decay to 0
(``harness.train.make_scheduler``), clips the gradient norm at ``recipe.grad_clip``, and returns
the per-step and per-epoch-mean losses. A non-finite loss stops it with ``FloatingPointError``.
:func:`threads` caps torch's intra-op threads for a block (tiny models gain nothing from them
and lose much to OpenMP spin-waiting on a busy machine).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from harness.pretrain.types import Recipe
from harness.train import epoch_seed, make_scheduler, seed_everything

#: ``epoch_seed``'s stage index for stand-in pretraining (apart from any method stage's)
_STAGE = 1_000


def count_parameters(model: nn.Module) -> int:
    """Every parameter of ``model`` (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def threads(limit: int | None) -> Iterator[None]:
    """Run the block with at most ``limit`` torch intra-op threads (``None``: unchanged)."""
    before = torch.get_num_threads()
    if limit is not None:
        torch.set_num_threads(max(1, min(limit, before)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batches(num_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's index batches: a permutation seeded by (seed, epoch), cut into batches (the
    last one may be smaller)."""
    gen = torch.Generator().manual_seed(epoch_seed(seed, _STAGE, epoch))
    order = torch.randperm(num_items, generator=gen).tolist()
    return [order[i:i + batch_size] for i in range(0, num_items, batch_size)]


def fit(model: nn.Module, num_items: int, loss_fn: Callable[[list[int], int], torch.Tensor],
        recipe: Recipe, *, progress: bool = True, desc: str = "pretrain"
        ) -> tuple[list[float], list[float]]:
    """Train ``model`` in place (module docstring); returns ``(step_losses, epoch_losses)``."""
    if num_items < 1:
        raise ValueError(f"{desc}: nothing to train on (no training item)")
    seed_everything(recipe.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    per_epoch = math.ceil(num_items / recipe.batch_size)
    total = per_epoch * recipe.epochs
    scheduler = make_scheduler(optimizer, "cosine", total, round(recipe.warmup * total))
    step_losses: list[float] = []
    epoch_losses: list[float] = []
    model.train()
    with tqdm(total=total, desc=desc, unit="step", disable=not progress, leave=False) as bar:
        for epoch in range(recipe.epochs):
            losses = []
            for idx in batches(num_items, recipe.batch_size, recipe.seed, epoch):
                loss = loss_fn(idx, epoch)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(f"{desc}: loss is {value} at epoch {epoch + 1}, "
                                             f"step {len(step_losses) + 1}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, recipe.grad_clip)
                optimizer.step()
                scheduler.step()
                losses.append(value)
                step_losses.append(value)
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{value:.3f}")
            epoch_losses.append(sum(losses) / len(losses))
    model.eval()
    return step_losses, epoch_losses


__all__ = ["batches", "count_parameters", "fit", "threads"]
