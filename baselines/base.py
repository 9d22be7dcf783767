"""Compatibility name for the method contract, which lives in :mod:`harness.method`.

``from baselines.base import SLTMethod, Stage, TrainState`` keeps working for existing users;
new code imports from ``harness.method``.
"""

from harness.method import (
    SCHEDULERS,
    ConfigError,
    Evaluator,
    SLTMethod,
    Stage,
    TrainState,
    check_choices,
    scale_epochs,
)

__all__ = ["SCHEDULERS", "ConfigError", "Evaluator", "SLTMethod", "Stage", "TrainState",
           "check_choices", "scale_epochs"]
