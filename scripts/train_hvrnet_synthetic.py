"""Compare HVR-Net's variants on the synthetic world's confusable categories on the CPU: frame only,
+ intra-video relations, + intra- and inter-video relations (with the proposal triplet loss; more
forms of it with --variants, any model setting of every variant with --set), then run `pyvrel
track` on the detections of the inter variant (else the last) and score the tracklets against the
ground truth.

    OMP_NUM_THREADS=1 nice python scripts/train_hvrnet_synthetic.py --out /tmp/hvrnet_study   # < 15 min per variant
    python scripts/train_hvrnet_synthetic.py --videos 12 --epochs 1 --out /tmp/hvr_smoke         # seconds: a smoke run

Each variant is trained through ``pyvrel.engine.run.prepare_run``, as ``pyvrel train --model hvrnet
--set model.relations=none|intra|inter`` does (pyvrel.models.hvrnet.demo.compare_variants). The world
(pyvrel.data.synthetic.streams.hvrnet) has RoI proposals on every frame; three pairs of categories
(dog / domestic_cat, horse / zebra, bicycle / motorcycle) share their RoI appearance except in the
frames (30%) where an entity shows its cue. Metrics on the held-out videos: frame mAP@0.5 (VOC AP per
class over every frame, averaged over the classes present) and proposal classification accuracy (the
foreground proposals' argmax over background and classes), over all classes and the confusable ones;
tracklets: the share of ground-truth tracks found at vIoU >= 0.5. The JSON summary goes to
OUT/study.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from pyvrel.models.hvrnet.demo import MINING_VARIANTS, VARIANTS, compare_variants, variant_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("hvrnet_study"))
    parser.add_argument("--videos", type=int, default=120, help="videos of the world (80%% for training)")
    parser.add_argument("--frames", type=int, nargs=2, default=(60, 120), help="frames per video (range)")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=[*VARIANTS, *MINING_VARIANTS],
                        help="variants to train (default the three of the paper's ablation; the others: the "
                             "inter-video stage with semi-hard triplets, cosines, object-level hard-video mining)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a model setting of every variant (a variant's own win), e.g. mining_descriptor=object; "
                             "VALUE is JSON, else a string; repeatable")
    args = parser.parse_args()
    model = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        try:
            model[key] = json.loads(value)
        except json.JSONDecodeError:
            model[key] = value
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    world = {"seed": args.seed, "num_videos": args.videos, "frames": list(args.frames)}
    train = {"epochs": args.epochs, "seed": args.seed, "eval_every": args.epochs, "log_every": 50}  # else the preset's
    track = "+ intra + inter-video" if "+ intra + inter-video" in args.variants else None
    report = compare_variants(args.out, world, train, args.variants, track=track, model=model)
    tracking = report["tracking"]
    tracking.pop("per_video")
    print("\n" + variant_table(report["results"]))
    print(f"\npyvrel track on the last variant's detections of the held-out videos: {tracking['tracklets']} tracklets; "
          f"{100 * tracking['recall']:.1f}% of {tracking['tracks']} ground-truth tracks at vIoU >= 0.5 (right "
          f"category {100 * tracking['category']:.1f}%, mean best vIoU {tracking['mean_viou']:.3f})")
    (args.out / "study.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out / 'study.json'}")


if __name__ == "__main__":
    main()
