"""``pyvrel demo hvrnet`` and the variant study of ``scripts/train_hvrnet_synthetic.py``.

:func:`compare_variants` trains HVR-Net three times on one synthetic world with confusable
categories (:mod:`pyvrel.data.synthetic.streams.hvrnet`), as ``pyvrel train --model hvrnet`` does:
frame only (``relations="none"``), + intra-video relations (``"intra"``), + intra- and inter-video
relations with the proposal triplet loss (``"inter"``), and evaluates each on the held-out videos
(frame mAP@0.5 and proposal classification accuracy, all categories and the confusable ones). The
last model's detections then go through the front end (:func:`pyvrel.track.track_folder`) and the
tracklets are scored against the ground-truth tracks (:func:`pyvrel.track.track_recall`).

:func:`run_demo` does this on a small world, prints the table and draws one held-out video's
tracklets against its ground-truth tracks (``tracks.svg``, :func:`pyvrel.report.tracks_svg`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from pyvrel.data import FeatureStore
from pyvrel.data.dataset import open_dataset
from pyvrel.data.synthetic import SynthConfig, write_world
from pyvrel.engine import load_checkpoint
from pyvrel.engine.config import config_from_dict
from pyvrel.engine.run import prepare_run
from pyvrel.models.hvrnet.task import model_from_checkpoint, write_detections
from pyvrel.report import tracks_svg
from pyvrel.track import track_folder, track_recall

__all__ = ["MINING_VARIANTS", "VARIANTS", "compare_variants", "run_demo", "variant_table"]

#: The compared variants: name -> (run folder, ``model:`` overrides).
VARIANTS = {"frame only": ("none", {"relations": "none"}), "+ intra-video": ("intra", {"relations": "intra"}),
            "+ intra + inter-video": ("inter", {"relations": "inter"})}
#: The inter-video stage with other triplets (``triplet_mining``: semi-hard, attention-weighted;
#: ``triplet_similarity``) and hard-video descriptors (``mining_descriptor``) than the code's, for the
#: study (``scripts/train_hvrnet_synthetic.py --variants``).
MINING_VARIANTS = {
    "+ inter, semi-hard": ("inter_semihard", {"relations": "inter", "triplet_mining": "semihard"}),
    "+ inter, object mining": ("inter_object", {"relations": "inter", "mining_descriptor": "object"}),
    "+ inter, cosine semi-hard": ("inter_cosine_semihard", {"relations": "inter", "triplet_similarity": "cosine",
                                                            "triplet_mining": "semihard"}),
    "+ inter, object, cosine semi-hard": ("inter_object_cosine_semihard", {
        "relations": "inter", "mining_descriptor": "object", "triplet_similarity": "cosine", "triplet_mining": "semihard"}),
    "+ inter, attention": ("inter_attention", {"relations": "inter", "triplet_mining": "attention"})}
_DEMO = {"full": ({"num_videos": 80, "frames": [60, 100]}, {"epochs": 20}),
         "quick": ({"num_videos": 10, "frames": [40, 50]}, {"epochs": 1})}


def compare_variants(out_dir: str | Path, world: Mapping[str, Any], train: Mapping[str, Any],
                     variants: Sequence[str] = tuple(VARIANTS), log: Any = print, track: str | None = None,
                     model: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train and evaluate each variant (module docstring; names of :data:`VARIANTS` or
    :data:`MINING_VARIANTS`) in ``out_dir/<run folder>``, then track the detections of every video
    by the ``track`` variant (default: the last) in ``out_dir/tracked``. ``world``: synthetic world
    overrides, ``train``: ``train:`` settings, ``model``: ``model:`` settings of every variant (a
    variant's own keys win). Returns ``{"results": {variant: metrics + seconds},
    "tracking": track_recall's summary (no per-video part), "world", "train"}``."""
    out = Path(out_dir)
    known = {**VARIANTS, **MINING_VARIANTS}
    unknown = [name for name in [*variants, track] if name is not None and name not in known]
    if unknown or track not in (None, *variants):
        raise ValueError(f"variants: expected names among {', '.join(known)} (track: one of the variants), got "
                         f"{', '.join(map(repr, unknown or [track]))}")
    results, checkpoints = {}, {}
    for name in variants:
        t0 = time.perf_counter()
        folder, overrides = known[name]
        run = prepare_run("hvrnet", "synthetic", {"model": {**(model or {}), **overrides, "world": dict(world)},
                                                  "train": {"progress": False, **train}}, out / folder)
        summary = run.fit()
        results[name] = {**summary["eval"], "seconds": time.perf_counter() - t0, "steps": summary["step"]}
        checkpoints[name] = summary["checkpoint"]
        log(f"{name}: {_row(results[name])} ({results[name]['seconds']:.0f} s)")
    model, resolved = model_from_checkpoint(load_checkpoint(checkpoints[track or variants[-1]]))
    write_world(out / "world", config_from_dict(SynthConfig, {**resolved["world"], "features": False}))  # the annotations: the dataset folder pyvrel track reads
    dataset = open_dataset("synthetic", resolved["world"])
    for split in ("train", "test"):
        write_detections(model, dataset, split, resolved["objects"], out / "detections")
    track_folder(out / "detections", out / "world", out / "tracked")
    tracking = track_recall(out / "world", out / "tracked", split="test")
    return {"results": results, "tracking": tracking, "world": resolved["world"], "train": dict(train),
            "objects": resolved["objects"]}


def _row(m: Mapping[str, float]) -> str:
    return (f"frame mAP@0.5 {100 * m['mAP']:.1f} (confusable {100 * m['mAP_confusable']:.1f}), proposal accuracy "
            f"{100 * m['acc']:.1f} (confusable {100 * m['acc_confusable']:.1f})")


def variant_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """The variants' scores (%) as an aligned table."""
    cols = ("mAP_confusable", "acc_confusable", "mAP", "acc")
    head = ("confusable mAP@0.5", "confusable acc", "all mAP@0.5", "all acc")
    width = max(len(n) for n in results) + 2
    lines = [" " * width + "  ".join(f"{h:>18}" for h in head)]
    for name, m in results.items():
        lines.append(f"{name:<{width}}" + "  ".join(f"{100 * m[c]:>18.1f}" for c in cols))
    return "\n".join(lines)


def run_demo(out_dir: str | Path = "pyvrel_demo", quick: bool = False, threads: int = 1) -> dict[str, Any]:
    """``pyvrel demo hvrnet`` (module docstring); writes ``metrics.json`` and ``tracks.svg`` in ``out_dir``."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    world, train = _DEMO["quick" if quick else "full"]
    out = Path(out_dir)
    print(f"HVR-Net on a synthetic world of {world['num_videos']} videos with confusable categories: three variants, "
          f"{train['epochs']} epochs each, on the CPU", flush=True)
    report = compare_variants(out, world, train)
    tracking = report["tracking"]
    table = variant_table(report["results"])
    print(f"\n{table}\n")
    print(f"pyvrel track on HVR-Net's detections of the held-out videos: {tracking['tracklets']} tracklets, "
          f"{100 * tracking['recall']:.1f}% of {tracking['tracks']} ground-truth tracks found at vIoU >= 0.5 "
          f"(right category: {100 * tracking['category']:.1f}%; mean best vIoU {tracking['mean_viou']:.2f})")
    per_video = tracking.pop("per_video")
    dataset = open_dataset(out / "world")
    annos = dataset.annotations("test")
    vid = max(per_video, key=lambda v: (len(per_video[v][0]), v))  # the busiest held-out video
    anno = annos[vid]
    f = FeatureStore(out / "tracked" / "features")[vid]
    objects = report["objects"]
    hits = {k for k, v in zip(per_video[vid][1], per_video[vid][2]) if v >= 0.5}
    by_tid, category = anno.boxes_by_tid(), anno.category_of()
    gt = [(category[t], min(by_tid[t]), [by_tid[t][k] for k in sorted(by_tid[t])]) for t in per_video[vid][0]]
    tracks = [(objects[int(f["tracklet_scores"][k].argmax())], int(f["tracklet_start"][k]),
               f["tracklet_boxes"][k, : f["tracklet_length"][k]].tolist(), k in hits)
              for k in range(len(f["tracklet_start"]))]
    (out / "tracks.svg").write_text(tracks_svg(vid, anno.frame_count, anno.width, gt, tracks))
    seconds = time.perf_counter() - t0
    result = {**report, "tracking": tracking, "seconds": seconds, "table": table}
    (out / "metrics.json").write_text(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=1) + "\n")
    print(f"\ntotal {seconds:.0f} s; written to {out}/: metrics.json, tracks.svg ({vid}), detections/, tracked/, "
          "world/, and each variant's run folder")
    return result
