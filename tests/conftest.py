"""Test configuration: Triton kernels run in the CPU interpreter unless the caller says otherwise.

TRITON_INTERPRET must be set before triton-decorated kernels are created, so it is set here, before
any test module imports ``harness.ops``. The ``one_thread`` fixture is for modules of tiny-model
training tests (``pytestmark = pytest.mark.usefixtures("one_thread")``); ``synthetic_split`` and
``stage_state`` are the corpus and ``TrainState`` helpers the method tests share.
"""

import os
import tempfile

os.environ.setdefault("TRITON_INTERPRET", "1")
# runs start from random weights unless a test asks for the pretrained stand-ins (which then go
# to a throw-away cache, never the user's)
os.environ.setdefault("SIGNBENCH_STANDINS", "0")
os.environ.setdefault("SIGNBENCH_CACHE", tempfile.mkdtemp(prefix="signbench-standins-"))

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny shapes gain nothing from intra-op threads, and OpenMP spin-waiting on a busy 2-core
    machine can make them 10-50x slower: run the module single-threaded, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -------------------------------------------------------------- shared helpers of the method tests
# Imported by test modules (``from conftest import synthetic_split, stage_state``): tests/ is not
# a package and holds the only conftest.py on the path, so the import is unambiguous.


def synthetic_split(split: str, size: int, *, lang: str = "de", resolution: int = 16,
                    seed: int = 0) -> list:
    """``size`` fresh samples of the synthetic corpus as a list (streams generated lazily)."""
    from harness.data import load_dataset

    ds = load_dataset("synthetic", split, lang=lang, size=size, resolution=resolution, seed=seed)
    return [ds[i] for i in range(len(ds))]


def stage_state(stage_or_method, name: str | None = None, *, stage_index: int = 0,
                epoch: int = 0, step: int = 0, total_steps: int = 10,
                global_step: int = 0):
    """A ``TrainState`` for a stage, given either the ``Stage`` or a method and a stage name."""
    from harness.method import TrainState

    stage = stage_or_method
    if name is not None:
        stage = next(s for s in stage_or_method.stages() if s.name == name)
    return TrainState(stage=stage, stage_index=stage_index, epoch=epoch, step=step,
                      total_steps=total_steps, global_step=global_step)
