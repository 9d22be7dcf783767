"""Training: the method-agnostic trainer, checkpoints, LR schedules and DDP helpers.

See :mod:`harness.train.trainer` for how a method's stages are run.
"""

from harness.train.checkpoint import (
    Checkpoint,
    CheckpointError,
    has_checkpoint,
    load_checkpoint,
    restore_model,
    save_checkpoint,
)
from harness.train.schedulers import SCHEDULERS, lr_lambda, make_scheduler
from harness.train.trainer import (
    TrainConfig,
    Trainer,
    TrainingError,
    TrainResult,
    epoch_seed,
    seed_everything,
    train_config_dict,
)

__all__ = [
    "SCHEDULERS",
    "Checkpoint",
    "CheckpointError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "epoch_seed",
    "has_checkpoint",
    "load_checkpoint",
    "lr_lambda",
    "make_scheduler",
    "restore_model",
    "save_checkpoint",
    "seed_everything",
    "train_config_dict",
]
