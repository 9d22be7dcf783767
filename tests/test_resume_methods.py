"""Exact resume for the other four methods (issue 23 item 2): each small run is SIGKILLed in
every training stage and resumed, and must give byte-identical outputs, scores and loss history
to the uninterrupted run (``tests/test_resume.py`` does the same for HyperSign with hand-picked
kill points).

The kill points come from the uninterrupted run itself: it logs the stage of every optimiser
step, and the killed run is stopped at the last step of each stage (before that epoch's
checkpoint), so each resume starts from a step checkpoint inside the stage or from the end of
the one before — including the stages whose frozen front ends are cached per sample (SignFuse's
``alignment``, SignBind-LLM's fusion stage, SignX's recogniser), which a resume must refill from
other batches with the very same bits. Batches are drawn afresh every epoch (no length buckets),
so a resumed run meets its cached samples in other batches than the reference did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_resume import _results  # per split: outputs bytes, scores, trajectory

CHILD = r"""
import json, os, signal, sys
import torch
torch.set_num_threads(1)
import harness.train.trainer as trainer_module
from harness.runner import run_method

_post_init = trainer_module.TrainConfig.__post_init__
def _no_buckets(self):
    self.bucket_size_multiplier = 1
    _post_init(self)
trainer_module.TrainConfig.__post_init__ = _no_buckets

key, out, kill_at, resume, log = sys.argv[1:6]
kill_at, resume = int(kill_at), resume == "1"
overrides, data = json.loads(sys.argv[6]), json.loads(sys.argv[7])

def callback(trainer, state, losses):
    if log != "-":
        with open(log, "a") as f:
            f.write(json.dumps([trainer.global_step, state.stage_index, state.stage.name]) + "\n")
    if trainer.global_step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

run_method(key, out=out, overrides=overrides, resume=resume, progress=False, measure_iters=1,
           batch_size=8, checkpoint_every_steps=3, callbacks=[callback], **data)
"""

LLM = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
       "num_attention_heads": 2, "num_key_value_heads": 2}
#: per method: overrides (small and every stage short) and data settings (16 training videos,
#: two batches per epoch)
CASES = {
    "signfuse": ({"d_model": 16, "resnet_base_width": 2, "stgcn_channels": [2, 4, 8, 8, 16],
                  "cmfa_layers": 1, "heads": 2, "hta_len": 8, "sign_tokens": 4,
                  "llm_overrides": LLM, "stream_pretrain_epochs": 1, "llm_pretrain_epochs": 1,
                  "epochs": [1, 2, 1]},
                 {"train_size": 16, "eval_size": 4, "resolution": 32}),
    "hfa": ({"img_size": 14, "vit_dim": 32, "vit_depth": 2, "vit_heads": 2, "vit_lora_blocks": 1,
             "frame_dim": 32, "temporal_dim": 32, "temporal_heads": 2, "temporal_ffn": 64,
             "d_model": 32, "mbart_layers": [1, 1], "mbart_heads": 2, "mbart_ffn": 64,
             "mbart_max_positions": 128, "frame_stride": 4, "frame_pretrain_epochs": 1,
             "text_pretrain_epochs": 1, "pretrain_epochs": 1, "finetune_decoder_epochs": 1,
             "finetune_all_epochs": 1},
            {"train_size": 16, "eval_size": 4, "resolution": 16}),
    "signx": ({"teacher_width": 4, "visual_width": 4, "frame_stride": 2, "teacher_epochs": 1,
               "p2g_epochs": 1, "v2p_epochs": 1, "rec_epochs": 2},
              {"train_size": 16, "eval_size": 4, "resolution": 32}),
    "signbind": ({"frame_dim": 32, "frame_depth": 1, "lip_dim": 16, "router_dim": 32,
                  "expert_dim": 32, "fusion_dim": 32, "fusion_layers": 1, "expert_epochs": 1,
                  "lip_epochs": 1, "fusion_epochs": 2, "llm_epochs": 1},
                 {"train_size": 16, "eval_size": 4, "resolution": 32}),
}


def _child(key: str, out: Path, kill_at: int, resume: bool, log: Path | None) -> int:
    overrides, data = CASES[key]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, key, str(out), str(kill_at),
                           "1" if resume else "0", str(log) if log else "-",
                           json.dumps(overrides), json.dumps(data)],
                          env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"{key}: child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(CASES))
def test_sigkill_in_every_stage_then_resume_is_byte_identical(key, tmp_path):
    log = tmp_path / "steps.jsonl"
    assert _child(key, tmp_path / "ref", 0, False, log) == 0
    reference = _results(tmp_path / "ref")
    assert set(reference) == {"dev", "test"}
    last_step: dict[int, int] = {}
    for line in log.read_text().splitlines():
        step, stage_index, _ = json.loads(line)
        last_step[stage_index] = max(step, last_step.get(stage_index, 0))
    kills = [last_step[i] for i in sorted(last_step)]
    assert len(kills) >= 3, f"{key}: expected several stages, got {kills}"

    out, resumed_from = tmp_path / "killed", 0
    for i, step in enumerate(kills):
        killed = _child(key, out, step, i > 0, None)
        assert killed == -signal.SIGKILL, f"{key}: not killed at {step}"
        lasts = list(out.glob("*/checkpoints/last.json"))  # none yet: killed in epoch 1
        if lasts:
            assert json.loads(lasts[0].read_text())["global_step"] < step
            resumed_from += 1
    assert resumed_from >= len(kills) - 1, f"{key}: too few kills after a checkpoint"
    assert _child(key, out, 0, True, None) == 0
    resumed = _results(out)
    for split in ("dev", "test"):
        for part in ("outputs", "accuracy", "control", "training"):
            assert resumed[split][part] == reference[split][part], (key, split, part)
