"""scripts/gpu-check on a machine without CUDA: the dry run lists every step and the carried
wheels; a real run says in one line that there is no CUDA device and exits 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-check"
STEPS = ("wheels", "build", "tests", "kernels", "methods", "profile", "leaderboard")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_script_is_executable():
    assert os.access(SCRIPT, os.X_OK)


def test_dry_run_lists_steps_and_carried_wheels():
    done = _run("--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[: len(STEPS)]] == list(STEPS)
    budget = sum(int(re.search(r"≤\s*(\d+) s", line).group(1)) for line in lines[: len(STEPS)])
    assert budget <= 540, f"step budgets add up to {budget} s, over the 9-minute limit"
    assert "--benchmark-json=" in done.stdout and "-m gpu" in done.stdout
    assert lines[len(STEPS)].startswith("carried wheels in .whl/:")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_one_line_and_exit_2():
    done = _run()
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "no CUDA device" in done.stderr
