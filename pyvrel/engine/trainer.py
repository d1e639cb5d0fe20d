"""The model-agnostic training loop (:class:`Trainer`) and the protocol a model follows to use it.

Model protocol
--------------
* ``model(batch)`` in train mode returns a mapping of scalar tensors with ``"loss"``, the total
  that is back-propagated; every other entry (loss terms, accuracies) is logged, averaged over
  the logging window and over processes. The keys are the same at every step. ``batch`` is what ``collate_fn`` made of
  ``batch_size // world_size`` dataset items, moved to the device (tensors inside dicts, lists and
  tuples, and objects with a ``.to(device)`` method).
* The loss is a mean over the process's batch. DDP averages gradients over processes, so the
  gradient is that of the global batch. A loss normalised by a batch-dependent count should
  average that count over processes (:func:`pyvrel.engine.distributed.mean_over_ranks`), as
  DETR-style losses do, to be independent of the number of processes.
* Optional ``no_weight_decay()`` on the model or any of its modules returns names of that
  module's parameters to exclude from weight decay beyond the default rules of
  :func:`pyvrel.engine.param_groups` (``pyvrel.nn``'s norm layers and scales declare theirs).
  Optional ``own_weight_decay()`` returns ``{name: weight_decay}`` for parameters trained with
  their own weight decay (one optimizer group per value; VidVRD-II's preference tables).
* Optional ``train_set.set_epoch(epoch)`` is called before each epoch (0-based; also when a run
  resumes mid-epoch), so a dataset can redraw its augmentation per epoch from its own seed and
  give the same items after a resume.
* Optional evaluation hook ``evaluate(model, ctx) -> {name: float} | None`` (see
  :class:`EvalContext`): called on every process with the EMA weights (or the raw model) in eval
  mode under ``torch.no_grad()``; the mapping returned by rank 0 is logged (and sent to every
  process). A hook that does not shard its work returns ``None`` when ``not ctx.is_main``; one that
  shards it gathers the parts itself (e.g. :func:`pyvrel.engine.distributed.all_gather_objects`).
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from pyvrel.engine import distributed as dist
from pyvrel.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from pyvrel.engine.config import ConfigError, TrainConfig, config_to_dict
from pyvrel.engine.optim import EMA, WarmupCosine, build_optimizer
from pyvrel.engine.progress import ProgressBar
from pyvrel.engine.rundir import read_metrics

log = logging.getLogger("pyvrel.engine")


@dataclass(frozen=True)
class EvalContext:
    """What an evaluation hook is told: where training is and which process it runs in."""

    epoch: int                 # epochs completed
    step: int                  # optimizer steps done
    rank: int
    world_size: int
    device: torch.device
    out_dir: Path | None       # the run's output folder (None when the trainer writes nothing)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


EvalHook = Callable[[nn.Module, EvalContext], "Mapping[str, float] | None"]


class _EpochSlice(Sampler[int]):
    """Items ``start:stop`` of an epoch's sampler order (to skip the steps done before a resume)."""

    def __init__(self, sampler: Sampler[int], start: int, stop: int) -> None:
        self.sampler, self.start, self.stop = sampler, start, stop

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.start, self.stop)

    def __len__(self) -> int:
        return self.stop - self.start


def _seed_worker(worker_id: int) -> None:
    """DataLoader worker init: seed Python and NumPy from the worker's torch seed (set per epoch)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor (inside dicts, lists, tuples; objects with ``.to``) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)((k, move_to_device(v, device)) for k, v in batch.items())
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(move_to_device(v, device) for v in batch)
    if hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if callable(getattr(batch, "to", None)):
        return batch.to(device)
    return batch


def resolve_device(name: str) -> torch.device:
    """``"auto"``: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but no CUDA device is available")
        return torch.device("cuda", dist.local_rank())
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``precision`` on ``device``; None means full float32."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    if precision == "fp32":
        return None
    if device.type != "cuda":
        raise ValueError(f"precision={precision!r} needs a CUDA device (mixed precision is off on the CPU); "
                         "use 'auto' or 'fp32'")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class Trainer:
    """Trains ``model`` on ``train_set`` as ``config`` says; the same code on one process or many.

    Under ``torchrun`` (``WORLD_SIZE > 1``) :meth:`fit` starts the process group (NCCL on CUDA,
    gloo on the CPU) unless one exists, wraps the model in DistributedDataParallel and shards each
    epoch with a :class:`~torch.utils.data.DistributedSampler`; only rank 0 writes metrics and
    checkpoints. With one process the same sampler order is used, so W processes with global
    batch B take the same steps as one process with batch B (up to float summation order).

    A training step does not wait for the device: the logged values are summed on the device and
    copied to the host once per train record. A non-finite gradient norm (without fp16 loss
    scaling, which skips such steps) stops training with ``FloatingPointError`` naming the step:
    on the CPU before that step's update, on a GPU at the next train record or checkpoint (no sync
    per step), so no checkpoint holds its parameters.

    Outputs under ``out_dir`` (nothing is written when it is None):
    ``metrics.jsonl`` (one JSON object per line: ``{"type": "train", "epoch", "step", "lr",
    "loss", <terms>, "grad_norm", "samples_per_s", "time"}`` every ``log_every`` steps and
    ``{"type": "eval", "epoch", "step", <metrics>}`` after each evaluation),
    ``checkpoints/epoch_NNNN.pt`` plus ``checkpoints/last.pt`` (see :mod:`pyvrel.engine.checkpoint`;
    written before that epoch's evaluation, so a failing evaluation keeps them) and, with
    ``config.best_metric``, ``checkpoints/best.pt`` of the evaluation with its best value (highest,
    or lowest with ``best_mode="min"``). Nothing is written before the settings are checked and the
    ``resume`` checkpoint is loaded; ``metrics.jsonl`` then loses its records after the resumed step
    (all of them on a fresh run) and a cut-short last line.

    Args:
        model: follows the model protocol of this module; moved to the training device.
        train_set: a map-style dataset.
        config: the settings; defaults to ``TrainConfig()``.
        collate_fn: turns a list of dataset items into the model's batch (default: torch's).
        evaluate: optional evaluation hook.
        out_dir: output folder.
        meta: JSON-ready dict stored in every checkpoint (model name and config, data).
        on_start: called on rank 0 once the settings are checked and the ``resume`` checkpoint is
            loaded, before anything is written to ``out_dir`` (e.g. to prepare the folder and
            write the run's config there).
    """

    def __init__(self, model: nn.Module, train_set: Dataset, config: TrainConfig | None = None, *,
                 collate_fn: Callable[[list], Any] | None = None, evaluate: EvalHook | None = None,
                 out_dir: str | Path | None = None, meta: Mapping[str, Any] | None = None,
                 on_start: Callable[[], None] | None = None) -> None:
        self.model, self.train_set = model, train_set
        self.config = config or TrainConfig()
        self.collate_fn, self.evaluate = collate_fn, evaluate
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.meta = dict(meta or {})
        self.on_start = on_start
        self.step = 0
        self.best: float | None = None  # best value of config.best_metric so far

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        cfg = self.config
        self.device = resolve_device(cfg.device)
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        self.rank, self.world = dist.rank(), dist.world_size()
        if cfg.batch_size % self.world:
            raise ConfigError("batch_size", f"the global batch {cfg.batch_size} does not split evenly over "
                                            f"{self.world} processes")
        self.local_batch = cfg.batch_size // self.world
        self.steps_per_epoch = len(self.train_set) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError("batch_size",
                              f"{cfg.batch_size} is larger than the dataset ({len(self.train_set)} items)")
        seed_everything(cfg.seed + self.rank)
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        self.model.to(self.device)
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay is not None else None
        self.optimizer = build_optimizer(self.model, cfg)
        total = round((cfg.schedule_epochs or cfg.epochs) * self.steps_per_epoch)
        warmup = round(cfg.warmup_epochs * self.steps_per_epoch)
        self.scheduler = WarmupCosine(self.optimizer, warmup, max(total, warmup), cfg.min_lr_ratio)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        # (output names, first step with a non-finite gradient norm or -1, its outputs) on the device
        self._bad: tuple[list[str], torch.Tensor, torch.Tensor] | None = None
        self.train_model: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=cfg.find_unused_parameters)
        self.sampler = DistributedSampler(self.train_set, num_replicas=self.world, rank=self.rank, shuffle=True,
                                          seed=cfg.seed, drop_last=True)

    def _loader(self, epoch: int, skip_steps: int) -> DataLoader:
        self.sampler.set_epoch(epoch)
        if callable(getattr(self.train_set, "set_epoch", None)):  # per-epoch augmentation (model protocol)
            self.train_set.set_epoch(epoch)
        order = _EpochSlice(self.sampler, skip_steps * self.local_batch, self.steps_per_epoch * self.local_batch)
        generator = torch.Generator().manual_seed(self.config.seed + 1_000_003 * epoch + 7_919 * self.rank)
        return DataLoader(self.train_set, batch_size=self.local_batch, sampler=order, collate_fn=self.collate_fn,
                          num_workers=self.config.num_workers, pin_memory=self.device.type == "cuda",
                          worker_init_fn=_seed_worker, generator=generator)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (collective under DDP: every rank must call it)."""
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else None, "step": self.step,
                "epoch": self.step // self.steps_per_epoch, "steps_per_epoch": self.steps_per_epoch,
                "world_size": self.world, "rng": dist.all_gather_objects(rng_state(self.device)), "best": self.best,
                "config": config_to_dict(self.config), "meta": self.meta}

    def save(self, name: str, *, link_last: bool = True) -> Path | None:
        """Write ``checkpoints/<name>`` and (``link_last``) ``checkpoints/last.pt`` on rank 0 (collective)."""
        state = self.state_dict()
        if self.out_dir is None or not dist.is_main():
            return None
        path = save_checkpoint(self.out_dir / "checkpoints" / name, state)
        if link_last and name != "last.pt":  # last.pt becomes a second name of the same file (a copy where links fail)
            tmp = path.with_name("last.pt.tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(path, tmp)
            except OSError:
                shutil.copyfile(path, tmp)
            os.replace(tmp, path.with_name("last.pt"))
        return path

    def _resume(self, path: str | Path) -> None:
        ckpt = load_checkpoint(path)
        if ckpt["steps_per_epoch"] != self.steps_per_epoch:
            raise ValueError(f"{path}: the checkpoint has {ckpt['steps_per_epoch']} steps per epoch, this run "
                             f"{self.steps_per_epoch} (dataset size or batch_size changed)")
        if self.ema is not None and ckpt["ema"] is None:
            raise ValueError(f"{path}: the checkpoint has no EMA weights but ema_decay is set")
        try:
            self.model.load_state_dict(ckpt["model"])
            if self.ema is not None:
                self.ema.load_state_dict(ckpt["ema"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:  # torch lists every mismatch on its own line
            problems = [ln.strip().rstrip(".") for ln in str(e).splitlines()[1:] if ln.strip()] or [str(e)]
            more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
            raise ValueError(f"{path}: the checkpoint does not fit this run's model (other model settings?): "
                             f"{'; '.join(problems[:2])}{more}") from None
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt["scaler"] is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = ckpt["step"]
        self.best = ckpt.get("best")
        if ckpt["world_size"] == self.world:
            set_rng_state(ckpt["rng"][self.rank], self.device)
        else:
            log.warning("%s was written by %d processes, this run has %d: random states are reseeded, so the "
                        "continuation is not bit-exact", path, ckpt["world_size"], self.world)
        log.info("resumed from %s at step %d (epoch %d)", path, self.step, self.step // self.steps_per_epoch)

    # ------------------------------------------------------------------ metrics
    def _write(self, record: dict[str, Any]) -> None:
        if self.out_dir is None or not dist.is_main():
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _truncate_metrics(self, step: int) -> None:
        """Drop the records of earlier runs in ``out_dir`` written after ``step`` (about to be redone)
        and a cut-short last line (:func:`~pyvrel.engine.rundir.read_metrics`)."""
        path = self.out_dir / "metrics.jsonl"
        if path.is_file():
            kept = [r for r in read_metrics(path) if r["step"] <= step]
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
            os.replace(tmp, path)

    def _run_eval(self, epoch: int, link_last: bool) -> dict[str, float] | None:
        """Evaluate, log, keep ``best.pt`` (also as ``last.pt`` when ``link_last``: the checkpoint of
        this step, written before evaluating, then holds the best value so far)."""
        use_ema = self.ema is not None and self.config.eval_ema
        model = self.ema.module if use_ema else self.model
        was_training = model.training
        model.eval()
        ctx = EvalContext(epoch, self.step, self.rank, self.world, self.device, self.out_dir)
        with torch.no_grad():
            metrics = self.evaluate(model, ctx)
        model.train(was_training)
        metrics = dist.all_gather_objects(metrics)[0]  # rank 0's, on every rank
        if metrics is None:
            return None
        metrics = {k: float(v) for k, v in metrics.items()}
        self._write({"type": "eval", "epoch": epoch, "step": self.step, "ema": use_ema, **metrics})
        if dist.is_main():
            log.info("eval after epoch %d: %s", epoch, ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        key = self.config.best_metric
        if key is not None:
            if key not in metrics:
                raise ConfigError("best_metric", f"{key!r} is not an evaluation metric (have {', '.join(metrics)})")
            value, best = metrics[key], self.best
            if best is None or (value > best if self.config.best_mode == "max" else value < best):
                self.best = value
                if self.save("best.pt", link_last=link_last):
                    log.info("best %s so far (%.4g): wrote checkpoints/best.pt", key, self.best)
        return metrics

    # ------------------------------------------------------------------ training
    def _train_step(self, batch: Any) -> tuple[dict[str, torch.Tensor], float]:
        cfg = self.config
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            out = self.train_model(batch)
        if not isinstance(out, Mapping) or "loss" not in out:
            raise TypeError(f"the model must return a mapping with a 'loss' entry, got {type(out).__name__}"
                            + (f" with keys {sorted(out)}" if isinstance(out, Mapping) else ""))
        bad = [k for k, v in out.items() if not (isinstance(v, torch.Tensor) and v.ndim == 0)]
        if bad:
            raise TypeError(f"the model's outputs must be scalar tensors; not scalar: {bad}")
        loss = out["loss"]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        max_norm = cfg.clip_grad_norm if cfg.clip_grad_norm is not None else math.inf
        grad_norm = nn.utils.clip_grad_norm_(params, max_norm).detach().double()
        outputs = {k: v.detach().double() for k, v in out.items()}
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the step when fp16 gradients overflowed
            self.scaler.update()
        else:
            self._note_nonfinite(grad_norm, outputs)
            if grad_norm.device.type == "cpu":  # reading it costs no device sync: stop before the step
                self._check_finite()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        return outputs, grad_norm

    def _note_nonfinite(self, grad_norm: torch.Tensor, outputs: dict[str, torch.Tensor]) -> None:
        """Remember on the device (no host sync) the first step whose gradient norm is not finite,
        and its outputs; :meth:`_raise_if_nonfinite` reads them at the next log record or save."""
        terms = torch.stack(list(outputs.values()))
        if self._bad is None:
            self._bad = (list(outputs), torch.full((), -1.0, dtype=torch.float64, device=terms.device),
                         torch.full_like(terms, math.nan))
        names, step, saved = self._bad
        new = (step < 0) & ~torch.isfinite(grad_norm)
        self._bad = (names, torch.where(new, float(self.step), step), torch.where(new, terms, saved))

    def _nonfinite_state(self) -> list[torch.Tensor]:
        """What :meth:`_raise_if_nonfinite` reads (to be copied to the host with other values)."""
        return [] if self._bad is None else [self._bad[1][None], self._bad[2]]

    def _raise_if_nonfinite(self, values: list[float]) -> None:
        """Raise if ``values`` (the host copy of :meth:`_nonfinite_state`) name a step with a
        non-finite gradient norm. Identical on every rank: gradients are all-reduced."""
        if values and values[0] >= 0:
            step = int(values[0])
            terms = dict(zip(self._bad[0], values[1:]))
            raise FloatingPointError(f"non-finite gradient norm at step {step} "
                                     f"(epoch {step // self.steps_per_epoch + 1}); outputs {terms}")

    def _check_finite(self) -> None:
        """Raise if a step so far had a non-finite gradient norm (before a checkpoint is written)."""
        state = self._nonfinite_state()
        if state:
            self._raise_if_nonfinite(torch.cat(state).tolist())

    def fit(self, resume: str | Path | None = None) -> dict[str, Any]:
        """Train for ``config.epochs`` epochs, resuming from the checkpoint ``resume`` if given.

        Returns ``{"step", "epoch", "train": last train record, "eval": last eval metrics or None,
        "checkpoint": path of checkpoints/last.pt or None}`` (the same on every rank, except that the
        eval metrics and checkpoint are rank 0's).
        """
        started = dist.init(resolve_device(self.config.device))
        try:
            return self._fit(resume)
        finally:
            self._drop_ddp()
            if started:
                dist.shutdown()

    def _drop_ddp(self) -> None:
        """Free the DistributedDataParallel wrapper while the process group is still registered.

        Its C++ reducer holds a reference to the gloo group and is freed with the GIL held; were that the
        group's last reference, the group's destructor would wait for a gloo worker thread that needs the
        GIL to free a finished collective's tensors: a deadlock after training (3 of 60 runs of the
        two-process VrdONE test; 0 of 113 since). Freed here, the reducer leaves the group to
        `destroy_process_group`, whose destructor releases the GIL.
        """
        if getattr(self, "train_model", self.model) is not self.model:  # _setup may not have run
            self.train_model = self.model
            gc.collect()  # the wrapper's reference cycles, so that it is gone now, not at some later collection

    def _fit(self, resume: str | Path | None) -> dict[str, Any]:
        cfg = self.config
        self._setup()
        if resume is not None:
            self._resume(resume)
        if self.out_dir is not None and dist.is_main():
            if self.on_start is not None:
                self.on_start()
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._truncate_metrics(self.step)  # a fresh run starts a new file
        train_record: dict[str, Any] = {}
        eval_metrics = None
        checkpoint = None
        window: dict[str, torch.Tensor] = {}  # sums over the steps since the last record, on the device
        window_steps, window_norm, t_window = 0, None, time.perf_counter()
        postfix = ""
        t_start = time.perf_counter()
        start_epoch = self.step // self.steps_per_epoch
        for epoch in range(start_epoch, cfg.epochs):
            skip = self.step - epoch * self.steps_per_epoch
            bar = ProgressBar(self.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}",
                              enabled=cfg.progress and dist.is_main())
            bar.update(skip)
            self.train_model.train()
            for batch in self._loader(epoch, skip):
                self.scheduler.set_step(self.step)
                lr = self.optimizer.param_groups[0]["lr"]
                outputs, grad_norm = self._train_step(move_to_device(batch, self.device))
                self.step += 1
                for k, v in outputs.items():
                    window[k] = window[k] + v if k in window else v
                window_steps += 1
                window_norm = grad_norm if window_norm is None else window_norm + grad_norm
                bar.update(1, postfix)
                if self.step % cfg.log_every == 0 or self.step % self.steps_per_epoch == 0:
                    # the record's one device -> host copy: means, gradient norm, non-finite check
                    names = sorted(window)
                    means = dist.mean_over_ranks(torch.stack([window[k] for k in names]) / window_steps)
                    values = torch.cat([means, window_norm[None], *self._nonfinite_state()]).tolist()
                    self._raise_if_nonfinite(values[len(names) + 1:])
                    elapsed = time.perf_counter() - t_window
                    train_record = {"type": "train", "epoch": epoch + 1, "step": self.step, "lr": lr,
                                    **dict(zip(names, values)),
                                    "grad_norm": values[len(names)] / window_steps,
                                    "samples_per_s": window_steps * cfg.batch_size / max(elapsed, 1e-9),
                                    "time": time.perf_counter() - t_start}
                    self._write(train_record)
                    postfix = f"loss {train_record['loss']:.4f} lr {lr:.2e}"
                    window, window_steps, window_norm, t_window = {}, 0, None, time.perf_counter()
                if cfg.checkpoint_every_steps and self.step % cfg.checkpoint_every_steps == 0:
                    self._check_finite()
                    checkpoint = self.save("last.pt") or checkpoint
            bar.close()
            done, last = epoch + 1, epoch + 1 == cfg.epochs
            saved = last or bool(cfg.checkpoint_every and done % cfg.checkpoint_every == 0)
            if saved:  # before evaluating: an evaluation that fails keeps this epoch's checkpoint
                self.save(f"epoch_{done:04d}.pt")
                if self.out_dir is not None and dist.is_main():
                    checkpoint = self.out_dir / "checkpoints" / "last.pt"
            if self.evaluate is not None and cfg.eval_every and (last or done % cfg.eval_every == 0):
                eval_metrics = self._run_eval(done, link_last=saved)
        return {"step": self.step, "epoch": self.step // self.steps_per_epoch, "train": train_record,
                "eval": eval_metrics, "checkpoint": checkpoint}
