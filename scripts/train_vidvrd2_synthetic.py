"""Train the VidVRD-II base on the synthetic world, then evaluate it on the held-out split with
detected and with oracle tracklets, next to the frequency prior on the same detected tracklets.

    OMP_NUM_THREADS=1 python scripts/train_vidvrd2_synthetic.py --epochs 30 --out /tmp/vidvrd2_synth

Training is ``pyvrel train --model vidvrd2 --data synthetic`` (:func:`pyvrel.engine.run.prepare_run`:
the synthetic preset, AdamW lr 1e-3, weight decay 5e-4 and 0.01 on the preference tables, 12
segments of at most 64 pairs per batch). The same run from the command line, detected tracklets only:

    pyvrel train --model vidvrd2 --data synthetic --out RUN --set train.epochs=30 --set train.eval_every=0
    pyvrel detect --checkpoint RUN/checkpoints/last.pt --data synthetic --out RUN/pred.json

"detected": the feature file's noisy tracklets (what ``pyvrel detect`` uses by default); "oracle":
the ground-truth trajectories (``model.tracklets=oracle``); "seqnms": tracklets per segment from the
per-frame detections (gap filling + Seq-NMS, ``model.tracklets=seqnms``; their ``det_features``
come from the world's ``hvrnet`` stream, which leaves every other array as it is). The table prints RelDet mAP, R@50/100,
mR@50/100 and Mean (DLL's summary) and RelTag P@1/5/10, in %; ``OUT/metrics.json`` keeps them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pyvrel.data.dataset import open_dataset
from pyvrel.data.tracklets import detected_tracklets
from pyvrel.engine import load_checkpoint, load_detector, prepare_run
from pyvrel.eval import evaluate_relations
from pyvrel.models.baselines import FrequencyPrior
from pyvrel.models.vidvrd2.task import VidVRD2Detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=150, help="videos in the world (80%% train)")
    ap.add_argument("--seed", type=int, default=0, help="world and training seed")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=Path("runs/vidvrd2_synthetic"), help="run folder; metrics.json too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = {"model": {"world": {"seed": args.seed, "num_videos": args.videos}, "sample_seed": args.seed},
              "train": {"epochs": args.epochs, "eval_every": 0, "device": "cpu", "seed": args.seed,
                        "progress": False}}
    print(f"pyvrel train --model vidvrd2 --data synthetic with {json.dumps(config)}", flush=True)
    t0 = time.time()
    run = prepare_run("vidvrd2", "synthetic", config, args.out)
    summary = run.fit()
    train_s = time.time() - t0

    t_inf = time.time()
    detector = load_detector(load_checkpoint(summary["checkpoint"]))
    # the same world with HVR-Net's stream, which adds det_features (the seqnms tracklets') and changes nothing else
    dataset = open_dataset("synthetic", {**run.meta["model_config"]["world"], "hvrnet": True})
    objects = list(detector.vocabulary.objects)
    gt = {v: a.relation_view() for v, a in dataset.annotations("test").items()}
    prior = FrequencyPrior().fit(dataset.annotations("train").values())
    results = {}
    for source in ("detected", "oracle", "seqnms"):
        preds = VidVRD2Detector(detector.model, detector.vocabulary, source).detect(dataset, "test")
        results[f"VidVRD-II ({source})"] = evaluate_relations(gt, preds, mean_recall=True)
    prior_preds = {a.video_id: prior.predict_video(detected_tracklets(arrays, objects))
                   for a, arrays in dataset.videos("test", len(objects))}
    results["frequency prior (detected)"] = evaluate_relations(gt, prior_preds, mean_recall=True)
    inf_s = time.time() - t_inf

    print(f"\ntrained {summary['step']} steps ({summary['epoch']} epochs of {len(run.task.train_set)} segments) in "
          f"{train_s:.0f} s; inference + evaluation {inf_s:.0f} s\n")
    print("| model (tracklets) | RelDet mAP | R@50 | R@100 | mR@50 | mR@100 | Mean | RelTag P@1 | P@5 | P@10 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row, r in results.items():
        d, t = r["RelDet"], r["RelTag"]
        cells = [d[k] for k in ("mAP", "R@50", "R@100", "mR@50", "mR@100", "Mean")] + [t[k] for k in ("P@1", "P@5", "P@10")]
        print(f"| {row} | " + " | ".join(f"{100 * v:.2f}" for v in cells) + " |")
    meta = {"config": config, "steps": summary["step"], "train_seconds": train_s, "inference_seconds": inf_s,
            "results": results}
    (args.out / "metrics.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
