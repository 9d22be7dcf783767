"""Render one sample to a PNG: a grid of frames with keypoints drawn, gloss and text in the title.

Used by ``signbench data show``. Frames are sampled evenly over the video; each panel shows the
frame, the keypoints whose confidence is at least ``min_confidence`` (hands, body and face in
different colours, bones as lines) and the frame label (rest / sign / fingerspelling). Works for
any ``Sample``: panels without frames show the keypoints on a grey canvas, and a sample without
either is an error. Matplotlib draws off screen (Agg canvas, no pyplot state); the PNG is written
atomically. Glyphs the default font lacks (e.g. Chinese) render as boxes; the warnings about them
are silenced.
"""

from __future__ import annotations

import io
import os
import textwrap
import warnings
from pathlib import Path

import numpy as np

from harness.data.keypoints import FACE, LEFT_HAND, NUM_SIGNFUSE, RIGHT_HAND, SIGNFUSE_75_EDGES
from harness.data.sample import FRAME_LABEL_NAMES, Sample
from harness.files import atomic_write_bytes

_GROUP_COLOURS = (("left hand", LEFT_HAND, "tab:orange"), ("right hand", RIGHT_HAND, "tab:red"),
                  ("body", slice(42, 65), "tab:cyan"), ("face", FACE, "tab:pink"))


def render_sample_png(sample: Sample, num_frames: int = 8, columns: int = 4,
                      min_confidence: float = 0.3) -> bytes:
    """PNG bytes of a frame grid for ``sample``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frames = sample.frames
    keypoints = sample.keypoints
    if frames is None and keypoints is None:
        raise ValueError(f"sample {sample.name!r} has neither frames nor keypoints to show")
    total = len(frames) if frames is not None else len(keypoints)
    if total == 0:
        raise ValueError(f"sample {sample.name!r} has zero frames")
    labels = sample.frame_labels
    picks = np.unique(np.linspace(0, total - 1, min(num_frames, total)).round().astype(int))
    rows = -(-len(picks) // columns)
    fig = Figure(figsize=(2.4 * columns, 2.6 * rows + 1.2), dpi=100)
    FigureCanvasAgg(fig)
    for k, t in enumerate(picks):
        ax = fig.add_subplot(rows, columns, k + 1)
        if frames is not None:
            h, w = frames.shape[1:3]
            ax.imshow(frames[t], interpolation="nearest")
        else:
            h = w = 256
            ax.imshow(np.full((h, w, 3), 200, np.uint8))
        if keypoints is not None and keypoints.shape[1] == NUM_SIGNFUSE:
            kp = keypoints[t]
            ok = kp[:, 2] >= min_confidence
            for a, b in SIGNFUSE_75_EDGES:
                if ok[a] and ok[b]:
                    ax.plot([kp[a, 0] * w, kp[b, 0] * w], [kp[a, 1] * h, kp[b, 1] * h],
                            color="white", linewidth=0.5, alpha=0.7)
            for _, part, colour in _GROUP_COLOURS:
                sel = np.zeros(NUM_SIGNFUSE, bool)
                sel[part] = True
                sel &= ok
                ax.scatter(kp[sel, 0] * w, kp[sel, 1] * h, s=4, c=colour, linewidths=0)
        elif keypoints is not None:
            kp = keypoints[t]
            ok = kp[:, 2] >= min_confidence
            ax.scatter(kp[ok, 0] * w, kp[ok, 1] * h, s=4, c="tab:red", linewidths=0)
        label = FRAME_LABEL_NAMES[int(labels[t])] if labels is not None else ""
        ax.set_title(f"t={t} {label}".strip(), fontsize=8)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.axis("off")
    title = f"{sample.name}  ({sample.signer or 'unknown signer'}, {total} frames)"
    width = 30 * columns
    if sample.gloss:
        title += "\n" + textwrap.fill(f"gloss: {sample.gloss}", width)
    if sample.text:
        title += "\n" + textwrap.fill(f"text: {sample.text}", width)
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        fig.tight_layout()
        fig.savefig(buf, format="png")
    return buf.getvalue()


def show_sample(sample: Sample, out: str | os.PathLike[str], **kw) -> Path:
    """Render ``sample`` (see ``render_sample_png``) and write the PNG to ``out`` atomically."""
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise ValueError(f"show: output file must end in .png, got {path}")
    return atomic_write_bytes(path, render_sample_png(sample, **kw))
