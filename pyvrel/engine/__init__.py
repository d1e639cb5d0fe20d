"""Training for every pyvrel model: :class:`Trainer`, its :class:`TrainConfig`, and the parts.

See :mod:`pyvrel.engine.trainer` for the protocol a model follows, and ``docs/architecture.md``.
"""

from pyvrel.engine.checkpoint import checkpoint_weights, load_checkpoint, save_checkpoint, seed_everything
from pyvrel.engine.config import ConfigError, TrainConfig, config_from_dict, config_to_dict
from pyvrel.engine.optim import EMA, WarmupCosine, build_optimizer, param_groups, warmup_cosine_factor
from pyvrel.engine.registry import (MODELS, Detector, Grounder, ModelEntry, TrainTask, UnknownModelError, get_model,
                                    get_task_builder, load_detector, load_grounder, register_model)
from pyvrel.engine.run import Run, prepare_run
from pyvrel.engine.trainer import EvalContext, EvalHook, Trainer, move_to_device

__all__ = ["EMA", "MODELS", "ConfigError", "Detector", "EvalContext", "Grounder", "EvalHook", "ModelEntry", "Run", "TrainConfig",
           "TrainTask", "Trainer", "UnknownModelError", "WarmupCosine", "build_optimizer", "checkpoint_weights",
           "config_from_dict", "config_to_dict", "get_model", "get_task_builder", "load_checkpoint", "load_detector",
           "load_grounder",           "move_to_device", "param_groups", "prepare_run", "register_model", "save_checkpoint", "seed_everything",
           "warmup_cosine_factor"]
