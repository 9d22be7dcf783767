"""Does a dataset give what a method needs? One check before training, one clear error.

:func:`check_streams` looks at the first sample of each split (``Sample.has``, no decoding except
the first training sample's pose formats) and raises :class:`MissingStreamError` listing every
stream, pose format or annotation the method needs and the data cannot give, each with how to
supply it. Without it the run would fail deep inside collate or the model, after the tokenizer
was trained and data loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.data.sample import Sample

#: How to give each stream to a reader (``signbench run`` options; docs/data.md).
SUPPLY: dict[str, str] = {
    "frames": "a dataset with RGB frames (phoenix14t, csl-daily); How2Sign, .pose and signjoey "
              "sources carry none",
    "keypoints": "--keypoints-dir DIR (one <name>.pose file or <name>/ folder of OpenPose JSON "
                 "per video; load_dataset(..., keypoints_dir=DIR))",
    "poses": "--keypoints-dir DIR: SignX's MediaPipe format is derived from the keypoints",
    "lips": "mouth crops are cut from the frames around the face keypoints: a dataset with "
            "frames plus --keypoints-dir DIR",
    "frame_labels": "--labels FILE (tab-separated name / per-frame labels; default: 'sign')",
    "features": "a signjoey / SLRT feature file (--dataset signjoey)",
    "text": "a dataset whose rows carry a translation",
    "gloss": "a dataset whose rows carry a gloss sequence",
}


def required_annotations(method_class: object) -> tuple[str, ...]:
    """``text`` / ``gloss``: what a method class's ``needs_text`` / ``needs_gloss`` / ``task``
    say every row must carry (readers get it as ``require=``)."""
    needs = []
    if getattr(method_class, "needs_text", False):
        needs.append("text")
    if getattr(method_class, "needs_gloss", False) or \
            getattr(method_class, "task", None) == "recognition":
        needs.append("gloss")
    return tuple(needs)


class MissingStreamError(ValueError):
    """A method needs streams or annotations the dataset cannot give (message says which)."""


def missing(method: str, dataset: str, splits: Mapping[str, Sequence[Sample]],
            streams: Sequence[str], pose_formats: Sequence[str] = (),
            annotations: Sequence[str] = ()) -> list[tuple[str, str]]:
    """``(what, how to supply it)`` for everything the data lacks (empty: all there)."""
    lacking: dict[str, str] = {}
    for split, samples in splits.items():
        if not len(samples):
            continue
        first = samples[0]
        for stream in streams:
            if not first.has(stream):
                lacking.setdefault(stream, SUPPLY.get(stream, "a source with this stream"))
        for field in annotations:
            if getattr(first, field) is None:
                lacking.setdefault(field, f"{SUPPLY[field]} (split {split}, {first.name!r})")
    train = splits.get("train")
    if pose_formats and "poses" in streams and "poses" not in lacking and train:
        have = sorted(train[0].poses or {})
        absent = [f for f in pose_formats if f not in have]
        if absent:
            lacking[f"poses {absent}"] = (f"the data gives the pose format(s) {have} only; the "
                                          f"others come from pose estimators the keypoints "
                                          f"cannot stand in for")
    return list(lacking.items())


def check_streams(method: str, dataset: str, splits: Mapping[str, Sequence[Sample]],
                  streams: Sequence[str], pose_formats: Sequence[str] = (),
                  annotations: Sequence[str] = (),
                  hints: Mapping[str, str] | None = None) -> None:
    """Raise :class:`MissingStreamError` naming ``method``, each missing stream and its remedy;
    ``hints``: the method's own way round a missing stream (e.g. an ablation that skips it)."""
    lacking = missing(method, dataset, splits, streams, pose_formats, annotations)
    if not lacking:
        return
    parts = []
    for what, supply in lacking:
        hint = (hints or {}).get(what.split()[0])
        parts.append(f"{what!s}: {supply}" + (f"; or run without it: {hint}" if hint else ""))
    raise MissingStreamError(f"{method} needs data that dataset {dataset!r} cannot give: "
                             + " | ".join(parts))
