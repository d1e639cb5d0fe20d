"""``pyvrel demo uasan``: UASAN and Model A trained on the base labels of a small open-vocabulary
synthetic world (CPU, offline hashed text encoder), the base/novel table and per-predicate recall.

Outputs in ``out_dir``: ``full/`` and ``A/`` (each run's ``config.json``, checkpoint and
``metrics.jsonl``), ``metrics.json`` (every number), ``predicate_recall.svg`` (PredCls recall@100 of
each test predicate, UASAN vs Model A, by training labels: base predicates head to tail, then the
novel ones, with 0 labels and marked ``*``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pyvrel.data.dataset import Dataset, open_dataset
from pyvrel.engine import load_checkpoint
from pyvrel.engine.run import prepare_run
from pyvrel.report import recall_svg

__all__ = ["predicate_recall", "run_demo"]

#: the demo's world and schedule: those of scripts/train_uasan_synthetic.py (seed 0) with the hashed encoder
SETTINGS = {"full": ({"num_videos": 160}, {"epochs": 12, "seed": 0}),
            "quick": ({"num_videos": 10, "frames": [60, 90]}, {"epochs": 1, "batch_size": 4})}
TITLES = {"full": "UASAN", "A": "Model A"}


def predicate_recall(detector: Any, dataset: Dataset, split: str = "test", k: int = 100) -> dict[str, float]:
    """Recall@``k`` of each predicate of the ``split`` ground truth (PredCls, all predicates scored):
    the ground-truth relations of that predicate found among each video's top ``k`` detections."""
    from pyvrel.eval import evaluate_relations
    from pyvrel.models.uasan.task import UASANDetector

    d = UASANDetector(detector.net, detector.vocabulary, detector.split, detector.encoder, setting="predcls",
                      predicates="all", union=detector.union, min_frames=detector.min_frames)
    preds = d.detect(dataset, split)
    gt = {v: a.relation_view() for v, a in dataset.annotations(split).items()}
    out = {}
    for p in sorted({r.triplet[1] for rs in gt.values() for r in rs}):
        only = {v: [r for r in rs if r.triplet[1] == p] for v, rs in gt.items()}
        out[p] = evaluate_relations(only, preds, det_nreturns=(k,))["RelDet"][f"R@{k}"]
    return out


def _table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per model and split: trajectory R@5/10, PredCls and SGDet mAP / R@50 / R@100 (%)."""
    head = ["model", "split", "traj R@5", "R@10"] + [f"{s} {m}" for s in ("PredCls", "SGDet")
                                                     for m in ("mAP", "R@50", "R@100")]
    rows = [[TITLES[v], p] + [f"{100 * r['trajectory'][p][k]:.2f}" if p in r["trajectory"] else "-"
                              for k in ("R@5", "R@10")]
            + [f"{100 * r[f'{s}/{p}'][m]:.2f}" for s in ("predcls", "sgdet") for m in ("mAP", "R@50", "R@100")]
            for v, r in results.items() for p in ("novel", "all")]
    widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(head), "-" * len(fmt(head))] + [fmt(r) for r in rows])


def run_demo(out_dir: str | Path = "pyvrel_demo", quick: bool = False, threads: int = 1) -> dict[str, Any]:
    """Train, evaluate and draw (module docstring); returns ``{"results", "recall", "table", "seconds"}``."""
    from pyvrel.models.uasan.task import evaluate_open_vocab, load

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    world, train = SETTINGS["quick" if quick else "full"]
    results, recall = {}, {}
    for variant in TITLES:
        config = {"model": {"variant": variant, "world": world, "eval_split": None},
                  "train": {**train, "progress": False, "log_every": 50}}
        run = prepare_run("uasan", "synthetic", config, out / variant)
        if variant == "full":
            print(f"world: {run.meta['model_config']['world']['num_videos']} synthetic videos, "
                  f"{len(run.task.train_set)} training segments (base labels only)", flush=True)
        summary = run.fit(clear=run.out.exists())
        detector = load(load_checkpoint(summary["checkpoint"]))
        dataset = open_dataset("synthetic", run.meta["model_config"]["world"])
        with torch.no_grad():
            results[variant] = evaluate_open_vocab(detector, dataset)
            recall[TITLES[variant]] = predicate_recall(detector, dataset)
        print(f"{TITLES[variant]}: trained {summary['step']} steps ({time.perf_counter() - t0:.0f} s so far)",
              flush=True)
    novel = set(detector.split["predicates"]["novel"])
    base = detector.split["predicates"]["base"]
    counts = dict(zip(base, sum(it["labels"].sum(0) for it in run.task.train_set).int().tolist()))  # labels seen
    groups = {p: "novel" if p in novel else "base" for p in recall["UASAN"]}
    name = {p: p + "*" if p in novel else p for p in groups}
    order = sorted(groups, key=lambda p: (groups[p] == "novel", -counts.get(p, 0), p))
    (out / "predicate_recall.svg").write_text(recall_svg(
        {m: {name[p]: v for p, v in r.items()} for m, r in recall.items()}, [name[p] for p in order],
        "PredCls recall@100 per test predicate, trained on base labels only (* novel)",
        {name[p]: counts.get(p, 0) for p in order}))
    table = _table(results)
    seconds = time.perf_counter() - t0
    (out / "metrics.json").write_text(json.dumps({"results": results, "recall": recall, "seconds": seconds},
                                                 indent=1) + "\n")
    print(f"\n{table}\n\n(percent; novel: relations with a novel predicate, scored over the novel predicates; "
          f"all: every relation and predicate; total {seconds:.0f} s)")
    mean = {m: {g: sum(r[p] for p in groups if groups[p] == g) / max(1, sum(1 for p in groups if groups[p] == g))
                for g in ("base", "novel")} for m, r in recall.items()}
    for m, g in mean.items():
        print(f"{m}: mean per-predicate recall@100 base {100 * g['base']:.1f}, novel {100 * g['novel']:.1f}")
    print(f"written to {out}/: metrics.json, predicate_recall.svg, full/, A/")
    return {"results": results, "recall": recall, "table": table, "seconds": seconds}
