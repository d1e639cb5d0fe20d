"""DLL on VidVRD-II as a :mod:`pyvrel.engine` task: ``pyvrel train --model dll --data DIR|synthetic``.

The ``model:`` section holds every key of VidVRD-II's (:mod:`pyvrel.models.vidvrd2.task`:
``preset``, ``world``, ``tracklets``, ...) and of :class:`~pyvrel.models.dll.head.DLLConfig`;
``variant`` picks the paper's row: ``base`` (VidVRD-II itself), ``pdl``, ``kdl`` or ``dll``
(``--set model.variant=pdl``); with the ``synthetic`` preset (the default) the gradient-reversal
coefficient defaults to the VRD-STGC variant's 0.01 (:data:`SYNTHETIC_OVERRIDES`: the VidVRD-II
code's 1.0 diverges there, docs/models.md). Training is VidVRD-II's (same samples, losses, schedule and
evaluation hook with mR@K and Mean) with :class:`~pyvrel.models.dll.head.DLLHead` as the predicate
head; its pattern table is built from the vocabulary's predicate names
(:func:`~pyvrel.models.dll.patterns.pattern_table`) or read from ``patterns`` (a file), and KDL's
head/tail order comes from the positive pair labels of the training segments. Resolved sections
also record those ``frequencies`` and ``epoch_steps`` (KDL's schedule unit: training segments //
batch size of the preset's defaults), so :func:`load` rebuilds the same head.

Registry entry: :func:`build_task` trains, :func:`load` gives a VidVRD-II detector with this head
for ``pyvrel detect``, :func:`pyvrel.models.dll.study.run_demo` is ``pyvrel demo dll``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from pyvrel.data.vocab import Vocabulary
from pyvrel.engine.config import ConfigError, config_from_dict, config_to_dict
from pyvrel.engine.registry import TrainTask
from pyvrel.models.dll.head import DLLConfig, DLLHead
from pyvrel.models.dll.patterns import PatternTable, PatternTableError, pattern_table, read_pattern_table
from pyvrel.models.vidvrd2 import task as vidvrd2_task
from pyvrel.models.vidvrd2.config import VidVRD2Config
from pyvrel.models.vidvrd2.model import IterativeClassifier

__all__ = ["SYNTHETIC_OVERRIDES", "build_task", "load", "split_config"]

#: DLLConfig defaults of the synthetic preset, below the section's own keys.
SYNTHETIC_OVERRIDES: dict[str, Any] = {"grl": 0.01}

_DLL_KEYS = {f.name for f in dataclasses.fields(DLLConfig)}
_RECORDED = ("frequencies", "epoch_steps")  # written into resolved sections for load()


def split_config(section: Mapping[str, Any]) -> tuple[DLLConfig, dict[str, Any], dict[str, Any]]:
    """``(DLLConfig, VidVRD-II's section, recorded values)`` of a ``model:`` section; bad DLL keys
    raise :class:`ConfigError` naming them."""
    dll = {k: v for k, v in section.items() if k in _DLL_KEYS}
    if section.get("preset", "synthetic") == "synthetic":
        dll = {**SYNTHETIC_OVERRIDES, **dll}
    recorded = {k: section[k] for k in _RECORDED if k in section}
    rest = {k: v for k, v in section.items() if k not in _DLL_KEYS and k not in _RECORDED}
    return config_from_dict(DLLConfig, dll), rest, recorded


def _table(cfg: DLLConfig, predicates: list[str]) -> PatternTable:
    try:
        table = read_pattern_table(cfg.patterns, predicates) if cfg.patterns else pattern_table(predicates)
        table.check_vocabulary(predicates)
    except PatternTableError as e:
        raise ConfigError("patterns", str(e)) from None
    return table


def _head(cfg: DLLConfig, model_cfg: VidVRD2Config, predicates: list[str], frequencies: list[float],
          epoch_steps: int) -> DLLHead | None:
    """The predicate head of a variant (None for ``base``: VidVRD-II's own linear head)."""
    if cfg.variant == "base":
        return None
    return DLLHead(model_cfg.hidden, _table(cfg, predicates), frequencies, cfg, epoch_steps)


def build_task(model_config: Mapping[str, Any], data: str) -> TrainTask:
    """The DLL training task (module docstring for the ``model:`` keys)."""
    cfg, rest, _ = split_config(model_config)
    task = vidvrd2_task.build_task(rest, data)
    predicates = list(task.model_config["vocabulary"]["predicates"])
    _table(cfg, predicates)  # a bad table fails before training, also for the base variant
    segments = task.train_set.segments
    frequencies = np.sum([seg.predicates.sum(0) for seg in segments], 0).astype(float).tolist()
    epoch_steps = max(1, len(task.train_set) // int(task.train_defaults.get("batch_size", 1)))
    model: IterativeClassifier = task.model
    head = _head(cfg, model.cfg, predicates, frequencies, epoch_steps)
    if head is not None:
        model.predicate_head = head
    resolved = {**task.model_config, **config_to_dict(cfg), "frequencies": frequencies, "epoch_steps": epoch_steps}
    return dataclasses.replace(task, model=model, model_config=resolved)


def load(checkpoint: Mapping[str, Any], ema: bool = True) -> vidvrd2_task.VidVRD2Detector:
    """The trained model of a ``pyvrel train --model dll`` checkpoint as a VidVRD-II detector (the
    registry's loader): inference runs the head without its training-only branches."""
    from pyvrel.engine.checkpoint import checkpoint_weights

    cfg, rest, recorded = split_config(checkpoint["meta"]["model_config"])
    given = rest["vocabulary"]
    vocab = Vocabulary("run", tuple(given["objects"]), tuple(given["predicates"]))
    model_cfg, resolved = vidvrd2_task.resolve_config(rest, vocab)
    head = _head(cfg, model_cfg, list(vocab.predicates), recorded["frequencies"], recorded["epoch_steps"])
    model = IterativeClassifier(model_cfg, head)
    model.load_state_dict(checkpoint_weights(dict(checkpoint), ema))
    return vidvrd2_task.VidVRD2Detector(model.eval(), vocab, resolved["tracklets"])
