"""Every method through ``signbench run`` on exported dataset layouts (issue 17 item 3, issue 22).

The synthetic corpus is exported in the PHOENIX-2014T layout (frames + a keypoints folder of
OpenPose JSON) and as ``.pose`` files; ``signbench run --dataset <format> --root <exported>``
then trains, evaluates and measures each method at the smallest settings and must write a run
JSON with scores. A method whose streams the data cannot give fails before training with one
error naming the method, the stream and the remedy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli import main
from harness.data.export import export_dataset
from harness.data.needs import MissingStreamError
from harness.runner import run_method

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--epochs", "5", "--train-size", "2", "--eval-size", "1", "--measure-iters", "1",
         "--quiet"]
#: the one override a method needs on PHOENIX + keypoints (SignX: the format keypoints give)
OVERRIDES = {"signx": ["--set", 'formats=[["mediapipe", 258]]'],
             "signbind": ["--labels", "frame_labels.tsv"]}  # the export's true frame labels


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    for fmt in ("phoenix14t", "pose", "how2sign"):
        export_dataset(fmt, root / fmt, size=2, resolution=32, progress=False)
    return root


def _run(tmp_path, dataset, root, method, extra=()):
    out, results = tmp_path / "runs", tmp_path / "results"
    argv = ["run", "--methods", method, "--dataset", dataset, "--root", str(root),
            "--out", str(out), "--results", str(results), *SMALL, *extra]
    assert main(argv) == 0, (out / "failures" / f"{method}.json").read_text() \
        if (out / "failures" / f"{method}.json").exists() else "run failed"
    runs = [json.loads(p.read_text()) for p in out.rglob(f"{method}__*.json")]
    assert {r["split"] for r in runs} == {"dev", "test"}
    for run in runs:
        assert run["dataset"] == dataset and run["method"] == method
        scores = run["accuracy"]
        assert ("bleu4" in scores) or ("wer" in scores)
        assert all(isinstance(v, float) for k, v in scores.items() if k in ("bleu4", "wer"))
        assert run["config"]["data"]["train_size"] == 2
    return runs


@pytest.mark.parametrize("method", ["hfa", "hypersign", "signfuse", "signx", "signbind"])
def test_every_method_runs_on_the_phoenix_layout(tmp_path, exported, method):
    runs = _run(tmp_path, "phoenix14t", exported / "phoenix14t", method,
                OVERRIDES.get(method, ()))
    data = runs[0]["config"]["data"]
    assert set(data["streams"]) <= {"frames", "keypoints", "poses", "lips", "frame_labels"}
    if method == "signbind":
        assert data["options"] == {"labels": "frame_labels.tsv"}


def test_a_keypoint_method_trains_on_pose_files(tmp_path, exported):
    runs = _run(tmp_path, "pose", exported / "pose", "hypersign", ["--set", "stream=keypoints"])
    assert runs[0]["config"]["data"]["streams"] == ["keypoints"]
    losses = runs[0]["training"]["history"]
    assert losses and all(h["losses"]["loss"] == h["losses"]["loss"] for h in losses)  # finite


@pytest.mark.parametrize("fmt,kw", [("csl-daily", {"trust_pickle": True}), ("how2sign", {})])
def test_exported_layouts_read_back(tmp_path, exported, fmt, kw):
    from harness.data import load_dataset
    from harness.data.synthetic import SyntheticCorpus

    root = exported / "how2sign" if fmt == "how2sign" else tmp_path
    if fmt != "how2sign":
        export_dataset(fmt, root, size=2, resolution=32, progress=False)
    corpus = SyntheticCorpus("test", size=2, resolution=32)
    data = load_dataset(fmt, "test", root=root, **kw)
    assert len(data) == 2
    for sample, ref in zip(data, (corpus[0], corpus[1]), strict=True):
        assert (sample.name, sample.text, sample.num_frames) == (ref.name, ref.text,
                                                                  ref.num_frames)
        assert sample.gloss == (None if fmt == "how2sign" else ref.gloss)
        hands = ref.keypoints[:, :42]
        seen = hands[..., 2] > 0
        np.testing.assert_allclose(sample.keypoints[:, :42][seen][:, :2], hands[seen][:, :2],
                                   atol=1e-4)
        if fmt == "csl-daily":
            assert sample.frames.shape == ref.frames.shape  # JPEG: lossy, same size
            assert sample.lips.shape == ref.lips.shape


def test_missing_streams_are_one_error_before_training(tmp_path, exported):
    with pytest.raises(MissingStreamError) as err:
        run_method("signbind", dataset="how2sign", root=exported / "how2sign",
                   out=tmp_path, train_size=2, eval_size=1, progress=False)
    message = str(err.value)
    assert message.startswith("signbind needs data that dataset 'how2sign' cannot give")
    assert "frames:" in message and "lips:" in message and "--keypoints-dir" in message
    assert "--set use_lipreading=false" in message
    assert not list(tmp_path.rglob("checkpoints"))  # it failed before training
    with pytest.raises(MissingStreamError, match=r"signx needs data .* poses \['dwpose', "
                                                 r"'smplerx', 'primedepth', 'sapiens'\].*"
                                                 r"formats=\[\[\"mediapipe\", 258\]\]"):
        run_method("signx", dataset="phoenix14t", root=exported / "phoenix14t", out=tmp_path,
                   train_size=2, eval_size=1, progress=False)
    with pytest.raises(MissingStreamError, match=r"hfa needs data .*'how2sign'.* frames"):
        run_method("hfa", dataset="how2sign", root=exported / "how2sign", out=tmp_path,
                   train_size=2, eval_size=1, progress=False)


def test_reader_options_are_refused_for_the_synthetic_corpus(tmp_path, capsys):
    assert main(["run", "--methods", "hfa", "--trust-pickle", "--labels", "x.tsv",
                 "--out", str(tmp_path)]) == 2
    assert "--labels, --trust-pickle apply to real datasets" in capsys.readouterr().err
