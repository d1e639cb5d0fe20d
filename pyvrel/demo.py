"""``pyvrel demo [MODEL]``: train a registered model (VrdONE by default) on a small synthetic world on
the CPU through the same entry as ``pyvrel train`` (:func:`pyvrel.engine.run.prepare_run`: the
model's ``train_defaults`` under the demo settings of its registry entry), detect, evaluate next to
the frequency prior, and draw a relation timeline and the training curve (SVG, written directly).

Outputs in ``out_dir``: ``config.json``, ``checkpoints/last.pt`` (and ``epoch_*.pt``),
``metrics.jsonl`` (training records), ``groundtruth.json`` (the held-out videos' annotations),
``predictions.json`` and, for models with the baseline, ``prior_predictions.json`` (official format;
``pyvrel eval groundtruth.json predictions.json`` reproduces the printed table), ``metrics.json``
(the scores), ``timeline.svg`` and ``training_curve.svg`` (pictures: :mod:`pyvrel.report`).

A model whose registry ``demo`` is a function (vRGV, UASAN, DLL, HVR-Net) runs that function instead.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from pyvrel.data import write_annotations, write_predictions
from pyvrel.data.dataset import open_dataset
from pyvrel.engine import config_to_dict, load_checkpoint
from pyvrel.engine.registry import get_model, load_detector, model_part
from pyvrel.engine.run import prepare_run
from pyvrel.engine.rundir import read_metrics
from pyvrel.eval import evaluate_relations
from pyvrel.report import curve_svg, metrics_table, timeline_svg

__all__ = ["list_written", "run_demo"]

#: What the demo's baseline row is, printed under the table.
PRIOR_NOTE = ("a baseline that gives each pair of detected tracklets the predicates most often annotated "
              "between their two categories in the training videos (no video features)")


def run_demo(out_dir: str | Path = "pyvrel_demo", quick: bool = False, threads: int = 1,
             model: str = "vrdone") -> dict[str, Any]:
    """Run the demo of ``model`` (see the module docstring); returns ``{"results", "table", "seconds", ...}``.

    Raises :class:`~pyvrel.engine.UnknownModelError` when ``model`` has no demo settings or loader.
    """
    entry = get_model(model)
    settings = model_part(model, "demo")
    if callable(settings):  # the model's own demo (pyvrel.engine.registry)
        return settings(out_dir, quick=quick, threads=threads)
    config = settings["quick" if quick else "full"]
    model_part(model, "load")  # fail before training when it cannot be loaded back
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    t0, started = time.perf_counter(), time.time() - 1  # files modified since then were written by this run
    run = prepare_run(model, "synthetic", config, out)
    world = run.meta["model_config"]["world"]
    print(f"world: {world['num_videos']} synthetic videos, {len(run.task.train_set)} training samples; training "
          f"{entry.title} for {run.train.epochs} epochs on the CPU", flush=True)
    summary = run.fit()
    train_s = time.perf_counter() - t0
    detector = load_detector(load_checkpoint(summary["checkpoint"]))
    dataset = open_dataset("synthetic", world)
    with torch.no_grad():
        preds = detector.detect(dataset, "test")
    write_predictions(preds, out / "predictions.json")
    test = list(dataset.videos("test", len(detector.vocabulary.objects)))
    gt = {a.video_id: a.relation_view() for a, _ in test}
    write_annotations([a for a, _ in test], out / "groundtruth.json", layout="file")
    results = {entry.title: evaluate_relations(gt, preds)}
    notes = {}
    if hasattr(detector, "baseline"):  # the frequency prior on the tracklets the model sees
        prior = detector.baseline().fit(dataset.annotations("train").values())
        prior_preds = {a.video_id: prior.predict_video(detector.tracklets(f)) for a, f in test}
        write_predictions(prior_preds, out / "prior_predictions.json")
        results["frequency prior"] = evaluate_relations(gt, prior_preds)
        notes["frequency prior"] = PRIOR_NOTE
    table = metrics_table(results, notes)
    seconds = time.perf_counter() - t0
    report = {"model": model, "results": results, "train_seconds": train_s, "seconds": seconds,
              "steps": summary["step"], "world": world, "train": config_to_dict(run.train), "test_videos": len(test)}
    (out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    anno = min(test, key=lambda v: (abs(len(v[0].relations) - 8), v[0].video_id))[0]  # a readable picture
    (out / "timeline.svg").write_text(timeline_svg(anno.video_id, anno.frame_count, gt[anno.video_id],
                                                   preds[anno.video_id]))
    records = read_metrics(out / "metrics.jsonl")
    (out / "training_curve.svg").write_text(curve_svg(records))
    print(f"\ntrained {summary['step']} steps in {train_s:.0f} s; {len(test)} held-out videos; total {seconds:.0f} s\n")
    print(table)
    list_written(out, started)
    prior = f" (and {out / 'prior_predictions.json'})" if "frequency prior" in results else ""
    print(f"reproduce the table: pyvrel eval {out / 'groundtruth.json'} {out / 'predictions.json'}{prior}")
    return {**report, "table": table}


def list_written(out: Path, started: float) -> None:
    """Print the files under ``out`` modified since ``started`` (a ``time.time()``)."""
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.stat().st_mtime >= started)
    print(f"\nwritten to {out}/: " + ", ".join(written))
