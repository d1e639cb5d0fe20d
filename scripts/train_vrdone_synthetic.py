"""Train VrdONE on the synthetic world through the supported path, then evaluate it on the held-out
split with pyvrel's official-parity metrics, next to the frequency prior, on detected and on
oracle tracklets.

    python scripts/train_vrdone_synthetic.py --epochs 32 --out /tmp/vrdone_synth
    python scripts/train_vrdone_synthetic.py --epochs 32 --clip-dim 16 --out /tmp/vrdone_x   # VrdONE-X

Training is ``pyvrel train --model vrdone --data synthetic`` (:func:`pyvrel.engine.run.prepare_run`:
VrdONE's training defaults, the engine's schedule, parameter groups and EMA) with the settings
printed at the start; ``--clip-dim N`` trains VrdONE-X (the world also writes its ``tracklet_clip``
stream of width N). The same run from the command line, without the oracle rows:

    pyvrel train --model vrdone --data synthetic --out RUN --set train.epochs=32 \\
        --set train.ema_decay=0.99 --set train.eval_every=0 --set train.device=cpu
    pyvrel detect --checkpoint RUN/checkpoints/last.pt --data synthetic --out RUN/pred.json

"detected": the world's noisy tracklets, de-duplicated (what ``pyvrel detect`` uses); "oracle":
ground-truth trajectories and categories with score 1 (VrdONE's supplementary Table 1).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pyvrel.data.dataset import open_dataset
from pyvrel.data.folder import CLIP_KEY
from pyvrel.data.tracklets import oracle_tracklets
from pyvrel.engine import load_checkpoint, load_detector, prepare_run
from pyvrel.eval import evaluate_relations
from pyvrel.models.vrdone import entity_features, predict_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=150, help="videos in the world (80%% train)")
    ap.add_argument("--seed", type=int, default=0, help="world and training seed")
    ap.add_argument("--epochs", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--clip-dim", type=int, default=0, help="VrdONE-X: width of the extra stream (0: plain VrdONE)")
    ap.add_argument("--out", type=Path, default=Path("runs/vrdone_synthetic"), help="run folder; metrics.json too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = {"model": {"world": {"seed": args.seed, "num_videos": args.videos}, "clip_dim": args.clip_dim},
              "train": {"epochs": args.epochs, "ema_decay": 0.99, "eval_every": 0, "device": "cpu",
                        "seed": args.seed, "progress": False}}
    print(f"pyvrel train --model vrdone --data synthetic with {json.dumps(config)}", flush=True)
    t0 = time.time()
    run = prepare_run("vrdone", "synthetic", config, args.out)
    summary = run.fit()
    train_s = time.time() - t0

    t_inf = time.time()
    detector = load_detector(load_checkpoint(summary["checkpoint"]))
    cfg, predicates = detector.cfg, list(detector.vocabulary.predicates)
    dataset = open_dataset("synthetic", run.meta["model_config"]["world"])
    prior = detector.baseline().fit(dataset.annotations("train").values())
    test = list(dataset.videos("test", len(detector.vocabulary.objects), clip_dim=cfg.clip_dim))
    gt = {a.video_id: a.relation_view() for a, _ in test}
    name = "VrdONE-X" if cfg.clip_dim else "VrdONE"
    results = {}
    for mode in ("detected", "oracle"):
        preds: dict[str, dict] = {name: {}, "frequency prior": {}}
        for anno, arrays in test:
            if mode == "detected":
                tracks = detector.tracklets(arrays, anno.width, anno.height)
            else:
                clip = entity_features(arrays, anno, CLIP_KEY) if cfg.clip_dim else None
                tracks = oracle_tracklets(anno, entity_features(arrays, anno), clip)
            preds[name][anno.video_id] = predict_video(detector.model, cfg, tracks, predicates, anno.width,
                                                       anno.height, dedup=False)
            preds["frequency prior"][anno.video_id] = prior.predict_video(tracks)
        for model, p in preds.items():
            results[f"{model} ({mode})"] = evaluate_relations(gt, p)
    inf_s = time.time() - t_inf

    print(f"\ntrained {summary['step']} steps ({summary['epoch']} epochs of {len(run.task.train_set)} pairs) in "
          f"{train_s:.0f} s; inference + evaluation {inf_s:.0f} s\n")
    print("| model (tracklets) | RelDet mAP | R@50 | R@100 | RelTag P@1 | P@5 | P@10 |")
    print("|---|---|---|---|---|---|---|")
    for row, r in results.items():
        d, t = r["RelDet"], r["RelTag"]
        print(f"| {row} | {100 * d['mAP']:.2f} | {100 * d['R@50']:.2f} | {100 * d['R@100']:.2f} | "
              f"{100 * t['P@1']:.2f} | {100 * t['P@5']:.2f} | {100 * t['P@10']:.2f} |")
    meta = {"config": config, "steps": summary["step"], "train_seconds": train_s, "inference_seconds": inf_s,
            "results": results}
    (args.out / "metrics.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
