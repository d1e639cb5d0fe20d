"""One training entry for every model, used by ``pyvrel train`` and ``pyvrel demo``.

:func:`prepare_run` looks the model up in the registry, checks the run's config, seeds every
generator with ``train.seed``, builds the model's task and merges its ``train_defaults`` under the
run's ``train:`` section; :meth:`Run.fit` trains with the :class:`~pyvrel.engine.Trainer` and,
once the trainer has checked its settings, writes ``config.json`` (the output-folder rule of the
commands is :mod:`pyvrel.engine.rundir`'s). Errors: :class:`~pyvrel.engine.ConfigError` with the dotted key
(``model.*`` / ``train.*``), :class:`~pyvrel.engine.UnknownModelError`, FileNotFoundError for a
missing data folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyvrel.engine.checkpoint import seed_everything
from pyvrel.engine.config import ConfigError, TrainConfig, config_from_dict, config_to_dict
from pyvrel.engine.registry import TrainTask, get_task_builder
from pyvrel.engine.rundir import clear_dir, resume_checkpoint
from pyvrel.engine.trainer import Trainer

__all__ = ["Run", "default_out", "prepare_run"]


@dataclass
class Run:
    """A prepared training run: the model's task, the merged train config, the output folder and
    the ``meta`` every checkpoint stores (``{"model", "model_config", "data"}``)."""

    task: TrainTask
    train: TrainConfig
    out: Path
    meta: dict[str, Any]

    def fit(self, resume: str | os.PathLike | None = None, *, clear: bool = False) -> dict[str, Any]:
        """Train (``resume``: a checkpoint, or ``"auto"``: ``out/checkpoints/last.pt`` when it exists);
        returns :meth:`Trainer.fit`'s summary. Nothing is written before the trainer has checked its
        settings (and ``train.best_metric`` against the task's ``eval_metrics``) and loaded the
        checkpoint; then rank 0 empties ``out`` when ``clear`` and writes ``out/config.json``."""
        def start() -> None:
            if clear:
                clear_dir(self.out)
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(
                json.dumps({**self.meta, "train": config_to_dict(self.train)}, indent=2) + "\n")

        try:
            self.task.check(self.train)
            trainer = Trainer(self.task.model, self.task.train_set, self.train, collate_fn=self.task.collate_fn,
                              evaluate=self.task.evaluate, out_dir=self.out, meta=self.meta, on_start=start)
            return trainer.fit(resume=resume_checkpoint(self.out, resume))
        except ConfigError as e:  # the trainer's and the task's checks of the train section name its keys
            if e.key.partition(".")[0] not in TrainConfig.__dataclass_fields__:
                raise
            raise ConfigError("train." + e.key, e.message) from None


def default_out(model: str) -> Path:
    """The output folder of a run of ``model`` when none is given: ``runs/<model>``."""
    return Path("runs") / model.rpartition(":")[2]


def prepare_run(model: str, data: str, config: Mapping[str, Mapping[str, Any]] | None = None,
                out: str | os.PathLike | None = None) -> Run:
    """Build the run of ``model`` (a registered name or ``module:function``) on ``data`` (a dataset
    folder or ``"synthetic"``) with ``config`` (``{"model": {...}, "train": {...}}``); ``out``
    defaults to ``runs/<model>``."""
    from pyvrel.data.dataset import check_data

    builder = get_task_builder(model)
    check_data(data)
    config = config or {}
    train_values = dict(config.get("train", {}))
    config_from_dict(TrainConfig, train_values, prefix="train.")  # fail before building the model
    seed_everything(train_values.get("seed", TrainConfig.seed))
    try:
        task = builder(dict(config.get("model", {})), data)
    except ConfigError as e:  # the builder checks the model section
        raise ConfigError("model." + e.key, e.message) from None
    train = config_from_dict(TrainConfig, {**task.train_defaults, **train_values}, prefix="train.")
    meta = {"model": model, "model_config": dict(task.model_config), "data": data}
    return Run(task, train, Path(out or default_out(model)), meta)
