"""``pyvrel demo [MODEL]``: train a registered model (VrdONE by default) on a small synthetic world on
the CPU through the same entry as ``pyvrel train`` (:func:`pyvrel.engine.run.prepare_run`: the
model's ``train_defaults`` under the demo settings of its registry entry), detect, evaluate next to
the frequency prior, and draw a relation timeline and the training curve (SVG, written directly).

Outputs in ``out_dir``: ``checkpoints/last.pt``, ``metrics.jsonl`` (training records),
``predictions.json`` (official format), ``metrics.json`` (both models' scores),
``timeline.svg`` and ``training_curve.svg``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import torch

from pyvrel.data import Relation, write_predictions
from pyvrel.data.dataset import open_dataset
from pyvrel.engine import config_to_dict, load_checkpoint
from pyvrel.engine.registry import get_model, load_detector, model_part
from pyvrel.engine.run import prepare_run
from pyvrel.eval import evaluate_relations

__all__ = ["run_demo", "timeline_svg", "curve_svg"]


def _bars(rows: Sequence[tuple[str, list[tuple[int, int, str]]]], frames: int, title: str) -> str:
    width, label_w, row_h, top = 900, 330, 18, 40
    scale = (width - label_w - 20) / max(frames, 1)
    h = top + row_h * len(rows) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" font-family="sans-serif" '
           f'font-size="11">', f'<text x="10" y="20" font-size="14">{escape(title)}</text>']
    for i, (label, spans) in enumerate(rows):
        y = top + i * row_h
        out.append(f'<text x="10" y="{y + 12}">{escape(label)}</text>')
        for b, e, color in spans:
            out.append(f'<rect x="{label_w + b * scale:.1f}" y="{y + 2}" width="{max((e - b) * scale, 1):.1f}" '
                       f'height="{row_h - 5}" fill="{color}" fill-opacity="0.75"/>')
    y = top + row_h * len(rows) + 15
    out.append(f'<line x1="{label_w}" y1="{y - 8}" x2="{width - 20}" y2="{y - 8}" stroke="black"/>')
    out.append(f'<text x="{label_w}" y="{y + 6}">0</text><text x="{width - 50}" y="{y + 6}">{frames} frames</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def timeline_svg(video_id: str, frames: int, groundtruth: Sequence[Relation], detections: Sequence[Relation],
                 max_detections: int = 20) -> str:
    """One video's relations over time: per triplet, ground truth (green) above the top
    ``max_detections`` detections (blue, opacity ~ score)."""
    triplets: dict[tuple[str, str, str], list[tuple[int, int, str]]] = {}
    for r in groundtruth:
        triplets.setdefault(r.triplet, []).append((r.duration[0], r.duration[1], "#2ca02c"))
    dets: dict[tuple[str, str, str], list[tuple[int, int, str]]] = {}
    for r in sorted(detections, key=lambda r: -r.score)[:max_detections]:
        dets.setdefault(r.triplet, []).append((r.duration[0], r.duration[1], "#1f77b4"))
    rows = []
    for t in list(triplets) + [t for t in dets if t not in triplets]:
        name = " ".join(t)
        if t in triplets:
            rows.append((f"GT   {name}", triplets[t]))
        if t in dets:
            rows.append((f"det  {name}", dets[t]))
    return _bars(rows, frames, f"{video_id}: ground truth (green) vs top-{max_detections} VrdONE detections (blue)")


def curve_svg(records: Sequence[Mapping[str, Any]], key: str = "loss") -> str:
    """The training curve: ``key`` of the train records of ``metrics.jsonl`` against the step."""
    pts = [(r["step"], r[key]) for r in records if r.get("type") == "train" and key in r]
    width, height, pad = 640, 360, 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11">', f'<text x="{pad}" y="20" font-size="14">training {escape(key)} per step</text>']
    if pts:
        x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
        y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
        sx = (width - 2 * pad) / max(x1 - x0, 1)
        sy = (height - 2 * pad) / max(y1 - y0, 1e-9)
        line = " ".join(f"{pad + (x - x0) * sx:.1f},{height - pad - (y - y0) * sy:.1f}" for x, y in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="#d62728" stroke-width="1.5"/>')
        out.append(f'<text x="5" y="{pad + 4}">{y1:.3g}</text><text x="5" y="{height - pad + 4}">{y0:.3g}</text>')
        out.append(f'<text x="{pad}" y="{height - pad + 18}">step {x0}</text>'
                   f'<text x="{width - pad - 40}" y="{height - pad + 18}">step {x1}</text>')
    out.append(f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" fill="none" '
               f'stroke="black"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _table(results: Mapping[str, Mapping[str, Any]]) -> str:
    lines = ["| model | RelDet mAP | R@50 | R@100 | RelTag P@1 | P@5 | P@10 |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        d, t = r["RelDet"], r["RelTag"]
        lines.append(f"| {name} | {100 * d['mAP']:.2f} | {100 * d['R@50']:.2f} | {100 * d['R@100']:.2f} | "
                     f"{100 * t['P@1']:.2f} | {100 * t['P@5']:.2f} | {100 * t['P@10']:.2f} |")
    return "\n".join(lines)


def run_demo(out_dir: str | Path = "pyvrel_demo", quick: bool = False, threads: int = 1,
             model: str = "vrdone") -> dict[str, Any]:
    """Run the demo of ``model`` (see the module docstring); returns ``{"results", "table", "seconds", ...}``.

    Raises :class:`~pyvrel.engine.UnknownModelError` when ``model`` has no demo settings or loader.
    """
    entry = get_model(model)
    config = model_part(model, "demo")["quick" if quick else "full"]
    model_part(model, "load")  # fail before training when it cannot be loaded back
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
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
    results = {entry.title: evaluate_relations(gt, preds)}
    if hasattr(detector, "baseline"):  # the frequency prior on the tracklets the model sees
        prior = detector.baseline().fit(dataset.annotations("train").values())
        prior_preds = {a.video_id: prior.predict_video(detector.tracklets(f)) for a, f in test}
        results["frequency prior"] = evaluate_relations(gt, prior_preds)
    table = _table(results)
    seconds = time.perf_counter() - t0
    report = {"model": model, "results": results, "train_seconds": train_s, "seconds": seconds,
              "steps": summary["step"], "world": world, "train": config_to_dict(run.train), "test_videos": len(test)}
    (out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    anno = min(test, key=lambda v: (abs(len(v[0].relations) - 8), v[0].video_id))[0]  # a readable picture
    (out / "timeline.svg").write_text(timeline_svg(anno.video_id, anno.frame_count, gt[anno.video_id],
                                                   preds[anno.video_id]))
    records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln]
    (out / "training_curve.svg").write_text(curve_svg(records))
    print(f"\ntrained {summary['step']} steps in {train_s:.0f} s; {len(test)} held-out videos; total {seconds:.0f} s\n")
    print(table)
    print(f"\noutputs in {out}: predictions.json, metrics.json, config.json, checkpoints/last.pt, timeline.svg, "
          "training_curve.svg")
    return {**report, "table": table}
