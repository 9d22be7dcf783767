"""Stand-ins for the pretrained parts the methods start from (``signbench pretrain``).

A method declares its pretrained components with ``SLTMethod.standins(profile, overrides)``
(``harness.method.StandIn``); :func:`ensure_standins` trains the missing ones on the method's
training split with the trainer of their kind (:data:`TRAINERS`, recipe :data:`RECIPES`), keeps
them in the cache (``harness.pretrain.cache``) and returns the paths to pass as overrides;
:func:`pretrain` does it for several methods (the CLI). Types: ``harness.pretrain.types``.
Layer: between ``harness.runner`` and ``harness.train``. See docs/pretrain.md.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.method import StandIn
from harness.pretrain import text
from harness.pretrain.cache import (
    CacheEntry,
    combined_hash,
    ensure,
    standin_hash,
    writable_root,
)
from harness.pretrain.data import PROFILE_DATA, data_setting, load_pretrain_data
from harness.pretrain.types import PretrainData, Recipe, Trainer, TrainReport

#: the trainer of each stand-in kind (one signature: ``harness.pretrain.types.Trainer``)
TRAINERS: dict[str, Trainer] = dict(text.TRAINERS)
#: the default recipe of each kind (its seed is replaced by the run's)
RECIPES: dict[str, Recipe] = dict(text.RECIPES)
#: modules adding kinds when present, each with its own ``TRAINERS`` / ``RECIPES`` dicts
OPTIONAL_TRAINERS = ("harness.pretrain.vision", "harness.pretrain.keypoints",
                     "harness.pretrain.pose")


def _register_optional() -> None:
    for name in OPTIONAL_TRAINERS:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        TRAINERS.update(getattr(module, "TRAINERS", {}))
        RECIPES.update(getattr(module, "RECIPES", {}))


_register_optional()


def method_class(key: str) -> Any:
    """The ``SLTMethod`` class registered under ``key`` (``ValueError`` naming the registered
    ones otherwise; a broken plug-in raises its ``PluginError``)."""
    import baselines
    from harness.method import builder_class, plugin_error, registered

    known = baselines.list_methods()
    if key not in known:
        if (problem := plugin_error(key)) is not None:
            raise problem
        raise ValueError(f"unknown method {key!r}; registered methods: "
                         f"{', '.join(known) or 'none'}")
    return builder_class(registered()[key])


def recipe_for(kind: str, seed: int, recipes: Mapping[str, Recipe] | None = None) -> Recipe:
    """The recipe of ``kind`` (``recipes`` first, then :data:`RECIPES`) seeded with ``seed``."""
    chosen = (recipes or {}).get(kind) or RECIPES.get(kind)
    if chosen is None or kind not in TRAINERS:
        raise ValueError(f"no stand-in trainer for kind {kind!r} here; available: "
                         f"{sorted(TRAINERS)}")
    return replace(chosen, seed=seed)


@dataclass
class MethodData:
    """The data settings a method's stand-ins train with (resolved from its ``data_defaults``)."""

    dataset: str
    lang: str
    train_size: int | None
    resolution: int
    seed: int


def method_data(cls: Any, profile: str, *, dataset: str, lang: str | None,
                train_size: int | None, resolution: int | None, seed: int) -> MethodData:
    """Explicit settings, else the method's ``data_defaults[profile]``, else ``PROFILE_DATA``."""
    return MethodData(dataset=dataset, lang=data_setting("lang", cls, profile, lang),
                      train_size=data_setting("train_size", cls, profile, train_size),
                      resolution=data_setting("resolution", cls, profile, resolution),
                      seed=seed)


def declared_standins(cls: Any, profile: str, overrides: Mapping[str, Any] | None
                      ) -> list[StandIn]:
    """The stand-ins ``cls`` declares at ``profile`` whose ``field`` the user did not set."""
    overrides = dict(overrides or {})
    standins = list(cls.standins(profile, overrides))
    for s in standins:
        if not isinstance(s, StandIn):
            raise TypeError(f"{cls.__name__}.standins returned {s!r}, not a StandIn")
    return [s for s in standins if s.field not in overrides]


def ensure_entries(method_key: str, profile: str, overrides: Mapping[str, Any] | None, *,
                   dataset: str = "synthetic", lang: str | None = None,
                   train_size: int | None = None, resolution: int | None = None, seed: int = 0,
                   root: str | Path | None = None, data_root: str | Path | None = None,
                   data_options: Mapping[str, Any] | None = None, force: bool = False,
                   recipes: Mapping[str, Recipe] | None = None, progress: bool = True,
                   _loaded: dict[tuple[Any, ...], PretrainData] | None = None,
                   _forced: set[str] | None = None) -> list[CacheEntry]:
    """:func:`ensure_standins` with the full :class:`CacheEntry` of each stand-in (``_loaded``
    / ``_forced``: the splits read and the hashes retrained so far by one :func:`pretrain`)."""
    if profile not in PROFILE_DATA:
        raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILE_DATA)}")
    cls = method_class(method_key)
    todo = declared_standins(cls, profile, overrides)
    if not todo:
        return []
    for s in todo:
        recipe_for(s.kind, seed, recipes)  # an unknown kind fails before any data is read
    cache = writable_root(root)
    settings = method_data(cls, profile, dataset=dataset, lang=lang, train_size=train_size,
                           resolution=resolution, seed=seed)
    key = (settings.dataset, settings.lang, settings.train_size, settings.resolution,
           settings.seed, str(data_root), tuple(sorted((data_options or {}).items())))
    loaded = {} if _loaded is None else _loaded
    if key not in loaded:
        loaded[key] = load_pretrain_data(settings.dataset, lang=settings.lang,
                                         train_size=settings.train_size,
                                         resolution=settings.resolution, seed=seed,
                                         root=data_root, options=data_options)
    data = loaded[key]
    forced = set() if _forced is None else _forced
    entries = []
    for s in todo:
        recipe = recipe_for(s.kind, seed, recipes)
        again = force and standin_hash(s, data.corpus, recipe) not in forced
        entries.append(ensure(s, data, TRAINERS[s.kind], recipe, root=cache, force=again,
                              progress=progress))
        if force:
            forced.add(entries[-1].hash)
    return entries


def summary(entries: Sequence[CacheEntry]) -> dict[str, Any]:
    """``{"hash": combined hash, "standins": [{field, kind, hash, path, paper}]}``."""
    return {"hash": combined_hash({e.field: e.hash for e in entries}),
            "standins": [{"field": e.field, "kind": e.kind, "hash": e.hash, "path": str(e.path),
                          "paper": e.paper} for e in entries]}


def ensure_standins(method_key: str, profile: str, overrides: Mapping[str, Any] | None, *,
                    dataset: str = "synthetic", lang: str | None = None,
                    train_size: int | None = None, resolution: int | None = None,
                    seed: int = 0, root: str | Path | None = None,
                    data_root: str | Path | None = None,
                    data_options: Mapping[str, Any] | None = None, force: bool = False,
                    progress: bool = True) -> tuple[dict[str, str], dict[str, Any]]:
    """The stand-ins method ``method_key`` starts from at ``profile``, trained when missing.

    Calls ``cls.standins(profile, overrides)``, skips the fields set in ``overrides`` (a real
    checkpoint), reuses or trains the others in the cache ``root`` (``None``:
    ``$SIGNBENCH_CACHE`` or ``~/.cache/signbench/standins``) on the method's training split of
    ``dataset`` (``lang`` / ``train_size`` / ``resolution``: ``None`` = the method's data
    defaults; ``data_root`` / ``data_options``: a real dataset's folder and reader options).
    Returns ``({field: path}`` to pass as overrides, :func:`summary`\\ ``)``.
    """
    entries = ensure_entries(method_key, profile, overrides, dataset=dataset, lang=lang,
                             train_size=train_size, resolution=resolution, seed=seed, root=root,
                             data_root=data_root, data_options=data_options, force=force,
                             progress=progress)
    return {e.field: str(e.path) for e in entries}, summary(entries)


@dataclass
class PretrainRow:
    """One line of ``signbench pretrain``'s table."""

    method: str
    entry: CacheEntry


def pretrain(methods: Sequence[str], *, dataset: str = "synthetic", lang: str | None = None,
             profile: str = "tiny", seed: int = 0, train_size: int | None = None,
             resolution: int | None = None, root: str | Path | None = None,
             data_root: str | Path | None = None,
             data_options: Mapping[str, Any] | None = None,
             overrides: Mapping[str, Any] | None = None, force: bool = False,
             progress: bool = True) -> list[PretrainRow]:
    """Train / reuse the stand-ins of every method in ``methods`` (``signbench pretrain``);
    a stand-in two methods share is trained once (with ``force``: retrained once, then
    reused)."""
    for method in methods:
        method_class(method)  # every name checked before anything trains
    loaded: dict[tuple[Any, ...], PretrainData] = {}
    forced: set[str] = set()
    rows: list[PretrainRow] = []
    for method in methods:
        entries = ensure_entries(method, profile, overrides, dataset=dataset, lang=lang,
                                 train_size=train_size, resolution=resolution, seed=seed,
                                 root=root, data_root=data_root, data_options=data_options,
                                 force=force, progress=progress, _loaded=loaded,
                                 _forced=forced)
        rows += [PretrainRow(method, e) for e in entries]
    return rows


__all__ = ["OPTIONAL_TRAINERS", "PROFILE_DATA", "RECIPES", "TRAINERS", "CacheEntry",
           "MethodData", "PretrainData", "PretrainRow", "Recipe", "TrainReport", "Trainer",
           "declared_standins", "ensure_entries", "ensure_standins", "method_class",
           "method_data", "pretrain", "recipe_for", "summary"]
