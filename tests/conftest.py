"""Test configuration: Triton kernels run in the CPU interpreter unless the caller says otherwise.

TRITON_INTERPRET must be set before triton-decorated kernels are created, so it is set here, before
any test module imports ``harness.ops``.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
