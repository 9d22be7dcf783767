"""What the ``signbench`` subcommands share: the user-facing error, input files, tables, options.

* :class:`CLIError` — an error :func:`harness.cli.main` prints as one ``signbench: error: ...``
  line (exit status 2), without a traceback.
* :func:`read_lines` — one sentence per line from a UTF-8 file, BOM stripped (``score``);
  :func:`check_file` — a path that must be a file (a directory is named as one).
* :func:`format_table` — the two-column plain-text tables every command prints.
* :func:`positive` — the argparse type of options that must be integers ≥ 1.
* :func:`parse_overrides` — ``--set key=value`` items as a dict (``run``, ``experiment``).
* :func:`resolve_methods` — ``--methods`` / ``--method`` checked against the registry.

Layer: application (``harness.cli``). This module imports no other ``harness.cli`` module, so
every command module can import it without a cycle (``docs/architecture.md``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


class CLIError(Exception):
    """An error to report to the user as one line, without a traceback."""


def check_file(path: Path, what: str) -> Path:
    """``path`` when it is a readable file; a :class:`CLIError` saying it is a directory, or
    not found, otherwise."""
    if path.is_dir():
        raise CLIError(f"{what} file {path} is a directory, not a file")
    if not path.is_file():
        raise CLIError(f"{what} file not found: {path}")
    return path


def read_lines(path: Path, what: str) -> list[str]:
    """One sentence per line from a UTF-8 text file (a trailing newline adds no empty line).

    A UTF-8 byte-order mark at the start is stripped, with a note on stderr (left in, it would
    glue itself to the first word and silently cost that line its matches)."""
    data = check_file(path, what).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise CLIError(f"{what} file {path} is not UTF-8 (line {line}: {err.reason})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
        print(f"signbench: note: {path}: UTF-8 byte-order mark stripped", file=sys.stderr)
    return text.splitlines()


def format_table(rows: Sequence[tuple[str, str]], header: tuple[str, str]) -> str:
    """A two-column plain-text table."""
    width = max(len(header[0]), *(len(k) for k, _ in rows)) if rows else len(header[0])
    lines = [f"{header[0]:<{width}}  {header[1]}", f"{'-' * width}  {'-' * len(header[1])}"]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def positive(name: str) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ≥ 1; errors name the option ``name``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {value}")
        return value

    return parse


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b=mixup"]`` → ``{"a": 1, "b": "mixup"}`` (JSON values where they parse); the
    method then parses each against its config field's type (``SLTMethod.coerce_overrides``:
    ``use_sst=False`` is the bool False, ``use_sst=maybe`` an error)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise ValueError(f"--set {item!r}: expected key=value with a Python identifier as "
                             f"key (e.g. --set fusion=mixup)")
        if key in out:
            raise ValueError(f"--set {key}=...: given twice")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = value
    return out


def resolve_methods(requested: list[str] | None, *, broken_plugins: bool = False) -> list[str]:
    """The requested method keys (duplicates dropped), or every registered one when none is
    requested (with ``broken_plugins``, also the installed plug-ins that cannot be used, so
    ``run`` records them as failures); an unknown key raises ``ValueError`` listing the
    registered methods. A broken plug-in named in ``requested`` is not unknown: building it
    raises its ``PluginError``."""
    import baselines

    known = baselines.list_methods()
    broken = [name for name, p in baselines.list_plugins().items() if p.error is not None]
    if not requested:
        if not known:
            raise ValueError("no method is registered")
        return known + (broken if broken_plugins else [])
    unknown = [m for m in requested if m not in known and m not in broken]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; registered methods: "
                         f"{', '.join(known) or 'none'}")
    return list(dict.fromkeys(requested))
