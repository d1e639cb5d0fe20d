"""Models that ``pyvrel train`` knows by name, and how a model hands itself to the trainer.

A model is registered as a *task builder*: ``builder(model_config, data) -> TrainTask``, where
``model_config`` is the ``model:`` section of the run's config (a plain dict, after ``--set``
overrides) and ``data`` is a dataset folder or ``"synthetic"``. Entries of :data:`MODELS` are
``"module:function"`` strings, imported only when used, so registering a model costs no import.
``pyvrel train --model package.module:function`` also accepts such a reference directly, for
models that live outside pyvrel.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from pyvrel.engine.trainer import EvalHook


@dataclass
class TrainTask:
    """What a task builder returns: everything :class:`~pyvrel.engine.Trainer` needs for one run.

    ``train_defaults`` are the model's own training settings (e.g. its paper's learning rate and
    schedule) as :class:`~pyvrel.engine.TrainConfig` keys; the run's ``train:`` section and
    ``--set train.*`` override them. ``model_config`` is the resolved model config (JSON-ready);
    it is stored in every checkpoint so that inference can rebuild the model.
    """

    model: nn.Module
    train_set: Dataset
    collate_fn: Callable[[list], Any] | None = None
    evaluate: EvalHook | None = None
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    model_config: Mapping[str, Any] = field(default_factory=dict)


TaskBuilder = Callable[[Mapping[str, Any], str], TrainTask]

#: Registered models: name -> "module:function" of the task builder (or the builder itself).
MODELS: dict[str, str | TaskBuilder] = {"vrdone": "pyvrel.models.vrdone.task:build_task",
                                          "vrgv": "pyvrel.models.vrgv.task:build_task"}


class UnknownModelError(LookupError):
    """``--model`` names no registered model and no importable ``module:function``."""


def register_model(name: str, builder: str | TaskBuilder) -> None:
    """Make ``pyvrel train --model name`` use ``builder`` (a callable or a ``"module:function"``)."""
    if not name or ":" in name:
        raise ValueError(f"name: expected a non-empty name without ':', got {name!r}")
    MODELS[name] = builder


def available_models() -> list[str]:
    return sorted(MODELS)


def _import(reference: str) -> TaskBuilder:
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownModelError(f"cannot import {module_name!r} for model {reference!r}: {e}") from None
    try:
        builder = getattr(module, attr)
    except AttributeError:
        raise UnknownModelError(f"module {module_name!r} has no {attr!r} (model {reference!r})") from None
    if not callable(builder):
        raise UnknownModelError(f"{reference!r} is not callable")
    return builder


def get_task_builder(name: str) -> TaskBuilder:
    """The task builder of a registered ``name`` or of a ``"module:function"`` reference."""
    if name in MODELS:
        entry = MODELS[name]
        return _import(entry) if isinstance(entry, str) else entry
    if ":" in name:
        return _import(name)
    available = ", ".join(available_models()) or "none registered yet"
    raise UnknownModelError(f"unknown model {name!r}; available: {available} (or give module:function)")
