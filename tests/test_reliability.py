"""Hostile-user checks of issue 23 (the README "Reliability" table): typed ``--set`` values,
``signbench score`` on hostile input, ``--lang`` outside the supported set, a directory where a
file is expected, the checkpoint fingerprint, and a frozen-feature cache that does not depend on
the batch a sample first came in. Exact resume after SIGKILL: ``tests/test_resume.py``."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import synthetic_split
from test_trainer import make_method

import baselines
from harness.cli import main
from harness.cli.common import parse_overrides
from harness.data.batching import collate
from harness.method import ConfigError
from harness.metrics import translation_scores
from harness.metrics.tokenize import MAX_LINE_TOKENS
from harness.text import train_tokenizer
from harness.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def hypersign_with(**overrides):
    return baselines.get_method("hypersign", "tiny", **overrides)


# ------------------------------------------------------------------------------ typed --set


@pytest.mark.parametrize(("text", "expected"), [
    ("False", False), ("false", False), ("FALSE", False), ("0", False), ("no", False),
    ("No", False), ("true", True), ("True", True), ("1", True), ("YES", True)])
def test_set_booleans_parse_in_any_case(text, expected):
    overrides = parse_overrides([f"use_sst={text}"])
    assert hypersign_with(**overrides).config.use_sst is expected


@pytest.mark.parametrize(("item", "field", "expected"), [
    ("use_sst=maybe", "use_sst", "bool"), ("use_sst=2", "use_sst", "bool"),
    ("use_sst=", "use_sst", "bool"), ("d_model=abc", "d_model", "int"),
    ("d_model=1.5", "d_model", "int"), ("lr=fast", "lr", "float"), ("lr=nan", "lr", "float"),
    ("rgb_channels=[4,x]", "rgb_channels", "tuple[int, ...]"),
    ("mbart_layers=[1,2,3]", "mbart_layers", "tuple[int, int]"),
    ("sst_scale=big", "sst_scale", "float | None")])
def test_set_bad_values_name_method_field_value_and_type(item, field, expected):
    overrides = parse_overrides([item])
    with pytest.raises(ConfigError) as err:
        hypersign_with(**overrides)
    message = str(err.value)
    value = item.partition("=")[2]
    assert message.startswith("hypersign: ") and field in message and expected in message
    assert repr(overrides[field]) in message or value in message


def test_set_numbers_tuples_optionals_and_choices():
    cfg = hypersign_with(**parse_overrides(
        ["d_model=64", "lr=1e-3", "rgb_channels=4,8", "mbart_layers=[1,1]", "init=none",
         "sst_scale=0.5"])).config
    assert (cfg.d_model, cfg.lr, cfg.rgb_channels, cfg.mbart_layers) == (64, 1e-3, (4, 8),
                                                                         (1, 1))
    assert cfg.init is None and cfg.sst_scale == 0.5
    with pytest.raises(ConfigError, match=r"hypersign: .*fusion = 'bogus'; expected one of"):
        hypersign_with(fusion="bogus")
    with pytest.raises(ConfigError, match=r"hypersign: unknown override\(s\) \['nope'\]"):
        hypersign_with(nope=1)


def test_every_config_field_of_every_method_takes_its_own_default():
    """The typed parser knows every field type the five configs use: each default parses back
    to itself, with its type (tuples of tuples, optionals, dicts included)."""
    from dataclasses import fields

    from harness.method import builder_class, registered

    baselines.list_methods()
    for key in ("hypersign", "signfuse", "hfa", "signx", "signbind"):
        cls = builder_class(registered()[key])
        base = cls.config_class()
        defaults = {f.name: getattr(base, f.name) for f in fields(cls.config_class)}
        parsed = cls.coerce_overrides(defaults)
        for name, value in defaults.items():
            assert parsed[name] == value and type(parsed[name]) is type(value), (key, name)


def test_set_variant_name_is_the_typed_value(tmp_path):
    """``use_sst=False`` and ``use_sst=false`` are one run: the variant uses the typed value."""
    from harness.runner import method_class, variant_name

    cls = method_class("hypersign")
    a = variant_name(cls.coerce_overrides(parse_overrides(["use_sst=False"])))
    b = variant_name(cls.coerce_overrides(parse_overrides(["use_sst=false"])))
    assert a == b == "use_sst=False"


# ------------------------------------------------------------------------ score, hostile input


def _score(tmp_path, hyp: bytes, ref: bytes, *args: str, capsys=None):
    (tmp_path / "h.txt").write_bytes(hyp)
    (tmp_path / "r.txt").write_bytes(ref)
    return main(["score", "--hyp", str(tmp_path / "h.txt"), "--ref", str(tmp_path / "r.txt"),
                 "--json", *args])


def test_score_strips_a_bom_and_says_so(tmp_path, capsys):
    text = b"am tag wechselhaft\nim norden regen\n"
    assert _score(tmp_path, b"\xef\xbb\xbf" + text, text) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["bleu4"] == pytest.approx(100.0)
    assert "byte-order mark stripped" in out.err and "h.txt" in out.err


def test_score_refuses_overlong_lines_naming_file_and_line(tmp_path, capsys):
    long = " ".join(["wort"] * (MAX_LINE_TOKENS + 1))
    hyp = f"kurz\n{long}\n".encode()
    assert _score(tmp_path, hyp, b"kurz\nauch kurz\n") == 2
    err = capsys.readouterr().err
    assert "h.txt: line 2 has 1001 tokens" in err and str(MAX_LINE_TOKENS) in err
    # the metric itself refuses too (bounded memory for Python callers), naming the index
    with pytest.raises(ValueError, match="references: line 1 has"):
        translation_scores(["a"], [long])
    # exactly at the limit is scored
    edge = " ".join(["wort"] * MAX_LINE_TOKENS)
    assert translation_scores([edge], [edge])["bleu4"] == pytest.approx(100.0)


def test_score_and_run_refuse_unsupported_languages(tmp_path, capsys):
    assert _score(tmp_path, b"a b\n", b"a b\n", "--lang", "xx") == 2
    assert "language 'xx'" in capsys.readouterr().err
    assert _score(tmp_path, b"a b\n", b"a b\n", "--lang", "zh-CN") == 0
    capsys.readouterr()
    assert main(["run", "--methods", "hypersign", "--lang", "xx", "--out", str(tmp_path)]) == 2
    assert "no scoring protocol" in capsys.readouterr().err
    assert main(["run", "--methods", "hypersign", "--lang", "ja", "--out", str(tmp_path)]) == 2
    assert "synthetic corpus speaks" in capsys.readouterr().err
    assert not any(tmp_path.glob("hypersign*"))  # refused before anything ran


def test_directory_for_a_file_is_named_a_directory(tmp_path, capsys):
    (tmp_path / "r.txt").write_text("a\n")
    assert main(["score", "--hyp", str(tmp_path), "--ref", str(tmp_path / "r.txt")]) == 2
    assert f"{tmp_path} is a directory" in capsys.readouterr().err
    assert main(["score", "--hyp", str(tmp_path / "nope.txt"), "--ref", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["leaderboard", "--bench", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "is a directory" in capsys.readouterr().err


# ----------------------------------------------------------------------- resume fingerprint


def test_resume_refuses_other_settings_naming_them(tmp_path):
    from test_trainer import toy_data

    tr, dv, tok = toy_data()
    cfg = {"batch_size": 8, "progress": False, "checkpoint_dir": tmp_path}
    Trainer(make_method(tok, epochs=(1, 1)), tr, dv,
            TrainConfig(**cfg, settings={"resolution": 16})).fit()
    with pytest.raises(ValueError) as err:
        Trainer(make_method(tok, epochs=(1, 1)), tr, dv,
                TrainConfig(**cfg, resume=True, settings={"resolution": 32})).fit()
    assert "resolution: checkpoint 16, this run 32" in str(err.value)
    with pytest.raises(ValueError, match=r"stages\[0\]\.lr: checkpoint 0\.003, this run 0\.01"):
        Trainer(make_method(tok, epochs=(1, 1), lr=1e-2), tr, dv,
                TrainConfig(**cfg, resume=True, settings={"resolution": 16})).fit()
    Trainer(make_method(tok, epochs=(1, 1)), tr, dv,  # the same settings resume
            TrainConfig(**cfg, resume=True, settings={"resolution": 16})).fit()


def test_runner_fingerprint_covers_resolution_sizes_and_overrides(tmp_path, monkeypatch):
    from harness import runner

    seen = {}

    class Stop(Exception):
        pass

    def fake_trainer(method, train, dev, cfg, **kw):
        seen.update(cfg.settings)
        raise Stop

    monkeypatch.setattr("harness.train.Trainer", fake_trainer)
    with pytest.raises(Stop):
        runner.run_method("hypersign", out=tmp_path, train_size=4, eval_size=2, resolution=16,
                          overrides={"d_model": "32", "mbart_heads": 2}, progress=False)
    assert seen["resolution"] == 16 and seen["train_size"] == 4 and seen["eval_size"] == 2
    assert seen["overrides"] == {"d_model": 32, "mbart_heads": 2}
    assert {"dataset", "lang", "profile", "backend"} <= set(seen)


class _Kill(Exception):
    pass


def test_hook_state_survives_a_resume(tmp_path):
    """What ``on_epoch_end`` keeps in memory (SignX's top-k snapshots) is saved with every
    checkpoint (``resume_state``) and restored on resume, so the resumed run ends the same."""
    from test_trainer import ToySeq2Seq, toy_data

    class Remembering(ToySeq2Seq):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.seen: list[float] = []

        def on_epoch_end(self, record):
            self.seen.append(record["losses"]["loss"])

        def resume_state(self):
            return {"seen": torch.tensor(self.seen, dtype=torch.float64)}

        def load_resume_state(self, state):
            self.seen = state["seen"].tolist()

    tr, dv, tok = toy_data()

    def run(ckdir, resume=False, callbacks=()):
        torch.manual_seed(0)
        m = Remembering(tokenizer=tok, epochs=(1, 3))
        cfg = TrainConfig(batch_size=8, seed=1, progress=False, checkpoint_dir=ckdir,
                          checkpoint_every_steps=4, resume=resume, callbacks=list(callbacks))
        return m, Trainer(m, tr, dv, cfg).fit()

    ref, _ = run(tmp_path / "a")

    def kill(trainer, state, losses):
        if trainer.global_step == 17:  # 2nd epoch of stage 2, after the step-16 checkpoint
            raise _Kill

    with pytest.raises(_Kill):
        run(tmp_path / "b", callbacks=[kill])
    resumed, result = run(tmp_path / "b", resume=True)
    assert result.resumed_from is not None and len(ref.seen) == 4
    assert resumed.seen == ref.seen


def test_signx_averager_state_round_trips_through_a_checkpoint(tmp_path):
    import io

    from baselines.signx.averaging import TopKAverager

    module = torch.nn.Linear(3, 2)
    a = TopKAverager(k=2)
    for wer in (30.0, 20.0, 25.0):
        with torch.no_grad():
            module.weight.add_(1.0)
        a.consider(wer, module)
    buffer = io.BytesIO()
    torch.save({"method_state": {"averager": a.state()}}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["method_state"]["averager"]
    b = TopKAverager(k=2)
    b.load_state(loaded)
    assert b.metrics == a.metrics == [20.0, 25.0]
    for key, value in a.average().items():
        assert torch.equal(b.average()[key], value)


# ------------------------------------------------------------- frozen-feature cache, exactness


def test_hypersign_cached_features_do_not_depend_on_the_batch():
    """The bug behind the resume drift: a sample's cached extractor output depended on the batch
    it was first extracted in (padding / GEMM shape). Now it is the same bits in any batch."""
    train = synthetic_split("train", 12, resolution=16, seed=5)
    tok = train_tokenizer([s.text for s in train], vocab_size=200, lang="de")
    small = dict(d_model=32, rgb_channels=(4, 8), rgb_pool=2, keypoint_hidden=32,
                 mbart_layers=(1, 1), mbart_heads=2, mbart_ffn=64, mbart_max_positions=128,
                 sst_tokens=16, sst_dim=16)
    torch.manual_seed(0)
    m = baselines.get_method("hypersign", "tiny", tokenizer=tok, **small)
    for p in m.parameters():
        p.requires_grad_(False)  # frozen extractors: the cached path
    m.train()
    streams = ("frames", "keypoints")

    def features(samples, target):
        m.clear_feature_cache()
        out = m.extract(collate(samples, streams=streams))
        i = [s.name for s in samples].index(target)
        return {k: (x[i][mask[i]].clone()) for k, (x, mask) in out.items()}

    target = train[0].name
    alone = features([train[0]], target)
    in_batch = features(train[:8], target)
    other = features([train[9], train[0], train[3]], target)
    for k in alone:
        assert torch.equal(alone[k], in_batch[k]) and torch.equal(alone[k], other[k])
    # and the cache hit hands on what the miss did
    m.clear_feature_cache()
    first = m.extract(collate(train[:8], streams=streams))
    again = m.extract(collate(train[:8], streams=streams))
    for k in first:
        assert torch.equal(first[k][0], again[k][0])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
