"""``pyvrel demo vrgv``: vRGV and the co-occurrence baseline on a small synthetic world, on the CPU.

Each model is trained as ``pyvrel train --model vrgv`` does (:func:`pyvrel.engine.run.prepare_run`)
in ``out_dir/<title>/``: vRGV (stage 2 from scratch with the corrections that make it learn on the
synthetic world, ``docs/models.md`` "vRGV") and Co-occur (the same model reconstructing the subject
and object only). Each grounds with the temporal threshold that grounds its training videos best
(:func:`~pyvrel.models.vrgv.task.select_threshold`). Every ground-truth triplet of the held-out
videos is grounded and scored with AccS / AccO / AccR (:func:`pyvrel.eval.grounding_accuracy`: vRGV's
tIoU averaged over the spatial thresholds 0.3/0.5/0.7, a query correct at tIoU >= 0.5). Outputs: ``groundtruth.json``,
``<title>/groundings.json`` (official format), ``metrics.json`` and ``grounding.svg``: one grounded
query, its subject and object boxes against the ground truth over time and the temporal attention
(:func:`pyvrel.report.grounding_svg`).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from pyvrel.data import Relation, write_annotations, write_predictions
from pyvrel.data.dataset import open_dataset
from pyvrel.demo import list_written
from pyvrel.engine import load_checkpoint
from pyvrel.engine.run import prepare_run
from pyvrel.eval import grounding_accuracy
from pyvrel.models.vrgv.task import load_grounder, select_threshold
from pyvrel.report import GROUNDING_COLUMNS, grounding_svg, metrics_table

__all__ = ["run_demo"]

#: full: 60 videos, 20 epochs (about 2 minutes per model on one CPU thread); quick: a tiny world and one
#: short epoch, for tests.
_MODEL = {"attention": "bilinear", "decoder_state": "zeros", "frame_values": "inputs", "temporal_score": "frame",
          "eval_split": None}
_TRAIN = {"epochs": 20, "lr": 1e-3, "warmup_epochs": 0.5, "clip_grad_norm": 5.0, "seed": 0, "log_every": 10,
          "device": "cpu", "checkpoint_every": 0, "eval_every": 0, "best_metric": None}
_CONFIGS = {
    "full": {"model": {**_MODEL, "world": {"num_videos": 60}}, "train": _TRAIN},
    "quick": {"model": {**_MODEL, "world": {"num_videos": 6, "frames": [40, 60]}, "hidden_dim": 16, "embed_dim": 8},
              "train": {**_TRAIN, "epochs": 1, "batch_size": 8, "log_every": 1, "warmup_epochs": 0.0}},
}
#: The models of the table: title -> (``model:`` overrides, the note printed under the table).
_MODELS = {"vRGV": ({}, None),
           "Co-occur": ({"cooccurrence": True}, "the same model trained to reconstruct the subject and object only "
                                                "(no predicate), the paper's co-occurrence baseline")}


def run_demo(out_dir: str | Path = "pyvrel_demo", quick: bool = False, threads: int = 1) -> dict[str, Any]:
    """``pyvrel demo vrgv`` (module docstring); returns ``{"results", "table", "seconds", "steps", ...}``."""
    config = _CONFIGS["quick" if quick else "full"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    t0, started = time.perf_counter(), time.time() - 1  # files modified since then were written by this run
    results, notes, groundings, grounders, steps = {}, {}, {}, {}, {}
    dataset = gt = None
    for name, (overrides, note) in _MODELS.items():
        run = prepare_run("vrgv", "synthetic", {**config, "model": {**config["model"], **overrides}}, out / name)
        world = run.meta["model_config"]["world"]
        print(f"world: {world['num_videos']} synthetic videos, {len(run.task.train_set)} training samples; training "
              f"{name} for {run.train.epochs} epochs on the CPU", flush=True)
        summary = run.fit()
        steps[name] = summary["step"]
        if dataset is None:
            dataset = open_dataset("synthetic", world)
            test = dataset.annotations("test")
            gt = {v: a.relation_view() for v, a in test.items()}
            write_annotations(list(test.values()), out / "groundtruth.json", layout="file")
        grounder = grounders[name] = load_grounder(load_checkpoint(summary["checkpoint"]))
        sigma, _ = select_threshold(grounder.model, grounder.cfg, grounder.resolved["objects"], dataset, "train")
        grounder.cfg = replace(grounder.cfg, temporal_threshold=sigma)
        print(f"{name}: temporal threshold {sigma:.4f} (grounds the training videos best)", flush=True)
        groundings[name] = grounders[name].ground(dataset, "test")
        write_predictions(groundings[name], out / name / "groundings.json")
        results[name] = {"Grounding": grounding_accuracy(gt, groundings[name])}
        if note:
            notes[name] = note
    table = metrics_table(results, notes, GROUNDING_COLUMNS)
    seconds = time.perf_counter() - t0
    report = {"model": "vrgv", "results": results, "seconds": seconds, "steps": steps, "world": world,
              "test_videos": len(gt)}
    (out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    # the picture: vRGV's best-grounded query (ties: the first video, the first triplet)
    vid, rel = _pick_query(gt, groundings["vRGV"])
    sampled, attention, threshold = grounders["vRGV"].temporal_attention(dataset, "test", vid, rel.triplet)
    truth = [g for g in gt[vid] if tuple(g.triplet) == tuple(rel.triplet)]
    (out / "grounding.svg").write_text(grounding_svg(vid, dataset.annotations("test")[vid].frame_count, truth, rel,
                                                     sampled.tolist(), attention.tolist(), threshold))
    print(f"\ntrained {', '.join(f'{n} {s} steps' for n, s in steps.items())}; {len(gt)} held-out videos; "
          f"total {seconds:.0f} s\n")
    print(table)
    list_written(out, started)
    return {**report, "table": table}


def _pick_query(groundtruth: Mapping[str, Sequence[Relation]], groundings: Mapping[str, Sequence[Relation]]
                ) -> tuple[str, Relation]:
    """The grounded query whose subject and object overlap the ground truth most (min of the two tIoUs)."""
    from pyvrel.eval.grounding import frame_tiou

    def quality(vid: str, r: Relation) -> float:
        return max((min(frame_tiou(r.sub_traj, r.duration, g.sub_traj, g.duration),
                        frame_tiou(r.obj_traj, r.duration, g.obj_traj, g.duration))
                    for g in groundtruth[vid] if tuple(g.triplet) == tuple(r.triplet)), default=0.0)

    candidates = [(vid, r) for vid in sorted(groundings) for r in groundings[vid]]
    if not candidates:
        raise ValueError("the grounder grounded no query in the held-out videos")
    return max(candidates, key=lambda c: quality(*c))
