"""``data export`` (PHOENIX-2014T layout) and ``data show`` (sample PNG)."""

from __future__ import annotations

import argparse
import csv

import numpy as np
import pytest
from PIL import Image

from harness.cli import data as data_cli
from harness.data.export import PHOENIX_HEADER, export_phoenix14t
from harness.data.show import show_sample
from harness.data.synthetic import SyntheticCorpus

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signbench")
    data_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_export_writes_phoenix_layout(tmp_path):
    written = export_phoenix14t(tmp_path, lang="de", seed=3, splits=["dev", "test"], size=2,
                                progress=False)
    assert written == {"dev": 2, "test": 2}
    assert not (tmp_path / "annotations/manual/PHOENIX-2014-T.train.corpus.csv").exists()
    for split in ("dev", "test"):
        corpus = SyntheticCorpus(split, lang="de", seed=3, size=2)
        path = tmp_path / f"annotations/manual/PHOENIX-2014-T.{split}.corpus.csv"
        raw = path.read_text(encoding="utf-8")
        assert raw.splitlines()[0] == "name|video|start|end|speaker|orth|translation"
        assert raw.splitlines()[0] == PHOENIX_HEADER
        rows = list(csv.DictReader(raw.splitlines(), delimiter="|"))
        assert len(rows) == 2
        for i, row in enumerate(rows):
            sample = corpus[i]
            assert row == {"name": sample.name, "video": f"{sample.name}/1/*.png",
                           "start": "-1", "end": "-1", "speaker": sample.signer,
                           "orth": sample.gloss, "translation": sample.text}
            folder = tmp_path / "features/fullFrame-210x260px" / split / sample.name
            pngs = sorted(p.name for p in folder.iterdir())
            assert pngs == [f"images{t:04d}.png" for t in range(1, sample.num_frames + 1)]
            for t in (0, sample.num_frames - 1):  # lossless: pixels read back exactly
                image = np.asarray(Image.open(folder / f"images{t + 1:04d}.png").convert("RGB"))
                np.testing.assert_array_equal(image, sample.frames[t])
    assert not list(tmp_path.rglob(".*.tmp"))


def test_export_cli_and_errors(tmp_path, capsys):
    out = tmp_path / "phoenix"
    assert _run(["data", "export", "--format", "phoenix14t", "--out", str(out), "--lang", "zh",
                 "--splits", "test", "--size", "1", "--quiet", "--resolution", "32"]) == 0
    assert "test 1" in capsys.readouterr().out
    rows = (out / "annotations/manual/PHOENIX-2014-T.test.corpus.csv").read_text("utf-8")
    name, *_, translation = rows.splitlines()[1].split("|")
    assert any("\u4e00" <= c <= "\u9fff" for c in translation)
    png = out / "features/fullFrame-210x260px/test" / name / "images0001.png"
    assert Image.open(png).size == (32, 32)
    with pytest.raises(SystemExit):  # argparse rejects an unknown format
        _run(["data", "export", "--format", "phoenix2014", "--out", str(out)])
    with pytest.raises(ValueError, match="--size must be at least 1"):
        _run(["data", "export", "--format", "phoenix14t", "--out", str(out), "--size", "0"])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        export_phoenix14t(blocker, splits=["dev"], size=1, progress=False)


def test_show_writes_png(tmp_path, capsys):
    out = tmp_path / "sample.png"
    assert _run(["data", "show", "1", "--split", "dev", "--lang", "en", "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    width, height = Image.open(out).size
    assert width >= 600 and height >= 400
    assert "synthetic_dev_00001" in capsys.readouterr().out
    by_name = tmp_path / "by_name.png"
    assert _run(["data", "show", "synthetic_dev_00001", "--split", "dev", "--lang", "en",
                 "--out", str(by_name)]) == 0
    assert by_name.read_bytes() == data  # same sample, same rendering
    with pytest.raises(ValueError, match="not a sample name"):
        _run(["data", "show", "nope", "--split", "dev", "--out", str(out)])
    with pytest.raises(ValueError, match="out of range"):
        _run(["data", "show", "99999", "--split", "dev", "--out", str(out)])
    with pytest.raises(ValueError, match=r"must end in \.png"):
        show_sample(SyntheticCorpus("dev", size=1)[0], tmp_path / "x.jpg")
