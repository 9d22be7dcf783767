"""Saving and loading the small versioned JSON files of ``harness.text`` (vocabularies,
pseudo-gloss extractors): atomic writes, and reads whose errors name the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.files import atomic_write_text


def write_json(path: str | Path, obj: dict[str, Any]) -> Path:
    """Write ``obj`` as UTF-8 JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


def read_versioned_json(path: str | Path, version: int, what: str,
                        error: type[Exception]) -> dict[str, Any]:
    """The JSON object at ``path`` whose ``format`` field is ``version``; anything else raises
    ``error`` naming the file (``what`` says which kind of file was expected)."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{p}: {what} file not found") from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, not a {what} file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{p}: not a valid UTF-8 JSON file: {e}") from None
    if not isinstance(obj, dict) or obj.get("format") != version:
        raise error(f"{p}: field 'format' must be {version}")
    return obj
