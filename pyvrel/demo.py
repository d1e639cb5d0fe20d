"""``pyvrel demo``: train VrdONE on a small synthetic world on the CPU, detect, evaluate next to the
frequency prior, and draw a relation timeline and the training curve (SVG, written directly).

Outputs in ``out_dir``: ``checkpoints/last.pt`` (and ``epoch_*.pt``), ``metrics.jsonl`` (training
records), ``groundtruth.json`` (the held-out videos' annotations), ``predictions.json`` and
``prior_predictions.json`` (official format; ``pyvrel eval groundtruth.json predictions.json``
reproduces the printed table), ``metrics.json`` (both models' scores), ``timeline.svg`` and
``training_curve.svg`` (pictures: :mod:`pyvrel.report`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from pyvrel.data import write_annotations, write_predictions
from pyvrel.engine import TrainConfig, Trainer, load_checkpoint, seed_everything
from pyvrel.eval import evaluate_relations
from pyvrel.models.baselines import FrequencyPrior
from pyvrel.models.vrdone.inference import deduplicate
from pyvrel.models.vrdone.samples import detected_tracklets
from pyvrel.models.vrdone.task import DEMO_WORLD, build_task, detect, load_videos, model_from_checkpoint
from pyvrel.report import curve_svg, metrics_table, timeline_svg

__all__ = ["run_demo"]

#: What the demo's baseline row is, printed under the table.
PRIOR_NOTE = ("a baseline that gives each pair of detected tracklets the predicates most often annotated "
              "between their two categories in the training videos (no video features)")

#: Training settings of the full demo (624 steps, about 3.5 minutes of training on one CPU thread).
FULL_TRAIN = {"epochs": 24, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 2.0,
              "clip_grad_norm": 1.0, "ema_decay": 0.99, "log_every": 5, "device": "cpu", "checkpoint_every": 0}
QUICK_WORLD = {**DEMO_WORLD, "num_videos": 8, "frames": [60, 100]}
QUICK_TRAIN = {**FULL_TRAIN, "epochs": 1, "batch_size": 4, "log_every": 1, "warmup_epochs": 0.0}


def run_demo(out_dir: str | Path = "pyvrel_demo", quick: bool = False, threads: int = 1) -> dict[str, Any]:
    """Run the demo (see the module docstring); returns ``{"results", "table", "seconds", ...}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    t0, started = time.perf_counter(), time.time() - 1  # files modified since then were written by this run
    world = QUICK_WORLD if quick else DEMO_WORLD
    train_values = QUICK_TRAIN if quick else FULL_TRAIN
    train_cfg = TrainConfig(**train_values)
    seed_everything(train_cfg.seed)
    task = build_task({"world": world}, "synthetic")
    print(f"world: {world['num_videos']} synthetic videos, {len(task.train_set)} training pairs; training VrdONE "
          f"for {train_cfg.epochs} epochs on the CPU", flush=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    meta = {"model": "vrdone", "model_config": dict(task.model_config), "data": "synthetic"}
    summary = Trainer(task.model, task.train_set, train_cfg, collate_fn=task.collate_fn, out_dir=out,
                      meta=meta).fit()
    train_s = time.perf_counter() - t0
    model, cfg, vocab = model_from_checkpoint(load_checkpoint(summary["checkpoint"]))
    with torch.no_grad():
        preds = detect(model, cfg, "synthetic", world, "test", vocab)
    write_predictions(preds, out / "predictions.json")
    objects = list(vocab.objects)
    test = list(load_videos("synthetic", world, "test", len(objects)))
    train = [a for a, _ in load_videos("synthetic", world, "train", len(objects))]
    gt = {a.video_id: a.relation_view() for a, _ in test}
    write_annotations([a for a, _ in test], out / "groundtruth.json", layout="file")
    prior = FrequencyPrior(topk=cfg.topk, min_frames=cfg.proposal_min_frames, n_max=cfg.n_max_pair).fit(train)
    prior_preds = {a.video_id: prior.predict_video(deduplicate(detected_tracklets(f, objects), cfg.dedup_threshold))
                   for a, f in test}
    write_predictions(prior_preds, out / "prior_predictions.json")
    results = {"VrdONE": evaluate_relations(gt, preds), "frequency prior": evaluate_relations(gt, prior_preds)}
    table = metrics_table(results, {"frequency prior": PRIOR_NOTE})
    seconds = time.perf_counter() - t0
    report = {"results": results, "train_seconds": train_s, "seconds": seconds, "steps": summary["step"],
              "world": world, "train": train_values, "test_videos": len(test)}
    (out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    anno = min(test, key=lambda v: (abs(len(v[0].relations) - 8), v[0].video_id))[0]  # a readable picture
    (out / "timeline.svg").write_text(timeline_svg(anno.video_id, anno.frame_count, gt[anno.video_id],
                                                   preds[anno.video_id]))
    records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln]
    (out / "training_curve.svg").write_text(curve_svg(records))
    print(f"\ntrained {summary['step']} steps in {train_s:.0f} s; {len(test)} held-out videos; total {seconds:.0f} s\n")
    print(table)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.stat().st_mtime >= started)
    print(f"\nwritten to {out}/: " + ", ".join(written))
    print(f"reproduce the table: pyvrel eval {out / 'groundtruth.json'} {out / 'predictions.json'} (and "
          f"{out / 'prior_predictions.json'})")
    return {**report, "table": table}
