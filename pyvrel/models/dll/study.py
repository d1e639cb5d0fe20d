"""The paper's claim in miniature: DLL's variants trained on a long-tailed synthetic world, side by side.

:func:`compare` trains each variant (``base``, ``pdl``, ``kdl``, ``dll``) with ``pyvrel train``'s
entry (:func:`pyvrel.engine.run.prepare_run`, same seed and world for all), detects on the test
videos through the registry's loader (what ``pyvrel detect`` runs) and scores them with mR@K and
Mean (:func:`pyvrel.eval.evaluate_relations`). The world is :data:`STUDY_WORLD`: the demo world
with ``predicate_tail`` set (:mod:`pyvrel.data.synthetic.longtail`: long-tailed training labels
over predicates that share patterns, complete test labels). ``scripts/dll_study.py`` runs all four
variants; :func:`run_demo` (``pyvrel demo dll``) the base and DLL, with a per-predicate recall plot.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from pyvrel.data.dataset import DEMO_WORLD, open_dataset
from pyvrel.engine import load_checkpoint
from pyvrel.engine.registry import load_detector
from pyvrel.engine.run import prepare_run
from pyvrel.eval import evaluate_relations
from pyvrel.report import MEAN_RECALL_COLUMNS, metrics_table, recall_svg

__all__ = ["STUDY_WORLD", "TITLES", "compare", "head_to_tail", "run_demo", "write_report"]

#: The long-tailed world of the study and the demo.
STUDY_WORLD: dict[str, Any] = {**DEMO_WORLD, "predicate_tail": 2.0}
#: Row titles of the variants (the paper's Table 1).
TITLES = {"base": "VidVRD-II", "pdl": "+PDL", "kdl": "+KDL", "dll": "+DLL"}
_QUICK_WORLD = {**STUDY_WORLD, "num_videos": 10, "frames": [60, 90]}


def compare(variants: list[str], out_dir: str | Path, world: dict[str, Any] | None = None,
            train: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and evaluate each variant under ``out_dir/<variant>/``; returns ``{"results": {title:
    evaluate_relations output with per_predicate}, "train_counts": {predicate: training labels},
    "seconds": {title: training seconds}, "world", "train"}``. ``train``/``model``: extra settings of
    every run's ``train:``/``model:`` sections."""
    world = dict(STUDY_WORLD if world is None else world)
    train = {"eval_every": 0, "checkpoint_every": 0, "log_every": 10, "device": "cpu", **(train or {})}
    out = Path(out_dir)
    results, seconds = {}, {}
    dataset = gt = counts = None
    for variant in variants:
        t0 = time.perf_counter()
        section = {"variant": variant, "world": world, "sample_seed": 0, **(model or {})}
        run = prepare_run("dll", "synthetic", {"model": section, "train": train}, out / variant)
        run.out.mkdir(parents=True, exist_ok=True)
        summary = run.fit(clear=True)
        seconds[TITLES[variant]] = time.perf_counter() - t0
        detector = load_detector(load_checkpoint(summary["checkpoint"]))
        if dataset is None:
            dataset = open_dataset("synthetic", run.meta["model_config"]["world"])
            gt = {v: a.relation_view() for v, a in dataset.annotations("test").items()}
            counts = Counter(r.predicate for a in dataset.annotations("train").values() for r in a.relations)
        with torch.no_grad():
            preds = detector.detect(dataset, "test")
        results[TITLES[variant]] = evaluate_relations(gt, preds, mean_recall=True, per_predicate=True)
    return {"results": results, "train_counts": dict(counts.most_common()), "seconds": seconds, "world": world,
            "train": train}


def head_to_tail(report: dict[str, Any]) -> list[str]:
    """The test predicates ordered by training labels, most first (ties by name)."""
    first = next(iter(report["results"].values()))["per_predicate"]
    counts = report["train_counts"]
    return sorted(first, key=lambda p: (-counts.get(p, 0), p))


def write_report(report: dict[str, Any], out_dir: str | Path, k: int = 50) -> str:
    """Write ``metrics.json`` and ``recall.svg`` (per-predicate R@k, head to tail) under ``out_dir``;
    returns the table (:data:`~pyvrel.report.MEAN_RECALL_COLUMNS`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    order = head_to_tail(report)
    recalls = {name: {p: v[f"R@{k}"] for p, v in r["per_predicate"].items()} for name, r in report["results"].items()}
    (out / "recall.svg").write_text(recall_svg(recalls, order, f"per-predicate R@{k} on the test videos, "
                                               "head to tail (training labels in brackets)", report["train_counts"]))
    return metrics_table(report["results"], columns=MEAN_RECALL_COLUMNS)


def run_demo(out_dir: str | Path = "pyvrel_demo", quick: bool = False, threads: int = 1) -> dict[str, Any]:
    """``pyvrel demo dll``: VidVRD-II and VidVRD-II + DLL on the long-tailed world, 12 epochs each
    (quick: a tiny world and one epoch, for tests); prints the table, writes ``metrics.json`` and
    ``recall.svg``."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    world, train = (_QUICK_WORLD, {"epochs": 1}) if quick else (STUDY_WORLD, {"epochs": 12})
    print(f"world: {world['num_videos']} synthetic videos, long-tailed training labels (predicate_tail "
          f"{world['predicate_tail']}); training VidVRD-II and +DLL on the CPU", flush=True)
    report = compare(["base", "dll"], out_dir, world, train)
    table = write_report(report, out_dir)
    seconds = time.perf_counter() - t0
    print(f"\n{table}\n\nper-predicate recall: {Path(out_dir) / 'recall.svg'}; total {seconds:.0f} s")
    return {**report, "table": table, "seconds": seconds}
