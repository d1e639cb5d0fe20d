"""Checkpoint files and random-number-generator states.

A checkpoint is one ``torch.save`` file that ``torch.load(..., weights_only=True)`` can read (only
tensors, numbers, strings, lists, tuples and dicts). Keys:

==================  =====================================================================
``format``          ``"pyvrel.engine.checkpoint"``; ``version``: 1
``model``           the model's state dict (never DDP-wrapped)
``ema``             ``{"decay", "module": state dict}`` or None
``optimizer``       the optimizer's state dict;  ``scheduler``: :class:`WarmupCosine` state
``scaler``          the fp16 GradScaler's state dict or None
``step``            optimizer steps done;  ``epoch``: completed epochs (``step // steps_per_epoch``)
``steps_per_epoch`` steps in one epoch, checked on resume;  ``world_size``: processes that trained
``rng``             one :func:`rng_state` per rank, in rank order
``config``          the :class:`TrainConfig` as a dict;  ``meta``: the caller's dict (model name,
                    model config, data), used to rebuild the model for inference
==================  =====================================================================
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "pyvrel.engine.checkpoint"
VERSION = 1


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (and CUDA's on a CUDA device)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
             "torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore generator states saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (all devices') global generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` atomically (a temporary file renamed over ``path``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "version": VERSION, **checkpoint}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Raises FileNotFoundError for a missing file and ValueError, naming the file, for anything that
    is not a pyvrel checkpoint of a known version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pyvrel checkpoint (no format {FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt.get('version')!r}, this pyvrel reads {VERSION}")
    return ckpt


def checkpoint_weights(checkpoint: dict[str, Any], ema: bool = True) -> dict[str, torch.Tensor]:
    """The state dict to run inference with: the EMA weights when the checkpoint has them and ``ema``
    is True (as VrdONE evaluates), else the trained weights."""
    if ema and checkpoint.get("ema") is not None:
        return checkpoint["ema"]["module"]
    return checkpoint["model"]
