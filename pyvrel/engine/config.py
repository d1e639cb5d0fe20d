"""Training configuration and typed conversion of plain dicts (config files, ``--set``) to dataclasses.

:class:`TrainConfig` holds every knob of :class:`pyvrel.engine.Trainer`. :func:`config_from_dict`
builds any config dataclass (the trainer's or a model's) from a mapping and raises
:class:`ConfigError` naming the key when a key is unknown or a value has the wrong type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad configuration value. ``key`` is the dotted key (``"train.lr"``), ``source`` where it came from."""

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        self.key, self.message, self.source = key, message, source
        super().__init__(f"{source + ': ' if source else ''}{key}: {message}")

    def with_source(self, source: str, prefix: str = "") -> ConfigError:
        """The same error, re-keyed under ``prefix`` and attributed to ``source`` (a file or ``--set``)."""
        return ConfigError(prefix + self.key, self.message, source)


@dataclass
class TrainConfig:
    """Every setting of :class:`~pyvrel.engine.Trainer`. Units are given in brackets.

    Batches: ``batch_size`` is the **global** batch (summed over all processes); under ``torchrun``
    with W processes each one loads ``batch_size // W`` samples per step, so one process and many
    train the same way. An epoch is ``len(dataset) // batch_size`` steps (the last partial batch
    is dropped).
    """

    epochs: int = 10                   # epochs trained
    batch_size: int = 8                # global batch [samples per optimizer step]
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3                   # peak learning rate, reached at the end of warm-up
    weight_decay: float = 0.05         # applied to weight matrices only (see param_groups)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW
    eps: float = 1e-8                  # AdamW
    momentum: float = 0.9              # SGD
    nesterov: bool = False             # SGD
    warmup_epochs: float = 0.0         # linear warm-up length [epochs; fractions allowed]
    schedule_epochs: float | None = None  # cosine length [epochs]; None: ``epochs``. Longer stops early on the curve
    min_lr_ratio: float = 0.0          # cosine floor as a fraction of ``lr``
    clip_grad_norm: float | None = None  # max L2 norm of all gradients; None: no clipping
    ema_decay: float | None = None     # EMA of weights (e.g. 0.999); None: no EMA
    eval_ema: bool = True              # evaluate the EMA weights when there are any
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA if supported, fp32 on CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available
    seed: int = 42
    deterministic: bool = False        # torch.use_deterministic_algorithms (slower on CUDA)
    num_workers: int = 0               # DataLoader workers per process
    log_every: int = 10                # write a train record every N steps [steps]
    eval_every: int = 1                # run the evaluation hook every N epochs (and after the last); 0: never
    best_metric: str | None = None     # keep checkpoints/best.pt of the best value of this eval metric; None: off
    best_mode: Literal["max", "min"] = "max"  # whether the best value of best_metric is the highest or the lowest
    checkpoint_every: int = 1          # write a checkpoint every N epochs (and after the last); 0: only the last
    checkpoint_every_steps: int = 0    # also write checkpoints/last.pt every N steps; 0: off
    progress: bool = True              # progress bar on rank 0 (tqdm when installed)
    find_unused_parameters: bool = False  # DDP option for models that skip parameters in some steps

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "log_every": self.log_every}
        non_negative = {"weight_decay": self.weight_decay, "warmup_epochs": self.warmup_epochs,
                        "num_workers": self.num_workers, "eval_every": self.eval_every,
                        "checkpoint_every": self.checkpoint_every,
                        "checkpoint_every_steps": self.checkpoint_every_steps}
        for name, v in positive.items():
            if not v > 0:
                raise ConfigError(name, f"must be > 0, got {v!r}")
        for name, v in non_negative.items():
            if not v >= 0:
                raise ConfigError(name, f"must be >= 0, got {v!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError("min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ema_decay", f"must be in [0, 1) or null, got {self.ema_decay!r}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ConfigError("clip_grad_norm", f"must be > 0 or null, got {self.clip_grad_norm!r}")
        if self.schedule_epochs is not None and self.schedule_epochs < self.warmup_epochs:
            raise ConfigError("schedule_epochs", f"must be >= warmup_epochs ({self.warmup_epochs}), "
                                                 f"got {self.schedule_epochs!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` to the annotation ``tp``; raise ConfigError naming ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(e.message)
        raise ConfigError(key, " or ".join(errors))
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(key, f"expected one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(key, f"expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        return config_from_dict(tp, value, prefix=f"{key}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}")


def config_from_dict(cls: type[T], values: Mapping[str, Any], prefix: str = "") -> T:
    """Build the dataclass ``cls`` from ``values``: defaults for missing keys, types checked.

    Raises :class:`ConfigError` for unknown keys (listing the valid ones) and wrong types. Ints are
    accepted for float fields, lists for tuple fields; nested dataclass fields take mappings.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in values.items():
        if name not in fields:
            raise ConfigError(prefix + str(name), f"unknown key (valid: {', '.join(sorted(fields))})")
        kwargs[name] = _coerce(value, hints[name], prefix + name)
    try:
        return cls(**kwargs)
    except ConfigError as e:  # raised by the dataclass's own value checks
        raise ConfigError(prefix + e.key, e.message) from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a JSON-ready dict (tuples become lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def preset_config(cls: type[T], presets: Mapping[str, Callable[[], T]], preset: Any,
                  overrides: Mapping[str, Any]) -> T:
    """A model config: the fields of ``presets[preset]()`` with ``overrides`` applied, as ``cls``.

    Raises :class:`ConfigError` naming ``preset`` for an unknown preset, or the first override when
    the config's own checks (a plain ``ValueError``) refuse the result.
    """
    if preset not in presets:
        raise ConfigError("preset", f"expected one of {', '.join(map(repr, presets))}, got {preset!r}")
    try:
        return config_from_dict(cls, {**config_to_dict(presets[preset]()), **overrides})
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(next(iter(overrides), "preset"), str(e)) from None
