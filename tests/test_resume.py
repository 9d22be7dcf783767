"""Exact resume (issue 23 item 2): a run SIGKILLed in every training stage and resumed gives
byte-identical outputs and scores to the uninterrupted run.

HyperSign is the method under test because its schedule holds every stage kind the trainer has:
stage 1 trains everything (per-stream CTC pre-training), stage 2 a subset (G2T: gloss embedding
+ mBART), stage 3 the rest with frozen extractors whose outputs are cached per sample (the cache
a resume must rebuild bit for bit), with warm-up + cosine / constant schedules, AdamW state,
dropout RNG and a dev-selected best checkpoint; batches are drawn afresh each epoch, so a cache
rebuilt after a resume meets other batches. One child process is killed four times — in
stage 1 and 2 between step checkpoints, in stage 3 once after an epoch-end checkpoint (the cache
rebuilt from other batches) and once after a step checkpoint — and resumed each time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import os, signal, sys
import torch
torch.set_num_threads(1)
import harness.train.trainer as trainer_module
from harness.runner import run_method

# batches drawn afresh from the shuffled order every epoch (no length buckets): the frozen-feature
# cache a resume rebuilds then comes from other batches (other padding) than the reference's
_post_init = trainer_module.TrainConfig.__post_init__
def _no_buckets(self):
    self.bucket_size_multiplier = 1
    _post_init(self)
trainer_module.TrainConfig.__post_init__ = _no_buckets

out, kill_at, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
small = dict(d_model=32, rgb_channels=(4, 8), rgb_pool=2, keypoint_hidden=32,
             mbart_layers=(1, 1), mbart_heads=2, mbart_ffn=64, mbart_max_positions=128,
             sst_tokens=16, sst_dim=16, pretrain_epochs=1, g2t_epochs=1, epochs=2,
             batch_size=8, warmup_steps=2, pretrain_warmup_steps=2, g2t_warmup_steps=2)

def kill(trainer, state, losses):
    if trainer.global_step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

run_method("hypersign", out=out, train_size=32, eval_size=8, resolution=16, overrides=small,
           resume=resume, progress=False, measure_iters=1, batch_size=8,
           checkpoint_every_steps=3, callbacks=[kill] if kill_at else [])
"""

# 4 steps per epoch; stages: stream_pretrain 1-4, gloss2text 5-8, translation 9-16.
# Step checkpoints every 3 global steps (mid-epoch only), epoch-end checkpoints at 4, 8, 12, 16.
KILLS = (4, 7, 14, 16)  # resumes from s-3, s-6, e-12 (cache rebuilt), s-15


def _child(out: Path, kill_at: int, resume: bool) -> int:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out), str(kill_at),
                           "1" if resume else "0"], env=env, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode


def _results(out: Path) -> dict[str, object]:
    """Per split: the outputs JSONL bytes and the run JSON's scores and training trajectory."""
    found = {}
    for run_json in sorted(out.glob("*/*.json")):
        run = json.loads(run_json.read_text())
        if not str(run.get("schema", "")).startswith("signbench.run"):
            continue  # the gloss vocabulary
        training = {k: run["training"][k] for k in ("history", "final_losses", "best_dev",
                                                    "steps", "epochs")}
        found[run["split"]] = {
            "outputs": (run_json.parent / run["outputs"]).read_bytes(),
            "accuracy": run["accuracy"], "control": run.get("control"), "training": training}
    return found


@pytest.mark.slow
def test_sigkill_in_every_stage_then_resume_is_byte_identical(tmp_path):
    assert _child(tmp_path / "ref", 0, False) == 0
    reference = _results(tmp_path / "ref")
    assert set(reference) == {"dev", "test"}

    out = tmp_path / "killed"
    resumed_from = []
    for i, step in enumerate(KILLS):
        assert _child(out, step, resume=i > 0) == -signal.SIGKILL, f"not killed at {step}"
        last = json.loads(next(out.glob("*/checkpoints/last.json")).read_text())
        resumed_from.append(last["dir"])
        assert last["global_step"] < step  # the kill came before the next checkpoint
    assert resumed_from == ["s-00000003", "s-00000006", "e-00000012", "s-00000015"]
    assert _child(out, 0, resume=True) == 0
    resumed = _results(out)
    for split in ("dev", "test"):
        assert resumed[split]["outputs"] == reference[split]["outputs"], split
        assert resumed[split]["accuracy"] == reference[split]["accuracy"], split
        assert resumed[split]["control"] == reference[split]["control"], split
        assert resumed[split]["training"] == reference[split]["training"], split
