"""DLL's claim in miniature: VidVRD-II, +PDL, +KDL and +DLL trained on the long-tailed synthetic world.

    OMP_NUM_THREADS=1 nice -n 10 python scripts/dll_study.py --out /tmp/dll_study    # 20-30 s per variant idle, 2-3 min under load
    python scripts/dll_study.py --videos 10 --epochs 1 --out /tmp/dll_smoke         # seconds: a smoke run

Each variant trains through ``pyvrel.engine.run.prepare_run`` (as ``pyvrel train --model dll --set
model.variant=...`` does) with the same seed, world and schedule, detects on the held-out videos
through the registry's loader (what ``pyvrel detect`` runs) and is scored with RelDet mR@50/100,
R@50/100, Mean, mAP and RelTag P@5/10 (:mod:`pyvrel.models.dll.study`). The world is the demo world
with long-tailed training labels (``predicate_tail``, :mod:`pyvrel.data.synthetic.longtail`); its
test labels are complete. Prints the table as Markdown (for docs/models.md) and writes
``metrics.json`` (with per-predicate recall) and ``recall.svg`` under ``--out``.
"""

from __future__ import annotations

import argparse
import os

import torch

from pyvrel.models.dll.study import STUDY_WORLD, TITLES, compare, write_report
from pyvrel.report import MEAN_RECALL_COLUMNS as _COLUMNS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="dll_study", help="output folder (one sub-folder per variant)")
    ap.add_argument("--variants", nargs="+", default=list(TITLES), choices=list(TITLES))
    ap.add_argument("--epochs", type=int, default=30, help="training epochs (default 30; the preset's 12: --epochs 12)")
    ap.add_argument("--videos", type=int, default=None, help="videos of the world (default: the study world's)")
    ap.add_argument("--tail", type=float, default=None, help="predicate_tail of the world")
    ap.add_argument("--seed", type=int, default=0, help="seed of the world and of training (default 0)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    world = {**STUDY_WORLD, "seed": args.seed}
    if args.videos is not None:
        world["num_videos"] = args.videos
    if args.tail is not None:
        world["predicate_tail"] = args.tail
    train = {"progress": False, "epochs": args.epochs, "seed": args.seed}
    report = compare(args.variants, args.out, world, train)
    print(write_report(report, args.out))
    print()
    print("| model | " + " | ".join(k for _, k in _COLUMNS) + " | train s |")
    print("|---|" + "---:|" * (len(_COLUMNS) + 1))
    for name, r in report["results"].items():
        cells = " | ".join(f"{100 * r[s][k]:.2f}" for s, k in _COLUMNS)
        print(f"| {name} | {cells} | {report['seconds'][name]:.0f} |")


if __name__ == "__main__":
    main()
