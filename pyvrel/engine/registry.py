"""The models pyvrel knows by name: how each trains, loads from a checkpoint, and shows itself in the demo.

A model is one package under ``pyvrel/models/`` and one :class:`ModelEntry` in :data:`MODELS`:

* ``train``: a *task builder* ``builder(model_config, data) -> TrainTask``, where ``model_config``
  is the ``model:`` section of the run's config (a plain dict, after ``--set`` overrides) and
  ``data`` is a dataset folder or ``"synthetic"`` (open it with :func:`pyvrel.data.dataset.open_dataset`;
  the synthetic world's settings go in the section's ``world`` key);
* ``load``: ``load(checkpoint, ema) -> Detector`` rebuilds the trained model from a checkpoint of
  ``pyvrel train`` (``checkpoint["meta"]["model_config"]`` is the resolved section) for
  ``pyvrel detect`` and ``pyvrel demo``;
* ``ground``: ``ground(checkpoint, ema) -> Grounder`` rebuilds a trained grounding model for
  ``pyvrel ground``;
* ``demo``: ``{"full": config, "quick": config}``, the run configs (``{"model": ..., "train": ...}``
  on top of the model's ``train_defaults``) of ``pyvrel demo NAME`` and ``pyvrel demo NAME --quick``
  (:mod:`pyvrel.demo`: train, detect, evaluate next to the frequency prior). A model whose demo is
  not that gives its own function instead, ``demo(out_dir, quick=..., threads=...) -> dict``
  (vRGV's, UASAN's, DLL's, HVR-Net's).

Fields may be ``"module:attr"`` strings, imported only when used, so registering a model costs no
import. ``pyvrel train --model package.module:function`` also accepts a task builder directly, and
a plain builder (or its ``"module:function"``) is a valid entry: a model that only trains.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from torch import nn
from torch.utils.data import Dataset

from pyvrel.engine.config import ConfigError, TrainConfig
from pyvrel.engine.trainer import EvalHook

if TYPE_CHECKING:
    from pyvrel.data import Relation
    from pyvrel.data import Vocabulary
    from pyvrel.data.dataset import Dataset as VideoDataset

__all__ = ["MODELS", "Detector", "Grounder", "ModelEntry", "TaskBuilder", "TrainTask", "UnknownModelError", "available_models",
           "get_model", "get_task_builder", "load_detector", "load_grounder", "model_part", "register_model"]


@dataclass
class TrainTask:
    """What a task builder returns: everything :class:`~pyvrel.engine.Trainer` needs for one run.

    ``train_defaults`` are the model's own training settings (e.g. its paper's learning rate and
    schedule) as :class:`~pyvrel.engine.TrainConfig` keys; the run's ``train:`` section and
    ``--set train.*`` override them. ``model_config`` is the resolved model config (JSON-ready);
    it is stored in every checkpoint so that inference can rebuild the model. ``eval_metrics``: the
    names of the metrics ``evaluate`` returns, when known before it runs (:meth:`check` then
    finds a wrong ``best_metric`` at start-up rather than at the first evaluation).
    """

    model: nn.Module
    train_set: Dataset
    collate_fn: Callable[[list], Any] | None = None
    evaluate: EvalHook | None = None
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    model_config: Mapping[str, Any] = field(default_factory=dict)
    eval_metrics: tuple[str, ...] | None = None

    def check(self, config: TrainConfig) -> None:
        """Raise :class:`ConfigError` (key ``best_metric``) when ``config.best_metric`` is not one of
        ``eval_metrics`` of an evaluation that runs."""
        key = config.best_metric
        if (key is not None and self.evaluate is not None and config.eval_every and self.eval_metrics is not None
                and key not in self.eval_metrics):
            raise ConfigError("best_metric", f"{key!r} is not a metric of this model's evaluation (it reports "
                                             f"{', '.join(self.eval_metrics)})")


class Detector(Protocol):
    """A trained relation detector, as a registry entry's ``load`` returns it.

    ``detect`` returns ``{video_id: [Relation]}`` (ready for :func:`pyvrel.data.write_predictions`)
    for the ``split`` videos of a dataset, only videos ``rank::n`` with ``shard=(rank, n)``.
    Optional, for the demo's frequency-prior row on the same tracklets: ``tracklets(arrays)`` (the
    tracklets the model pairs up in one video's arrays) and ``baseline()`` (an unfitted
    :class:`~pyvrel.models.baselines.FrequencyPrior` with the model's pairing settings).
    """

    vocabulary: Vocabulary

    def detect(self, dataset: VideoDataset, split: str = "test",
               shard: tuple[int, int] = (0, 1)) -> dict[str, list[Relation]]: ...


class Grounder(Protocol):
    """A trained relation grounder, as a registry entry's ``ground`` returns it.

    ``ground`` returns ``{video_id: [Relation]}`` (one relation per query: the subject and object
    trajectories) for the ``split`` videos of a dataset; ``queries`` maps video ids to
    ``(subject, predicate, object)`` triplets (default: each video's ground-truth triplets);
    ``legacy``: the public code's linking; ``greedy``: greedy linking (no pairwise term);
    ``temporal_threshold``: the model's temporal attention threshold instead of its trained config's.
    For the demo's picture: ``temporal_attention(dataset, split, video_id, triplet)`` -> (sampled
    frames, the grounding's temporal score on them, its threshold).
    """

    def ground(self, dataset: VideoDataset, split: str = "test",
               queries: Mapping[str, list[tuple[str, str, str]]] | None = None, *, legacy: bool = False,
               greedy: bool = False, temporal_threshold: float | None = None) -> dict[str, list[Relation]]: ...


TaskBuilder = Callable[[Mapping[str, Any], str], TrainTask]
Loader = Callable[[Mapping[str, Any], bool], Detector]
GrounderLoader = Callable[[Mapping[str, Any], bool], Grounder]


@dataclass(frozen=True)
class ModelEntry:
    """One registered model (module docstring); ``title`` names it in tables and pictures."""

    title: str
    train: str | TaskBuilder
    load: str | Loader | None = None
    ground: str | GrounderLoader | None = None
    demo: str | Mapping[str, Mapping[str, Any]] | Callable[..., dict[str, Any]] | None = None


#: Registered models: name -> :class:`ModelEntry` (or a bare task builder / ``"module:function"``).
MODELS: dict[str, ModelEntry | str | TaskBuilder] = {
    "vrdone": ModelEntry("VrdONE", train="pyvrel.models.vrdone.task:build_task",
                         load="pyvrel.models.vrdone.task:load", demo="pyvrel.models.vrdone.task:DEMO"),
    "vrgv": ModelEntry("vRGV", train="pyvrel.models.vrgv.task:build_task",
                       ground="pyvrel.models.vrgv.task:load_grounder", demo="pyvrel.models.vrgv.demo:run_demo"),
    "vidvrd2": ModelEntry("VidVRD-II", train="pyvrel.models.vidvrd2.task:build_task",
                          load="pyvrel.models.vidvrd2.task:load"),
    "uasan": ModelEntry("UASAN", train="pyvrel.models.uasan.task:build_task", load="pyvrel.models.uasan.task:load",
                        demo="pyvrel.models.uasan.demo:run_demo"),
    "dll": ModelEntry("DLL", train="pyvrel.models.dll.task:build_task", load="pyvrel.models.dll.task:load",
                      demo="pyvrel.models.dll.study:run_demo"),
    "hvrnet": ModelEntry("HVR-Net", train="pyvrel.models.hvrnet.task:build_task", load="pyvrel.models.hvrnet.task:load",
                         demo="pyvrel.models.hvrnet.demo:run_demo"),  # detects objects (for pyvrel track), no relations
}


class UnknownModelError(LookupError):
    """A model name that is not registered, not importable, or lacks what a command needs."""


def register_model(name: str, entry: ModelEntry | str | TaskBuilder) -> None:
    """Register ``entry`` as ``name`` for ``pyvrel train --model name`` (and ``detect``/``demo`` when it
    has ``load``/``demo``)."""
    if not name or ":" in name:
        raise ValueError(f"name: expected a non-empty name without ':', got {name!r}")
    MODELS[name] = entry


def available_models() -> list[str]:
    return sorted(MODELS)


def _import(reference: str) -> Any:
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownModelError(f"cannot import {module_name!r} for model {reference!r}: {e}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UnknownModelError(f"module {module_name!r} has no {attr!r} (model {reference!r})") from None


def _resolve(value: Any) -> Any:
    return _import(value) if isinstance(value, str) else value


def get_model(name: str) -> ModelEntry:
    """The entry of a registered ``name`` or, for a ``"module:function"`` task builder, a
    training-only entry; raises :class:`UnknownModelError` listing the registered models."""
    if name in MODELS:
        entry = MODELS[name]
        return entry if isinstance(entry, ModelEntry) else ModelEntry(name, train=entry)
    if ":" in name:
        return ModelEntry(name.rpartition(":")[2], train=name)
    available = ", ".join(available_models()) or "none registered yet"
    raise UnknownModelError(f"unknown model {name!r}; available: {available} (or give module:function)")


def get_task_builder(name: str) -> TaskBuilder:
    """The task builder of a registered ``name`` or of a ``"module:function"`` reference."""
    builder = _resolve(get_model(name).train)
    if not callable(builder):
        raise UnknownModelError(f"{name!r}: its task builder {builder!r} is not callable")
    return builder


def model_part(name: str, part: str) -> Any:
    """The ``load``, ``ground`` or ``demo`` part of model ``name``'s entry, imported; :class:`UnknownModelError`
    naming the models that have it when this one does not."""
    value = getattr(get_model(name), part)
    if value is None:
        having = [m for m in available_models() if getattr(get_model(m), part) is not None]
        raise UnknownModelError(f"model {name!r} has no registered {part!r} (models with one: "
                                f"{', '.join(having) or 'none'})")
    return _resolve(value)


def _trained(checkpoint: Mapping[str, Any], part: str, ema: bool) -> Any:
    name = checkpoint.get("meta", {}).get("model")
    if not isinstance(name, str):
        raise ValueError("not a checkpoint of pyvrel train (no meta.model)")
    return model_part(name, part)(checkpoint, ema)


def load_detector(checkpoint: Mapping[str, Any], ema: bool = True) -> Detector:
    """The trained model of a ``pyvrel train`` checkpoint, through its model's registered ``load``
    (EMA weights when present and ``ema``)."""
    return _trained(checkpoint, "load", ema)


def load_grounder(checkpoint: Mapping[str, Any], ema: bool = True) -> Grounder:
    """The trained grounder of a ``pyvrel train`` checkpoint, through its model's registered
    ``ground`` (EMA weights when present and ``ema``)."""
    return _trained(checkpoint, "ground", ema)
