"""Training checkpoints: model weights in safetensors, everything else in a small sidecar.

Layout under a run's checkpoint folder::

    ckpt/
      last.json            pointer: {"dir": "step-00000120", ...meta}  (written last, atomically)
      best.json            pointer to the best checkpoint of the current stage (same format)
      step-00000120/
        model.safetensors  the method's state_dict (shared tensors stored once)
        trainer.pt         optimizer / scheduler / GradScaler state, RNG states
        meta.json          stage, epoch, step, best metric, loss history (human-readable)

Why a folder per checkpoint plus a pointer: a checkpoint is several files, and a crash while
writing them must never leave a mix of old and new. Each file is written atomically into a fresh
folder; only when all are on disk is the pointer file replaced (``os.replace``), so a reader sees
either the previous complete checkpoint or the new one. Folders no pointer names are deleted
afterwards. ``trainer.pt`` is a ``torch.save`` pickle of plain tensors and numbers written by us;
it is loaded with ``weights_only=True`` (RNG states are byte tensors, numpy's state is stored as
plain lists), so it never runs code.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.results import atomic_write_bytes, atomic_write_json, load_json

MODEL_FILE = "model.safetensors"
TRAINER_FILE = "trainer.pt"
META_FILE = "meta.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged or does not fit the model (the message names the file)."""


def rng_state() -> dict[str, Any]:
    """torch / CUDA / numpy / random RNG states as weights-only-loadable values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [str(np_state[0]), torch.from_numpy(np.asarray(np_state[1]).copy()),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "random": _random_state_to_tensor(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _random_state_to_tensor() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [int(version), torch.tensor(internal, dtype=torch.int64),
            None if gauss is None else float(gauss)]


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["random"]
    random.setstate((version, tuple(int(x) for x in internal.tolist()), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Checkpoint:
    """A checkpoint found on disk: its folder, its meta, and the sidecar (``trainer.pt``)."""

    path: Path
    meta: dict[str, Any]
    trainer: dict[str, Any]

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE


def _write_model(model: torch.nn.Module, path: Path) -> None:
    """``safetensors.torch.save_model`` (drops tied duplicates) via a temporary file + rename."""
    from safetensors.torch import save_model

    tmp = path.with_name(f".{path.name}.tmp")
    save_model(model, str(tmp))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(folder: str | Path, name: str, model: torch.nn.Module,
                    trainer_state: dict[str, Any], meta: dict[str, Any],
                    pointers: tuple[str, ...] = ("last",)) -> Path:
    """Write checkpoint ``folder/name/`` and point ``folder/<pointer>.json`` at it.

    ``trainer_state`` goes to ``trainer.pt`` (optimizer, scheduler, scaler, RNG states), ``meta``
    (JSON-serialisable) to ``meta.json`` and into every pointer file. Returns the folder written.
    """
    root = Path(folder)
    target = root / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    _write_model(model, target / MODEL_FILE)
    buffer = io.BytesIO()
    torch.save(trainer_state, buffer)
    atomic_write_bytes(target / TRAINER_FILE, buffer.getvalue())
    atomic_write_json(target / META_FILE, meta)
    for pointer in pointers:
        atomic_write_json(root / f"{pointer}.json", {"dir": name, **meta})
    prune(root)
    return target


def prune(folder: str | Path) -> None:
    """Delete checkpoint folders no pointer file names."""
    root = Path(folder)
    keep = set()
    for pointer in root.glob("*.json"):
        try:
            keep.add(load_json(pointer).get("dir"))
        except (ValueError, AttributeError):
            continue
    for child in root.iterdir():
        if child.is_dir() and child.name not in keep and not child.name.startswith("."):
            shutil.rmtree(child, ignore_errors=True)


def has_checkpoint(folder: str | Path, pointer: str = "last") -> bool:
    return (Path(folder) / f"{pointer}.json").is_file()


def load_checkpoint(folder: str | Path, pointer: str = "last",
                    load_trainer: bool = True) -> Checkpoint:
    """Read the checkpoint ``folder/<pointer>.json`` names (weights: :func:`restore_model`)."""
    root = Path(folder)
    pointer_path = root / f"{pointer}.json"
    if not pointer_path.is_file():
        raise CheckpointError(f"{pointer_path}: no {pointer!r} checkpoint in {root}")
    meta = load_json(pointer_path)
    if not isinstance(meta, dict) or not isinstance(meta.get("dir"), str):
        raise CheckpointError(f"{pointer_path}: field 'dir' missing (not a checkpoint pointer)")
    path = root / meta["dir"]
    if not (path / MODEL_FILE).is_file():
        raise CheckpointError(f"{path / MODEL_FILE}: missing (checkpoint {pointer!r} is "
                              f"incomplete)")
    trainer: dict[str, Any] = {}
    if load_trainer:
        trainer_path = path / TRAINER_FILE
        try:
            trainer = torch.load(trainer_path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{trainer_path}: missing (checkpoint {pointer!r} is "
                                  f"incomplete)") from None
        except Exception as e:  # unpickling errors of many types
            raise CheckpointError(f"{trainer_path}: unreadable trainer state: {e}") from None
    return Checkpoint(path, meta, trainer)


def restore_model(model: torch.nn.Module, checkpoint: Checkpoint | str | Path) -> None:
    """Load the checkpoint's safetensors weights into ``model`` (strict; tied weights handled by
    ``safetensors.torch.load_model``), on the device of the model's first parameter."""
    from safetensors.torch import load_model

    path = checkpoint.model_file if isinstance(checkpoint, Checkpoint) else Path(checkpoint)
    first = next(model.parameters(), None)
    device = str(first.device) if first is not None else "cpu"
    try:
        load_model(model, str(path), strict=True, device=device)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint weights not found") from None
    except RuntimeError as e:
        raise CheckpointError(f"{path}: does not fit the model: {e}") from None
    except Exception as e:  # safetensors raises its own Rust error types
        raise CheckpointError(f"{path}: not a readable safetensors file: {e}") from None


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomic canonical JSON (re-exported for the trainer's small files)."""
    return atomic_write_json(path, json.loads(json.dumps(obj, default=str)))
