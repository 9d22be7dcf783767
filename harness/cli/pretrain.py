"""``signbench pretrain``: train (or reuse) the stand-ins of the pretrained parts of the methods.

For each method (default: the five built-ins) the stand-ins its ``standins()`` declares at
``--profile`` are trained on its training split of ``--dataset`` and kept in the cache
(``--out``, else ``$SIGNBENCH_CACHE``, else ``~/.cache/signbench/standins``;
``harness.pretrain``); one already there is reused unless ``--force``. Prints one row per
stand-in: method, option, kind, hash, size, final loss, trained / reused. ``--set key=value``
is a method override: a field set there (a real checkpoint) is not trained. See
docs/pretrain.md.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from harness.cli.common import CLIError, parse_overrides, positive, resolve_methods


def _methods(items: list[str] | None) -> list[str]:
    """``--methods a,b`` / ``--methods a b`` → keys; none given: the built-in methods."""
    import baselines

    names = [n for item in items or [] for n in item.split(",") if n.strip()]
    if not names:
        return [module.rsplit(".", 1)[-1] for module in baselines.BUILTIN_METHODS]
    return resolve_methods([n.strip() for n in names])


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def table(rows: list[Any]) -> str:
    """The printed table of :func:`harness.pretrain.pretrain`'s rows."""
    head = ["method", "stand-in", "kind", "hash", "size", "final loss", "status"]
    cells = [head]
    for row in rows:
        e = row.entry
        loss = "-" if e.final_loss is None else f"{e.final_loss:.3f}"
        cells.append([row.method, e.field, e.kind, e.hash[:12], _size(e.size_bytes), loss,
                      e.status])
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


def _check_data(dataset: str, lang: str | None) -> None:
    """An unknown dataset or language fails before anything trains."""
    from harness.data import list_sources
    from harness.data.synthetic.language import LANGS
    from harness.metrics.tokenize import check_lang

    if dataset not in list_sources():
        raise CLIError(f"unknown dataset {dataset!r}; available: {', '.join(list_sources())}")
    if lang is not None:
        check_lang(lang)
        if dataset == "synthetic" and lang not in LANGS:
            raise CLIError(f"--lang {lang!r}: the synthetic corpus speaks {', '.join(LANGS)}")


def cmd_pretrain(args: argparse.Namespace) -> int:
    from harness.pretrain import pretrain
    from harness.pretrain.cache import cache_root, writable_root

    methods = _methods(args.methods)
    _check_data(args.dataset, args.lang)
    writable_root(args.out)  # an unwritable cache fails before any data is read
    t0 = time.perf_counter()
    rows = pretrain(methods, dataset=args.dataset, lang=args.lang, profile=args.profile,
                    seed=args.seed, train_size=args.train_size, resolution=args.resolution,
                    root=args.out, data_root=args.root, overrides=parse_overrides(args.set),
                    force=args.force, progress=not args.quiet)
    if rows:
        print(table(rows))
    else:
        print(f"no stand-in to train: {', '.join(methods)} declare none at profile "
              f"{args.profile!r} (or --set gives them all)")
    trained = sum(r.entry.status == "trained" for r in rows)
    print(f"signbench pretrain: {trained} trained, {len(rows) - trained} reused in "
          f"{cache_root(args.out)} ({time.perf_counter() - t0:.0f} s)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pretrain`` to ``signbench``'s subparsers."""
    from harness.pretrain.data import PROFILE_DATA

    p = subparsers.add_parser("pretrain", help="train the stand-ins of the pretrained parts "
                                               "(LLaMA, mBART, ...) the methods start from")
    p.add_argument("--methods", nargs="*", default=None, metavar="KEY",
                   help="method keys, comma- or space-separated (default: the built-ins)")
    p.add_argument("--dataset", default="synthetic", help="dataset key (default: synthetic)")
    p.add_argument("--root", default=None, help="dataset folder (real datasets)")
    p.add_argument("--lang", default=None,
                   help="text language (synthetic: de, en, zh; default: the method's, else de)")
    p.add_argument("--profile", default="tiny", choices=sorted(PROFILE_DATA))
    p.add_argument("--out", default=None, metavar="DIR",
                   help="stand-in cache (default: $SIGNBENCH_CACHE, else "
                        "~/.cache/signbench/standins)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=positive("--train-size"), default=None)
    p.add_argument("--resolution", type=positive("--resolution"), default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="method override (repeatable); a stand-in option set here is not "
                        "trained")
    p.add_argument("--force", action="store_true", help="retrain stand-ins already cached")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_pretrain)
