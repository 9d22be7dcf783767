"""Trainer tests on a toy keypoint → text seq2seq (independent of the real methods).

The toy method (``ToySeq2Seq``, registered as ``toy_seq2seq``) is defined here so the trainer and
runner are tested on their own; ``tests/test_runner.py`` reuses it. Run as a script under
``torchrun`` this file is also the DDP worker of ``test_ddp_two_processes_match_one``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import baselines
from harness.method import SLTMethod, Stage, registered
from harness.train import (
    CheckpointError,
    TrainConfig,
    Trainer,
    TrainingError,
    load_checkpoint,
    lr_lambda,
    make_scheduler,
)

TOY_KEY = "toy_seq2seq"


class ToySeq2Seq(SLTMethod):
    """Keypoints (x, y of 75 joints, 4× temporal average pooling) → 1-layer Transformer
    encoder-decoder → text. Greedy decoding whatever the beam size (a toy). The loss is the mean
    over samples of each sample's mean token cross-entropy, so DDP's gradient averaging over
    equal per-rank batches equals the single-process gradient."""

    key = TOY_KEY
    task = "translation"
    inputs = ("keypoints",)
    needs_text = True

    def __init__(self, profile: str = "tiny", tokenizer=None, d_model: int = 64,
                 dropout: float = 0.0, epochs: tuple[int, ...] = (1, 5), lr: float = 3e-3,
                 fail: bool = False, batch_size: int | None = None) -> None:
        super().__init__(profile)
        if fail:
            raise RuntimeError("toy method asked to fail (fail=True)")
        if tokenizer is None:
            raise ValueError("ToySeq2Seq needs tokenizer=")
        self.tokenizer = tokenizer
        self.epochs = tuple(epochs)
        self.lr = lr
        if batch_size is not None:
            self.batch_size = batch_size
        self.max_len = 30
        self.beam_size = 1
        v = tokenizer.vocab_size
        self.frontend = nn.Sequential(nn.Linear(150, d_model), nn.ReLU(),
                                      nn.Linear(d_model, d_model))
        self.pos = nn.Parameter(torch.randn(256, d_model) * 0.02)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model, 4, 2 * d_model, dropout, batch_first=True),
            num_layers=1, enable_nested_tensor=False)
        self.embed = nn.Embedding(v, d_model)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d_model, 4, 2 * d_model, dropout, batch_first=True),
            num_layers=1)
        self.head = nn.Linear(d_model, v)

    def stages(self) -> list[Stage]:
        names = ("warmup", "main")
        return [Stage(name=names[i % 2] if len(self.epochs) <= 2 else f"s{i}", epochs=e,
                      lr=self.lr, scheduler="constant" if i == 0 else "cosine",
                      warmup_steps=2 if i == 0 else 0, monitor="bleu4")
                for i, e in enumerate(self.epochs)]

    def encode(self, batch):
        with self.nvtx("frontend"):
            kp = batch["keypoints"][..., :2].flatten(2)  # (B, T, 150)
            mask = batch.masks["keypoints"]
            b, t, _ = kp.shape
            pad = (-t) % 4
            kp = nn.functional.pad(kp, (0, 0, 0, pad))
            m = nn.functional.pad(mask, (0, pad)).view(b, -1, 4)
            kp = kp.view(b, -1, 4, 150)
            kp = (kp * m[..., None]).sum(2) / m.sum(2, keepdim=True).clamp(min=1)
            valid = m.any(2)
            x = self.frontend(kp) + self.pos[: kp.shape[1]]
        with self.nvtx("encoder"):
            memory = self.encoder(x, src_key_padding_mask=~valid)
        return memory, valid

    def decode(self, tokens, memory, valid):
        L = tokens.shape[1]
        causal = torch.triu(torch.full((L, L), float("-inf"), device=tokens.device), 1)
        h = self.decoder(self.embed(tokens) + self.pos[:L], memory, tgt_mask=causal,
                         memory_key_padding_mask=~valid)
        return self.head(h)

    def training_step(self, batch, state):
        memory, valid = self.encode(batch)
        ids = batch.text_ids
        with self.nvtx("decoder"):
            logits = self.decode(ids[:, :-1], memory, valid)
        target = ids[:, 1:]
        ce = nn.functional.cross_entropy(logits.transpose(1, 2), target,
                                         ignore_index=self.tokenizer.pad_id, reduction="none")
        keep = (target != self.tokenizer.pad_id).float()
        per_sample = (ce * keep).sum(1) / keep.sum(1).clamp(min=1)
        loss = per_sample.mean()
        return {"loss": loss, "ce": loss.detach()}

    @torch.no_grad()
    def generate(self, batch, beam_size=5, length_penalty=1.0, max_len=60):
        memory, valid = self.encode(batch)
        b = memory.shape[0]
        tok = self.tokenizer
        seq = torch.full((b, 1), tok.bos_id, dtype=torch.long, device=memory.device)
        done = torch.zeros(b, dtype=torch.bool, device=memory.device)
        with self.nvtx("beam_search"):
            for _ in range(min(max_len, self.max_len)):
                nxt = self.decode(seq, memory, valid)[:, -1].argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, tok.pad_id), nxt)
                seq = torch.cat([seq, nxt[:, None]], 1)
                done |= nxt == tok.eos_id
                if done.all():
                    break
        out = []
        for row in seq[:, 1:].tolist():
            ids = []
            for i in row:
                if i in (tok.eos_id, tok.pad_id):
                    break
                ids.append(i)
            out.append(tok.decode(ids))
        return out

    def param_report(self):
        from harness.measure import count_parameters

        return {name: count_parameters(getattr(self, name))["total"]
                for name in ("frontend", "encoder", "decoder", "head")}


if TOY_KEY not in registered():
    baselines.register(TOY_KEY)(ToySeq2Seq)


# ------------------------------------------------------------------------------------- fixtures


def toy_data(train: int = 48, dev: int = 8):
    from harness.data import load_dataset
    from harness.runner import materialize
    from harness.text import train_tokenizer

    tr = materialize(load_dataset("synthetic", "train", size=train, resolution=16),
                     ("keypoints",), progress=False)
    dv = materialize(load_dataset("synthetic", "dev", size=dev, resolution=16),
                     ("keypoints",), progress=False)
    tok = train_tokenizer([s.text for s in tr], vocab_size=300, lang="de")
    return tr, dv, tok


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data():
    return toy_data()


def make_method(tok, seed: int = 0, **kw) -> ToySeq2Seq:
    torch.manual_seed(seed)
    return ToySeq2Seq(tokenizer=tok, **kw)


def weights(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


# ---------------------------------------------------------------------------------------- tests


def test_schedulers_follow_their_formulas():
    f = lr_lambda("cosine", total_steps=10, warmup_steps=2)
    assert [round(f(s), 6) for s in (0, 1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(10) == pytest.approx(0.0, abs=1e-12)
    noam = lr_lambda("noam", total_steps=100, warmup_steps=4)
    assert noam(3) == pytest.approx(1.0)  # peak at s = warmup
    assert noam(0) == pytest.approx(0.25)
    assert noam(15) == pytest.approx(0.5)  # (16/4) ** -0.5
    const = lr_lambda("constant", total_steps=5, warmup_steps=0)
    assert all(const(s) == 1.0 for s in range(5))
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = make_scheduler(opt, "onecycle", total_steps=10, warmup_steps=3)
    lrs = []
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert max(lrs) == pytest.approx(1.0, rel=1e-2) and lrs[-1] < 0.05
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler(opt, "linear", total_steps=3)


def test_training_reduces_loss_and_beats_untrained(data, tmp_path):
    from harness.evaluate import evaluate_split

    tr, dv, tok = data
    method = make_method(tok, epochs=(1, 11))
    before = evaluate_split(method, dv, beam_size=1, progress=False)
    cfg = TrainConfig(batch_size=8, seed=0, progress=False, checkpoint_dir=tmp_path / "ck")
    result = Trainer(method, tr, dv, cfg).fit()
    losses = [h["losses"]["loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0], losses
    after = evaluate_split(method, dv, beam_size=1, progress=False,
                           outputs_path=tmp_path / "dev.jsonl")
    assert after.scores["bleu4"] > before.scores["bleu4"] + 1.0, (before.scores, after.scores)
    assert after.scores["bleu1"] > before.scores["bleu1"] + 5.0
    # the best dev epoch of the last stage was reloaded for the final evaluation
    best = result.best_dev
    assert best["metric"] == "bleu4" and best["stage"] == "main"
    dev_scores = [h["dev"]["bleu4"] for h in result.history if h["stage"] == "main"]
    assert best["value"] == pytest.approx(max(dev_scores))
    assert after.scores["bleu4"] == pytest.approx(best["value"], abs=1e-6)
    rows = [json.loads(x) for x in (tmp_path / "dev.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows] == [s.name for s in dv]
    assert {"name", "reference", "hypothesis"} == set(rows[0])
    assert result.steps == 12 * 6 and result.epochs == 12


class _Kill(Exception):
    pass


def test_resume_after_kill_replays_identically(data, tmp_path):
    tr, dv, tok = data
    kw = {"epochs": (1, 2), "dropout": 0.1}

    def run(ckdir, callbacks=(), resume=False):
        m = make_method(tok, seed=1, **kw)
        cfg = TrainConfig(batch_size=8, seed=3, progress=False, checkpoint_dir=ckdir,
                          checkpoint_every_steps=4, resume=resume, callbacks=list(callbacks))
        return m, Trainer(m, tr, dv, cfg).fit()

    ref_m, ref = run(tmp_path / "a")

    def kill(trainer, state, losses):
        if trainer.global_step == 10:  # mid-epoch (6 steps/epoch), 2 steps after a checkpoint
            raise _Kill

    with pytest.raises(_Kill):
        run(tmp_path / "b", [kill])
    meta = load_checkpoint(tmp_path / "b").meta
    assert meta["position"] == {"stage_index": 1, "epoch": 0, "batch": 2}
    m, res = run(tmp_path / "b", resume=True)
    assert res.resumed_from["global_step"] == 8
    assert [h["losses"] for h in res.history] == [h["losses"] for h in ref.history]
    assert res.final_losses == ref.final_losses
    a, b = weights(ref_m), weights(m)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-7)
    assert res.best_dev == ref.best_dev

    # kill right after an epoch-end checkpoint (no step checkpoint): resume replays too
    def kill_epoch(trainer, state, losses):
        if trainer.global_step == 7:
            raise _Kill

    m2 = make_method(tok, seed=1, **kw)
    cfg = TrainConfig(batch_size=8, seed=3, progress=False, checkpoint_dir=tmp_path / "c",
                      callbacks=[kill_epoch])
    with pytest.raises(_Kill):
        Trainer(m2, tr, dv, cfg).fit()
    m2, res2 = run(tmp_path / "c", resume=True)
    assert res2.resumed_from["checkpoint"].startswith("e-")  # the epoch-end checkpoint
    assert [h["losses"] for h in res2.history] == [h["losses"] for h in ref.history]
    for k, v in weights(m2).items():
        torch.testing.assert_close(v, a[k], rtol=0, atol=1e-7)


def test_resume_refuses_other_settings_and_bad_losses(data, tmp_path):
    tr, dv, tok = data
    m = make_method(tok, epochs=(1, 1))
    Trainer(m, tr, dv, TrainConfig(batch_size=8, progress=False,
                                   checkpoint_dir=tmp_path)).fit()
    m = make_method(tok, epochs=(1, 1))
    with pytest.raises(ValueError, match="other settings"):
        Trainer(m, tr, dv, TrainConfig(batch_size=4, progress=False, checkpoint_dir=tmp_path,
                                       resume=True)).fit()
    (tmp_path / "last.json").write_text('{"dir": "nope"}')
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        TrainConfig(resume=True)

    class NoCE(ToySeq2Seq):
        def stages(self):
            return [Stage("only", 1, losses=("loss", "kl"))]

    torch.manual_seed(0)
    bad = NoCE(tokenizer=tok)
    with pytest.raises(TrainingError, match=r"did not return the losses \['kl'\]"):
        Trainer(bad, tr, dv, TrainConfig(progress=False)).fit()


# ------------------------------------------------------------------------------------------ DDP


def _ddp_train(out: Path, batch_size: int) -> dict:
    tr, dv, tok = toy_data(train=32, dev=8)
    m = make_method(tok, seed=0, epochs=(1, 2))
    cfg = TrainConfig(batch_size=batch_size, seed=0, progress=False, bucket_size_multiplier=1,
                      checkpoint_dir=out / "ck")
    result = Trainer(m, tr, dv, cfg).fit()
    from harness.train import distributed

    info = distributed.current()
    if info.is_main:
        from harness.evaluate import evaluate_split

        ev = evaluate_split(m, dv, beam_size=1, progress=False)
        torch.save({"weights": weights(m), "scores": ev.scores, "history": result.history,
                    "world": info.world_size}, out / "result.pt")
    distributed.barrier()
    distributed.cleanup()
    return {}


@pytest.mark.slow
def test_ddp_two_processes_match_one(tmp_path):
    """2 gloo processes with per-rank batch 4 == 1 process with batch 8 (same global batches:
    bucket_size_multiplier=1 makes every global batch the union of the ranks' batches)."""
    one = tmp_path / "one"
    one.mkdir()
    _ddp_train(one, batch_size=8)
    two = tmp_path / "two"
    two.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "0", "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0",
           __file__, "--ddp-worker", str(two)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(one / "result.pt", weights_only=False)
    b = torch.load(two / "result.pt", weights_only=False)
    assert b["world"] == 2 and a["world"] == 1
    for k, v in a["weights"].items():
        # float summation order differs (all-reduce vs one batch); Adam's normalised updates
        # turn ~1e-7 gradient differences into ~1e-4 weight differences after 12 steps
        torch.testing.assert_close(b["weights"][k], v, rtol=0, atol=2e-3)
    for x, y in zip(a["history"], b["history"], strict=True):
        assert y["losses"]["loss"] == pytest.approx(x["losses"]["loss"], rel=1e-4)
    for key in ("bleu1", "bleu4", "rouge_l"):
        assert b["scores"][key] == pytest.approx(a["scores"][key], abs=0.5), (a["scores"],
                                                                              b["scores"])


if __name__ == "__main__" and "--ddp-worker" in sys.argv:
    torch.set_num_threads(1)
    _ddp_train(Path(sys.argv[sys.argv.index("--ddp-worker") + 1]), batch_size=4)


def test_epoch_and_fit_hooks_are_called(data, tmp_path):
    """``on_epoch_end(record)`` after every epoch (with its dev score) and ``on_fit_end()`` once,
    after the best weights are back."""
    tr, dv, tok = data
    model = make_method(tok, epochs=(1, 2))
    seen: list = []
    model.on_epoch_end = lambda record: seen.append(dict(record))
    model.on_fit_end = lambda: seen.append("fit_end")
    result = Trainer(model, tr, dv, TrainConfig(progress=False,
                                                checkpoint_dir=tmp_path / "ck")).fit()
    assert seen[-1] == "fit_end" and seen.count("fit_end") == 1
    records = seen[:-1]
    assert [(r["stage"], r["epoch"]) for r in records] == [("warmup", 0), ("main", 0),
                                                           ("main", 1)]
    assert seen.index("fit_end") == len(records)  # after the last epoch
    assert all("bleu4" in r["dev"] for r in records)
    assert records == result.history
