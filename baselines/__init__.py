"""The five SLT reference methods, one package each (``baselines/<key>/``), behind one interface.

``get_method(name, profile="tiny", **overrides)`` builds a method; ``list_methods()`` lists the
registered keys. The contract and the registry live in :mod:`harness.method`; each method
package registers itself there when imported, and this module imports the built-in ones on
first use, then the installed plug-ins (entry-point group ``signbench.methods``;
:func:`list_plugins` lists them with their problems). Shared building blocks are in
``baselines.common``.
"""

from __future__ import annotations

import importlib

from harness.method import Plugin, SLTMethod, build, load_plugins, register, registered

#: The built-in method packages, imported on first use (each registers itself).
BUILTIN_METHODS: tuple[str, ...] = ("baselines.hypersign", "baselines.signfuse", "baselines.hfa",
                                    "baselines.signx", "baselines.signbind")


def _import_methods() -> None:
    for module in BUILTIN_METHODS:
        importlib.import_module(module)
    load_plugins()  # after the built-ins, so a plug-in cannot take a built-in's name


def list_methods() -> list[str]:
    """Registered method keys, sorted."""
    _import_methods()
    return sorted(registered())


def list_plugins() -> dict[str, Plugin]:
    """The installed ``signbench.methods`` plug-ins by name, each with its problem (``error``)
    when it could not be registered."""
    _import_methods()
    return load_plugins()


def get_method(name: str, profile: str = "tiny", **overrides) -> SLTMethod:
    """Build method ``name`` at ``profile`` ("tiny" | "paper"); a broken plug-in raises
    :class:`harness.method.PluginError` naming it and its problem."""
    _import_methods()
    return build(name, profile, **overrides)


__all__ = ["BUILTIN_METHODS", "get_method", "list_methods", "list_plugins", "register"]
