"""Checks and parsing for the methods' config dataclasses (contract layer, below harness.method).

``ConfigError`` is the one error type of a bad method option; ``check_choices`` / ``check_bounds``
are the ``validate()`` helpers every config uses; ``coerce`` parses a ``--set`` value (a string or
a JSON value) against a config field's type for ``SLTMethod.coerce_overrides``.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Any


class ConfigError(ValueError):
    """A method configuration or override that cannot be used (unknown field, bad value);
    the message names the method, the field, the value and what was expected."""


def check_choices(owner: str, choices: Mapping[str, tuple[Any, Collection[Any]]]) -> None:
    """Raise a :class:`ConfigError` naming ``owner.field``, the bad value and the allowed ones
    for the first ``field: (value, allowed)`` whose value is not allowed (config ``validate``)."""
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{owner}.{name} = {value!r}; expected one of {tuple(allowed)}")


def check_bounds(config: Any, *, positive: Sequence[str] = (),
                 non_negative: Sequence[str] = ()) -> None:
    """Raise a :class:`ConfigError` naming ``<Config>.field`` and its value for the first field
    in ``positive`` that is not > 0, then for the first in ``non_negative`` that is < 0."""
    owner = type(config).__name__
    for names, bad, rule in ((positive, lambda v: not v > 0, "> 0"),
                             (non_negative, lambda v: v < 0, ">= 0")):
        for name in names:
            value = getattr(config, name)
            if bad(value):
                raise ConfigError(f"{owner}.{name} must be {rule}, got {value}")


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
_NONE = ("none", "null")


class TypeMismatch(Exception):
    """A value that does not fit a type; ``expected`` says what would."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def type_name(tp: Any) -> str:
    """``int``, ``str | None``, ``tuple[int, ...]``: a field type as people write it."""
    if tp is type(None):
        return "None"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def coerce(tp: Any, value: Any) -> Any:
    """``value`` (a ``--set`` string or a JSON / Python value) as type ``tp``, else raise
    ``TypeMismatch``. Booleans: true/false/1/0/yes/no in any case and nothing else; numbers must
    parse (finite); ``X | None`` also takes none/null; tuples and lists take a JSON list or
    comma-separated text, element by element, a fixed-length tuple that many; dicts JSON."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str)
                                                     and value.strip().lower() in _NONE)):
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(arg, value)
            except TypeMismatch:
                continue
        raise TypeMismatch(f"a {type_name(tp)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise TypeMismatch("a bool (true/false/1/0/yes/no, any case)")
    if tp is int:
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeMismatch("an int")
    if tp is float:
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise TypeMismatch("a float") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)) \
                or not math.isfinite(number):
            raise TypeMismatch("a float (finite)")
        return float(number)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # a number-looking --set value for a text field (a path, a name)
        raise TypeMismatch("a str")
    if origin in (tuple, list):
        items = value
        if isinstance(value, str):
            try:
                items = json.loads(value)
            except json.JSONDecodeError:
                items = [part.strip() for part in value.split(",") if part.strip()]
            if not isinstance(items, list):
                items = [items]
        if not isinstance(items, (list, tuple)):
            raise TypeMismatch(f"a {type_name(tp)} (a JSON list or comma-separated values)")
        if origin is list or (len(args) == 2 and args[1] is Ellipsis) or not args:
            element = args[0] if args else Any
            parsed = [_element(element, v, tp) for v in items]
        else:
            if len(items) != len(args):
                raise TypeMismatch(f"a {type_name(tp)} ({len(args)} values, got {len(items)})")
            parsed = [_element(a, v, tp) for a, v in zip(args, items, strict=True)]
        return parsed if origin is list else tuple(parsed)
    if origin is dict or tp is dict:
        mapping = value
        if isinstance(value, str):
            try:
                mapping = json.loads(value)
            except json.JSONDecodeError:
                raise TypeMismatch(f"a {type_name(tp)} (a JSON object)") from None
        if not isinstance(mapping, dict):
            raise TypeMismatch(f"a {type_name(tp)} (a JSON object)")
        return dict(mapping)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise TypeMismatch(f"a {type_name(tp)}")
    return value


def _element(tp: Any, value: Any, whole: Any) -> Any:
    try:
        return coerce(tp, value)
    except TypeMismatch as e:
        raise TypeMismatch(f"a {type_name(whole)} (element {value!r} is not "
                           f"{e.expected})") from None
