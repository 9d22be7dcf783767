"""Load a saved state dict (timm / Hugging Face / our own) into one of our modules, or fail clearly.

Why a module of its own: SignBench writes its backbones by hand (``resnet``, ``vit``) because timm
cannot be installed on the reference machine (it needs torchvision, and only CUDA torchvision wheels
exist, which fail to import against the CPU torch build). The hand-written modules keep timm's
parameter names, so a local timm checkpoint — or the original DINOv2 / torchvision one, which use
the same names — loads with :func:`load_weights`; the LLM's ``build_llama(init=FILE)`` uses it
too for single-file state dicts. Nothing here touches the network.

What :func:`load_weights` accepts (choices recorded here):

* file formats: ``.safetensors`` (read with ``safetensors.torch.load_file``), anything else with
  ``torch.load(..., weights_only=True)`` (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) — never
  unpickling arbitrary objects; a directory loads every ``*.safetensors`` file in it (sharded
  Hugging Face checkpoints), or else every ``*.bin`` / ``*.pt`` / ``*.pth`` file.
* wrappers: a dict whose tensors sit under ``"state_dict"``, ``"model"``, ``"model_state"`` or
  ``"module"`` (common training-checkpoint layouts) is unwrapped.
* key prefixes: ``prefix`` (if given) selects the keys that start with it and strips it; then a
  leading ``"module."`` (DataParallel / DDP) and ``"model."`` (Lightning, some HF exports) is
  stripped from *every* key, but only when the module's own keys do not start with it (a Hugging
  Face ``LlamaForCausalLM`` has real ``model.`` keys, which stay).
* classifier heads: a pretrained *classification* checkpoint loaded into a feature extractor
  (``num_classes=0``: timm's ``fc`` / ``head`` is an identity) carries classifier weights the
  module does not have; keys under ``fc.``, ``head.``, ``head_dist.`` and DINOv2's
  ``mask_token`` (used only in its self-supervised pretraining) are dropped when the module has no
  parameter of that name — timm's ``load_pretrained`` does the same for ``num_classes=0``.
* checks: every shape must match (always, even with ``strict=False``); with ``strict=True`` the
  key sets must match exactly. Errors are ``ValueError`` naming the file and the offending keys
  (at most 10 each, plus a count) and shapes.
* dtype: tensors are cast to the module's parameter dtype by ``load_state_dict``'s copy. A module
  on the ``meta`` device is filled with ``assign=True`` (the loaded tensors become its parameters).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

#: wrapper keys of training checkpoints whose value is the actual state dict
_WRAPPER_KEYS = ("state_dict", "model", "model_state", "module")
#: global key prefixes stripped when the module's own keys lack them
_STRIP_PREFIXES = ("module.", "model.")
#: checkpoint entries dropped when the module has nothing under that name (classifier heads etc.)
_DROPPABLE = ("fc.", "head.", "head_dist.", "mask_token")
_SHOW = 10


def _show(keys: list[str]) -> str:
    keys = sorted(keys)
    more = f" … (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"{path}: cannot read it as a torch state dict with weights_only=True ({exc})"
        ) from exc
    return _unwrap(obj, path)


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors:
                return tensors
            break
        obj = inner
    raise ValueError(
        f"{path}: holds no state dict (a mapping of names to tensors); found {type(obj).__name__}"
        + (f" with keys {_show([str(k) for k in obj])}" if isinstance(obj, Mapping) else "")
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the tensors of a checkpoint file or directory (see the module docstring), on CPU."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            files = sorted(p for ext in ("*.bin", "*.pt", "*.pth") for p in path.glob(ext))
        if not files:
            raise ValueError(f"{path}: directory holds no *.safetensors, *.bin, *.pt or *.pth file")
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state.update(_read_file(f))
        return state
    return _read_file(path)


def _strip(state: dict[str, torch.Tensor], own: set[str], prefix: str,
           path: Path) -> dict[str, torch.Tensor]:
    if prefix:
        selected = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not selected:
            raise ValueError(
                f"{path}: no key starts with prefix {prefix!r}; keys are {_show(list(state))}"
            )
        state = selected
    changed = True
    while changed:
        changed = False
        for p in _STRIP_PREFIXES:
            if (state and all(k.startswith(p) for k in state)
                    and not any(k.startswith(p) for k in own)):
                state = {k[len(p):]: v for k, v in state.items()}
                changed = True
    return state


def load_weights(module: nn.Module, path: str | Path, *, prefix: str = "",
                 strict: bool = True) -> None:
    """Load the state dict at ``path`` into ``module`` in place (see the module docstring).

    ``prefix``: only keys starting with it are used, with it stripped (e.g. ``"visual.trunk."``).
    ``strict``: require the key sets to match exactly; otherwise missing / unexpected keys give a
    warning naming them. Shape mismatches always raise ``ValueError``.
    """
    path = Path(path)
    own_state = module.state_dict()
    own = set(own_state)
    state = _strip(read_state_dict(path), own, prefix, path)
    state = {k: v for k, v in state.items()
             if not (k.startswith(_DROPPABLE) and k not in own
                     and not any(o.startswith(k.split(".")[0] + ".") for o in own))}
    # non-persistent buffers are not in state_dict(); nothing to do for them
    missing = sorted(own - set(state))
    unexpected = sorted(set(state) - own)
    bad_shape = [
        f"{k}: file {tuple(state[k].shape)} vs module {tuple(own_state[k].shape)}"
        for k in sorted(own & set(state)) if tuple(state[k].shape) != tuple(own_state[k].shape)
    ]
    name = type(module).__name__
    if bad_shape:
        more = f" … (+{len(bad_shape) - _SHOW} more)" if len(bad_shape) > _SHOW else ""
        raise ValueError(
            f"{path}: shape mismatch loading into {name}: " + "; ".join(bad_shape[:_SHOW]) + more
        )
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_show(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_show(unexpected)}")
        raise ValueError(
            f"{path}: does not match {name} ({'; '.join(parts)}); pass prefix= to select a "
            "sub-module's weights or strict=False to load the overlap"
        )
    if missing or unexpected:
        warnings.warn(
            f"{path}: loaded into {name} non-strictly; missing {_show(missing) or 'none'}; "
            f"unexpected {_show(unexpected) or 'none'}",
            stacklevel=2,
        )
    on_meta = any(t.is_meta for t in own_state.values())
    load = {k: v for k, v in state.items() if k in own}
    module.load_state_dict(load, strict=False, assign=on_meta)


def save_weights(module: nn.Module, path: str | Path) -> Path:
    """Write ``module``'s state dict to ``path`` atomically (``.safetensors`` or torch format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        # safetensors refuses tensors that share memory (tied weights): store copies
        save_file({k: v.clone() for k, v in state.items()}, str(tmp))
    else:
        torch.save(state, tmp)
    tmp.replace(path)
    return path
