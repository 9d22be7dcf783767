"""SignBench harness: ops (fused kernels + dispatch), data, metrics, measure, runner, leaderboard.

Submodules are imported on demand so that ``import harness`` stays cheap; see ``harness.cli`` for
the ``signbench`` command.
"""

__version__ = "0.1.0"
