"""End to end: `signbench data export` writes PHOENIX-2014T files that `phoenix14t` reads back."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cli import main
from harness.data import load_dataset


def test_export_then_read_with_the_phoenix_reader(tmp_path, capsys):
    root = tmp_path / "phoenix"
    code = main(["data", "export", "--format", "phoenix14t", "--out", str(root), "--lang", "de",
                 "--size", "3", "--quiet"])
    assert code == 0, capsys.readouterr().err
    for split in ("train", "dev", "test"):
        exported = load_dataset("synthetic", split, lang="de", size=3)
        read = load_dataset("phoenix14t", split, root=root)
        assert len(read) == len(exported) == 3
        for original, copy in zip(exported, read, strict=True):
            assert copy.name == original.name
            assert copy.gloss == original.gloss
            assert copy.text == original.text
            assert copy.num_frames == original.num_frames
            np.testing.assert_array_equal(copy.frames, original.frames)  # PNG is lossless


def test_reader_error_on_exported_data_names_the_folder(tmp_path, capsys):
    root = tmp_path / "phoenix"
    assert main(["data", "export", "--format", "phoenix14t", "--out", str(root), "--size", "1",
                 "--splits", "dev", "--quiet"]) == 0
    sample = load_dataset("phoenix14t", "dev", root=root)[0]
    frames = sorted((root / "features" / "fullFrame-210x260px" / "dev" / sample.name).glob("*.png"))
    frames[-1].unlink()  # a frame lost after listing: loading must fail loudly, never pad
    with pytest.raises((ValueError, FileNotFoundError), match=sample.name):
        _ = sample.frames
