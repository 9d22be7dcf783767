"""``signbench data ...`` subcommands: ``export`` and ``show``.

* ``signbench data export --format phoenix14t|csl-daily|how2sign|pose --out DIR [--lang de]
  [--seed 0] [--splits train dev test] [--size N] [--resolution 64] [--pose-layout L]`` — write
  the synthetic corpus in a published layout with its keypoints (see ``harness.data.export``).
* ``signbench data show NAME_OR_INDEX --out FILE.png [--dataset synthetic] [--root DIR]
  [--split train] [--lang de] [--seed 0] [--frames 8]`` — render one sample (frame grid with
  keypoints, gloss and text) to a PNG (``harness.data.show``). ``NAME_OR_INDEX`` is an index
  into the split or a sample name.

Errors the user can fix raise ``ValueError`` with a readable message; ``harness.cli.main``
prints it as one line.
"""

from __future__ import annotations

import argparse
from typing import Any

EXPORT_FORMATS = ("phoenix14t", "csl-daily", "how2sign", "pose")
POSE_LAYOUTS = ("openpose137", "holistic543")


def cmd_data_export(args: argparse.Namespace) -> int:
    from harness.data.export import export_dataset

    if args.format not in EXPORT_FORMATS:  # argparse choices guard this; kept for direct calls
        raise ValueError(f"data export: unknown format {args.format!r}; "
                         f"expected one of {EXPORT_FORMATS}")
    if args.size is not None and args.size < 1:
        raise ValueError(f"data export: --size must be at least 1, got {args.size}")
    written = export_dataset(args.format, args.out, lang=args.lang, seed=args.seed,
                             splits=args.splits, size=args.size, resolution=args.resolution,
                             pose_layout=args.pose_layout, progress=not args.quiet)
    counts = ", ".join(f"{split} {n}" for split, n in written.items())
    print(f"wrote {args.format} layout to {args.out}: {counts} videos")
    return 0


def _find_sample(dataset: Any, key: str) -> Any:
    if key.lstrip("-").isdigit():
        index = int(key)
        if not -len(dataset) <= index < len(dataset):
            raise ValueError(f"data show: index {index} is out of range; the split has "
                             f"{len(dataset)} samples")
        return dataset[index]
    index_of = getattr(dataset, "index_of", None)
    if index_of is not None:
        return dataset[index_of(key)]
    for sample in dataset:
        if sample.name == key:
            return sample
    raise ValueError(f"data show: no sample named {key!r} in this split")


def cmd_data_show(args: argparse.Namespace) -> int:
    import harness.data.synthetic  # noqa: F401  (registers the "synthetic" source)
    from harness.data import load_dataset
    from harness.data.show import show_sample

    kw: dict[str, Any] = {}
    if args.dataset == "synthetic":
        kw = {"lang": args.lang, "seed": args.seed}
    dataset = load_dataset(args.dataset, args.split, root=args.root, **kw)
    sample = _find_sample(dataset, args.sample)
    path = show_sample(sample, args.out, num_frames=args.frames)
    print(f"wrote {path} ({sample.name}: {sample.gloss or ''})")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``data export`` and ``data show`` to ``signbench``'s subparsers."""
    p = subparsers.add_parser("data", help="export the synthetic corpus, show samples")
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    p.set_defaults(func=lambda _args: (p.print_help(), 2)[1])

    e = data_sub.add_parser("export", help="write the synthetic corpus in a dataset layout")
    e.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="target layout")
    e.add_argument("--out", required=True, help="output dataset root folder")
    e.add_argument("--lang", default="de", choices=["de", "en", "zh"], help="text language")
    e.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    e.add_argument("--splits", nargs="+", default=["train", "dev", "test"],
                   choices=["train", "dev", "test"], help="splits to write (default: all)")
    e.add_argument("--size", type=int, default=None,
                   help="videos per split (default: 2000 train, 200 dev, 200 test)")
    e.add_argument("--resolution", type=int, default=64, help="frame side in pixels (64)")
    e.add_argument("--pose-layout", default="openpose137", choices=POSE_LAYOUTS,
                   help="layout of the .pose files of --format pose (default openpose137)")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_data_export)

    s = data_sub.add_parser("show", help="render one sample (frames + keypoints) to a PNG")
    s.add_argument("sample", metavar="NAME_OR_INDEX", help="sample index in the split or name")
    s.add_argument("--out", required=True, help="output PNG file")
    s.add_argument("--dataset", default="synthetic", help="data source (default: synthetic)")
    s.add_argument("--root", default=None, help="dataset root folder (real datasets)")
    s.add_argument("--split", default="train", help="split (default: train)")
    s.add_argument("--lang", default="de", choices=["de", "en", "zh"],
                   help="synthetic corpus language")
    s.add_argument("--seed", type=int, default=0, help="synthetic corpus seed")
    s.add_argument("--frames", type=int, default=8, help="frames in the grid (default 8)")
    s.set_defaults(func=cmd_data_show)
