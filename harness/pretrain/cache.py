"""The stand-in cache: one folder per stand-in, named by the hash of what it was trained from.

Root: ``--out DIR``, else ``$SIGNBENCH_CACHE``, else ``~/.cache/signbench/standins``
(:func:`cache_root`). A stand-in lives in ``<root>/<kind>-<hash12>/``; the hash
(:func:`standin_hash`) is the SHA-256 of the canonical JSON of its kind, config, corpus
fingerprint, recipe and :data:`STANDIN_VERSION`. Training happens in
``<root>/.tmp-<name>-<pid>/`` and the folder is renamed into place when done; ``manifest.json``
(:func:`build_manifest`) is written last, and a folder without a valid one is not a stand-in.
:func:`ensure` reuses a valid folder or trains one; :func:`combined_hash` names a set of them.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.files import atomic_write_json, load_json
from harness.measure.environment import git_info
from harness.method import StandIn
from harness.pretrain.types import PretrainData, Recipe, Trainer, TrainReport

SCHEMA = "signbench.standin/1"
#: bump when a trainer changes what it produces: every cached stand-in is then retrained
STANDIN_VERSION = 1
MANIFEST = "manifest.json"
ENV_VAR = "SIGNBENCH_CACHE"
DEFAULT_ROOT = Path("~/.cache/signbench/standins")
HASH_CHARS = 12


def cache_root(out: str | Path | None = None) -> Path:
    """The cache root: ``out``, else ``$SIGNBENCH_CACHE``, else :data:`DEFAULT_ROOT`."""
    chosen = out if out is not None else os.environ.get(ENV_VAR) or DEFAULT_ROOT
    return Path(chosen).expanduser()


def writable_root(out: str | Path | None = None) -> Path:
    """:func:`cache_root`, created; ``ValueError`` (one line) when it cannot be written."""
    root = cache_root(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"stand-in cache {root}: cannot create it ({err.strerror or err})"
                         ) from None
    if not root.is_dir() or not os.access(root, os.W_OK | os.X_OK):
        raise ValueError(f"stand-in cache {root}: not a writable directory")
    return root


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, UTF-8: the text that is hashed (tuples become lists)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def hashed_fields(standin: StandIn, corpus: Mapping[str, Any], recipe: Recipe
                  ) -> dict[str, Any]:
    """What a stand-in's hash covers (not its ``field`` nor ``paper``: two methods declaring
    the same part on the same corpus share one folder)."""
    return {"kind": standin.kind, "config": json.loads(canonical_json(dict(standin.config))),
            "corpus": dict(corpus), "recipe": recipe.to_dict(), "version": STANDIN_VERSION}


def standin_hash(standin: StandIn, corpus: Mapping[str, Any], recipe: Recipe) -> str:
    """SHA-256 (hex) of the canonical JSON of :func:`hashed_fields`."""
    text = canonical_json(hashed_fields(standin, corpus, recipe))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def folder_name(kind: str, digest: str) -> str:
    """``<kind>-<first 12 hex digits>``."""
    return f"{kind}-{digest[:HASH_CHARS]}"


def combined_hash(hashes: Mapping[str, str] | Iterable[tuple[str, str]]) -> str | None:
    """One 12-digit name for a set of stand-ins (``{field: hash}``; order-free), the name a run
    records for what it started from; ``None`` for no stand-in."""
    pairs = sorted(dict(hashes).items())
    if not pairs:
        return None
    return hashlib.sha256(canonical_json(pairs).encode("utf-8")).hexdigest()[:HASH_CHARS]


def read_manifest(folder: Path, digest: str | None = None) -> dict[str, Any] | None:
    """The folder's manifest when it is a valid stand-in (schema, and ``digest`` when given),
    else ``None``."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = load_json(path)
    except ValueError:
        return None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        return None
    if digest is not None and manifest.get("hash") != digest:
        return None
    return manifest


def _files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("torch", "transformers", "tokenizers", "timm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def build_manifest(standin: StandIn, corpus: Mapping[str, Any], recipe: Recipe, digest: str,
                   report: TrainReport, folder: Path, wall_seconds: float) -> dict[str, Any]:
    """The ``manifest.json`` of a trained stand-in (fields: docs/pretrain.md)."""
    commit, dirty = git_info()
    files = _files(folder)
    missing = [f for f in report.files if f not in files]
    if missing:
        raise RuntimeError(f"stand-in {standin.kind}: the trainer reported file(s) {missing} "
                           f"it did not write")
    steps = report.step_losses
    return {
        "schema": SCHEMA, "version": STANDIN_VERSION, "kind": standin.kind,
        "field": standin.field, "paper": standin.paper,
        "config": json.loads(canonical_json(dict(standin.config))), "corpus": dict(corpus),
        "recipe": recipe.to_dict(), "hash": digest, "seed": recipe.seed,
        "git_commit": commit, "git_dirty": dirty,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(), "files": files, "size_bytes": sum(files.values()),
        "parameters": int(report.parameters),
        "loss": {"first": steps[0] if steps else None, "last": steps[-1] if steps else None,
                 "final": report.final_loss, "epochs": list(report.epoch_losses),
                 "steps": len(steps)},
        "wall_seconds": round(wall_seconds, 3), "extra": report.extra,
    }


@dataclass
class CacheEntry:
    """One stand-in in the cache: where it is and whether this call trained it."""

    field: str
    kind: str
    hash: str
    path: Path
    paper: str
    status: str  # "trained" | "reused"
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def final_loss(self) -> float | None:
        return self.manifest.get("loss", {}).get("final")

    @property
    def size_bytes(self) -> int:
        return int(self.manifest.get("size_bytes", 0))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(root: Path, name: str) -> None:
    """Remove what killed processes left: ``.tmp-<name>-<pid>`` / ``.old-<name>-<pid>``."""
    for prefix in (".tmp", ".old"):
        for path in root.glob(f"{prefix}-{name}-*"):
            pid = path.name.rsplit("-", 1)[-1]
            if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
                shutil.rmtree(path, ignore_errors=True)


def _install(tmp: Path, final: Path, digest: str) -> bool:
    """Rename ``tmp`` to ``final`` (a folder already there moves aside first and is removed
    after); ``False`` when another process installed a valid one meanwhile (``tmp`` is then
    removed)."""
    old = final.parent / f".old-{final.name}-{os.getpid()}"
    if final.exists():
        os.rename(final, old)
    try:
        os.rename(tmp, final)
    except OSError as err:
        if old.exists() and not final.exists():
            os.rename(old, final)  # put back what was there
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY) and read_manifest(final, digest):
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        raise
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    return True


def ensure(standin: StandIn, data: PretrainData, trainer: Trainer, recipe: Recipe, *,
           root: Path, force: bool = False, progress: bool = True) -> CacheEntry:
    """The cached stand-in for ``standin`` trained on ``data`` with ``recipe``: reused when a
    valid folder with its hash exists (and not ``force``), else trained by ``trainer`` into a
    temporary folder and renamed into place. A trainer that raises leaves nothing behind."""
    digest = standin_hash(standin, data.corpus, recipe)
    name = folder_name(standin.kind, digest)
    final = root / name
    manifest = None if force else read_manifest(final, digest)
    if manifest is not None:
        return CacheEntry(standin.field, standin.kind, digest, final, standin.paper, "reused",
                          manifest)
    _clean_stale(root, name)
    tmp = root / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        report = trainer(standin, data, tmp, recipe=recipe, progress=progress)
        manifest = build_manifest(standin, data.corpus, recipe, digest, report, tmp,
                                  time.perf_counter() - t0)
        atomic_write_json(tmp / MANIFEST, manifest)
        installed = _install(tmp, final, digest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not installed:
        manifest = read_manifest(final, digest) or manifest
        return CacheEntry(standin.field, standin.kind, digest, final, standin.paper, "reused",
                          manifest)
    return CacheEntry(standin.field, standin.kind, digest, final, standin.paper, "trained",
                      manifest)


__all__ = ["DEFAULT_ROOT", "ENV_VAR", "MANIFEST", "SCHEMA", "STANDIN_VERSION", "CacheEntry",
           "build_manifest", "cache_root", "canonical_json", "combined_hash", "ensure",
           "folder_name", "hashed_fields", "read_manifest", "standin_hash", "writable_root"]
