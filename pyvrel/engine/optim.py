"""Optimizer parameter groups, the warm-up + cosine schedule, and an EMA of weights."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from pyvrel.engine.config import TrainConfig

#: Modules whose parameters never get weight decay (normalisation layers and embeddings).
NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm, nn.RMSNorm,
    nn.Embedding, nn.EmbeddingBag,
)


def _declared(model: nn.Module, method: str) -> dict[int, object]:
    """``{id(parameter): value}`` over the modules of ``model`` that define ``method()`` returning their
    own parameter names (a set: value None) or ``{name: value}``; an unknown name raises ValueError
    naming the module."""
    out: dict[int, object] = {}
    for prefix, module in model.named_modules():
        declared = getattr(module, method, None)
        if declared is None:
            continue
        own = dict(module.named_parameters())
        names = declared()
        values = dict(names) if isinstance(names, dict) else dict.fromkeys(names)
        unknown = set(values) - set(own)
        if unknown:
            where = f"{type(module).__name__} {prefix!r}" if prefix else "model"
            raise ValueError(f"{where}.{method}() names parameters it does not have: {sorted(unknown)}")
        out.update((id(own[n]), v) for n, v in values.items())
    return out


def no_decay_parameters(model: nn.Module) -> set[int]:
    """``id``s of the parameters that modules of ``model`` declare free of weight decay.

    Any module (the model itself included, at any depth) may define ``no_weight_decay()``
    returning names of its own parameters, as in its ``named_parameters()`` (e.g.
    :class:`pyvrel.nn.ChannelLayerNorm` returns ``{"weight", "bias"}``; a model may name nested
    parameters such as a learned position table). A name the module does not have raises
    ValueError naming the module.
    """
    return set(_declared(model, "no_weight_decay"))


def own_decay_parameters(model: nn.Module) -> dict[int, float]:
    """``{id: weight_decay}`` of the parameters that modules of ``model`` give their own weight decay:
    a module's ``own_weight_decay()`` returns ``{name: weight_decay}`` over its ``named_parameters()``
    (e.g. VidVRD-II's preference tables, trained with their own decay). Unknown names raise ValueError."""
    return {k: float(v) for k, v in _declared(model, "own_weight_decay").items()}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split the trainable parameters of ``model`` into a decay and a no-decay group.

    No weight decay for: parameters with at most one dimension (biases, norm weights, per-channel
    scales), every parameter of a normalisation layer or an embedding (:data:`NO_DECAY_MODULES`),
    and those a module declares with ``no_weight_decay()`` (:func:`no_decay_parameters`; e.g. the
    ``(1, C, 1)`` weights of :class:`pyvrel.nn.ChannelLayerNorm` and scales of
    :class:`pyvrel.nn.AffineDropPath`). Everything else — the weight matrices and kernels of linear,
    convolution and attention layers — decays. Parameters a module gives its own weight decay
    (``own_weight_decay()``, :func:`own_decay_parameters`) form one group per value, named
    ``"weight_decay=<value>"``, ahead of every other rule. Frozen parameters (``requires_grad=False``) are left
    out; shared parameters appear once. Groups keep the order of ``named_parameters``; an empty
    group is dropped. Each group has a ``"name"`` key.
    """
    no_decay_ids = no_decay_parameters(model)
    own = own_decay_parameters(model)
    for module in model.modules():
        if isinstance(module, NO_DECAY_MODULES):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay, others = [], [], {}
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in own:
            others.setdefault(own[id(p)], []).append(p)
        elif p.ndim <= 1 or id(p) in no_decay_ids:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"name": "decay", "params": decay, "weight_decay": weight_decay},
              {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
    groups += [{"name": f"weight_decay={wd:g}", "params": ps, "weight_decay": wd} for wd, ps in others.items()]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over :func:`param_groups` with the settings of ``config``."""
    groups = param_groups(model, config.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    raise ValueError(f"optimizer: expected 'adamw' or 'sgd', got {config.optimizer!r}")


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier of optimizer step ``step`` (0-based).

    Linear warm-up: ``(step + 1) / warmup_steps`` for ``step < warmup_steps`` (the first step
    already moves, the last warm-up step reaches 1). Then cosine from 1 down to ``min_ratio``:
    ``min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2`` with
    ``p = (step - warmup_steps) / (total_steps - warmup_steps)``, clamped to ``[0, 1]``; steps past
    ``total_steps`` stay at ``min_ratio``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = total_steps - warmup_steps
    p = min(max((step - warmup_steps) / span, 0.0), 1.0) if span > 0 else 1.0
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


class WarmupCosine:
    """Per-step warm-up + cosine schedule: sets each group's ``lr`` to ``initial_lr * factor(step)``.

    Call :meth:`set_step` before optimizer step ``step``. The only state is the step, so a resumed
    run recomputes the same learning rates. ``initial_lr`` is stored in the param groups (and so in
    the optimizer's state dict).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                 min_ratio: float = 0.0) -> None:
        if warmup_steps < 0 or total_steps < warmup_steps:
            raise ValueError(f"need 0 <= warmup_steps <= total_steps, got {warmup_steps} and {total_steps}")
        self.optimizer, self.warmup_steps, self.total_steps, self.min_ratio = (
            optimizer, warmup_steps, total_steps, min_ratio)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.step = 0

    def set_step(self, step: int) -> float:
        """Set the learning rates for optimizer step ``step``; returns the multiplier."""
        self.step = step
        factor = warmup_cosine_factor(step, self.warmup_steps, self.total_steps, self.min_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        return factor

    def state_dict(self) -> dict:
        return {"step": self.step, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "min_ratio": self.min_ratio}

    def load_state_dict(self, state: dict) -> None:
        self.warmup_steps, self.total_steps, self.min_ratio = (
            state["warmup_steps"], state["total_steps"], state["min_ratio"])
        self.set_step(state["step"])


class EMA:
    """Exponential moving average of a model's whole state dict (parameters and buffers).

    After each optimizer step, floating-point entries become ``decay * ema + (1 - decay) * value``;
    other entries (integer buffers such as BatchNorm's ``num_batches_tracked``) are copied.
    :attr:`module` is a frozen copy of the model in eval mode holding the averages, ready for
    evaluation or saving.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay: expected a value in [0, 1), got {decay!r}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` (same architecture, not DDP-wrapped) into the average."""
        current = model.state_dict()
        averaged, values = [], []
        for name, avg in self.module.state_dict().items():
            if avg.is_floating_point():
                averaged.append(avg)
                values.append(current[name].to(avg.dtype))
            else:
                avg.copy_(current[name])
        if averaged:  # one fused call over all tensors instead of one lerp per tensor
            torch._foreach_lerp_(averaged, values, 1.0 - self.decay)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.module.load_state_dict(state["module"])

