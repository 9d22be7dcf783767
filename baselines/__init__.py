"""The five SLT reference methods behind one interface (see DESIGN.md, "Methods").

``get_method(name, profile="tiny", **overrides)`` builds a method; ``list_methods()`` lists the
registered keys. Each method module registers itself with ``register``.
"""

from __future__ import annotations

from collections.abc import Callable

_REGISTRY: dict[str, Callable[..., object]] = {}
#: Method modules imported on first use (each registers itself with ``register``).
_METHOD_MODULES: tuple[str, ...] = ("baselines.hypersign", "baselines.signfuse", "baselines.hfa",
                                    "baselines.signx", "baselines.signbind")


def _import_methods() -> None:
    import importlib

    for module in _METHOD_MODULES:
        importlib.import_module(module)


def register(name: str) -> Callable[[Callable[..., object]], Callable[..., object]]:
    """Class/function decorator adding a method builder under ``name``."""

    def wrap(builder: Callable[..., object]) -> Callable[..., object]:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is registered twice")
        _REGISTRY[name] = builder
        return builder

    return wrap


def list_methods() -> list[str]:
    """Registered method keys, sorted."""
    _import_methods()
    return sorted(_REGISTRY)


def get_method(name: str, profile: str = "tiny", **overrides) -> object:
    """Build method ``name`` at ``profile`` ("tiny" | "paper")."""
    _import_methods()
    if name not in _REGISTRY:
        known = ", ".join(list_methods()) or "none yet"
        raise KeyError(f"unknown method {name!r}; registered methods: {known}")
    if profile not in ("tiny", "paper"):
        raise ValueError(f"unknown profile {profile!r}; expected 'tiny' or 'paper'")
    return _REGISTRY[name](profile=profile, **overrides)
