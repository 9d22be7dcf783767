"""Test configuration: Triton kernels run in the CPU interpreter unless the caller says otherwise.

TRITON_INTERPRET must be set before triton-decorated kernels are created, so it is set here, before
any test module imports ``harness.ops``. The ``one_thread`` fixture is for modules of tiny-model
training tests (``pytestmark = pytest.mark.usefixtures("one_thread")``).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

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
