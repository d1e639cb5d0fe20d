"""``pyvrel demo [MODEL]``: train a registered model (VrdONE by default) on a small synthetic world on
the CPU through the same entry as ``pyvrel train`` (:func:`pyvrel.engine.run.prepare_run`: the
model's ``train_defaults`` under the demo settings of its registry entry), detect, evaluate next to
the frequency prior, and draw a relation timeline and the training curve (SVG, written directly).

Outputs in ``out_dir``: ``config.json``, ``checkpoints/last.pt`` (and ``epoch_*.pt``),
``metrics.jsonl`` (training records), ``groundtruth.json`` (the held-out videos' annotations),
``predictions.json`` and, for models with the baseline, ``prior_predictions.json`` (official format;
``pyvrel eval groundtruth.json predictions.json`` reproduces the printed table), ``metrics.json``
(the scores), ``timeline.svg`` and ``training_curve.svg`` (pictures: :mod:`pyvrel.report`).

A model that grounds queries instead of detecting (an entry with ``ground`` and no ``load``: vRGV)
is trained, and its baseline (the demo settings' ``"baseline"``: a title, ``model:`` overrides and
a note) likewise, in ``out_dir/<title>/``; every ground-truth triplet of the held-out videos is
grounded and scored with AccS / AccO / AccR (:func:`pyvrel.eval.grounding_accuracy`: vRGV's
tIoU averaged over the spatial thresholds 0.3/0.5/0.7, a query correct at tIoU >= 0.5); outputs:
``groundtruth.json``, ``<title>/groundings.json`` (official format), ``metrics.json`` and
``grounding.svg``: one grounded query, its subject and object boxes against the ground truth over
time and the temporal attention (:func:`pyvrel.report.grounding_svg`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from pyvrel.data import Relation, write_annotations, write_predictions
from pyvrel.data.dataset import open_dataset
from pyvrel.engine import config_to_dict, load_checkpoint
from pyvrel.engine.registry import get_model, load_detector, load_grounder, model_part
from pyvrel.engine.run import prepare_run
from pyvrel.engine.rundir import read_metrics
from pyvrel.eval import evaluate_relations, grounding_accuracy
from pyvrel.report import GROUNDING_COLUMNS, curve_svg, grounding_svg, metrics_table, timeline_svg

__all__ = ["run_demo"]

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
    grounds = entry.load is None and entry.ground is not None
    model_part(model, "ground" if grounds else "load")  # fail before training when it cannot be loaded back
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    t0, started = time.perf_counter(), time.time() - 1  # files modified since then were written by this run
    if grounds:
        return _grounding_demo(model, settings, config, out, t0, started)
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
    _list_written(out, started)
    prior = f" (and {out / 'prior_predictions.json'})" if "frequency prior" in results else ""
    print(f"reproduce the table: pyvrel eval {out / 'groundtruth.json'} {out / 'predictions.json'}{prior}")
    return {**report, "table": table}


def _list_written(out: Path, started: float) -> None:
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.stat().st_mtime >= started)
    print(f"\nwritten to {out}/: " + ", ".join(written))


def _grounding_demo(model: str, settings: Mapping[str, Any], config: Mapping[str, Any], out: Path, t0: float,
                    started: float) -> dict[str, Any]:
    """The demo of a grounding model (module docstring): the model and its baseline, AccS/AccO/AccR, a picture."""
    title = get_model(model).title
    runs = [(title, config, None)]
    if "baseline" in settings:
        base = settings["baseline"]
        runs.append((base["title"], {**config, "model": {**config.get("model", {}), **base["model"]}}, base["note"]))
    results, notes, groundings, steps = {}, {}, {}, {}
    dataset = gt = None
    for name, cfg, note in runs:
        run = prepare_run(model, "synthetic", cfg, out / name)
        world = run.meta["model_config"]["world"]
        print(f"world: {world['num_videos']} synthetic videos, {len(run.task.train_set)} training samples; training "
              f"{name} for {run.train.epochs} epochs on the CPU", flush=True)
        summary = run.fit()
        steps[name] = summary["step"]
        grounder = load_grounder(load_checkpoint(summary["checkpoint"]))
        if dataset is None:
            dataset = open_dataset("synthetic", world)
            test = dataset.annotations("test")
            gt = {v: a.relation_view() for v, a in test.items()}
            write_annotations(list(test.values()), out / "groundtruth.json", layout="file")
        groundings[name] = grounder.ground(dataset, "test")
        write_predictions(groundings[name], out / name / "groundings.json")
        results[name] = {"Grounding": grounding_accuracy(gt, groundings[name])}
        if note:
            notes[name] = note
        if name == title:
            model_grounder = grounder
    table = metrics_table(results, notes, GROUNDING_COLUMNS)
    seconds = time.perf_counter() - t0
    report = {"model": model, "results": results, "seconds": seconds, "steps": steps, "world": world,
              "test_videos": len(gt)}
    (out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    # the picture: the query of the model's best-grounded relation (ties: the first video, the first triplet)
    vid, rel = _pick_query(gt, groundings[title])
    sampled, attention, threshold = model_grounder.temporal_attention(dataset, "test", vid, rel.triplet)
    truth = [g for g in gt[vid] if tuple(g.triplet) == tuple(rel.triplet)]
    (out / "grounding.svg").write_text(grounding_svg(vid, dataset.annotations("test")[vid].frame_count, truth, rel,
                                                     sampled.tolist(), attention.tolist(), threshold))
    print(f"\ntrained {', '.join(f'{n} {s} steps' for n, s in steps.items())}; {len(gt)} held-out videos; "
          f"total {seconds:.0f} s\n")
    print(table)
    _list_written(out, started)
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
