"""Train VrdONE on the synthetic world on the CPU, infer on its held-out split, and evaluate it
with pyvrel's official-parity metrics next to the frequency-prior baseline.

    python scripts/train_vrdone_synthetic.py --minutes 8 --out /tmp/vrdone_synth
    python scripts/train_vrdone_synthetic.py --minutes 8 --clip-dim 16   # VrdONE-X

``--clip-dim N`` trains VrdONE-X: the world also writes its category-semantic per-entity stream
``tracklet_clip`` of width N (pyvrel.data.synthetic; every other array is the same world's) and
the model fuses it (``VrdONEConfig.clip_dim``).

Both models see the same tracklets: the world's noisy detected tracklets ("detected") and the
ground-truth trajectories and categories ("oracle", supplementary Table 1). The loop is minimal on
purpose (AdamW, linear warm-up then cosine, grad-norm clip 1.0, no EMA); the general training
engine is pyvrel.engine's job.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from pyvrel.data.synthetic import SynthConfig, World, generate
from pyvrel.eval import evaluate_relations
from pyvrel.models.baselines import FrequencyPrior
from pyvrel.models.vrdone import (
    SetCriterion,
    VrdONEConfig,
    build_vrdone,
    deduplicate,
    oracle_tracklets,
    pad_batch,
    pair_samples,
    predict_video,
    entity_features,
    detected_tracklets,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=150, help="videos in the world (80%% train)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=8.0, help="training time budget (wall clock)")
    ap.add_argument("--batch", type=int, default=16, help="pairs per step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--clip-dim", type=int, default=0, help="VrdONE-X: width of the extra stream (0: plain VrdONE)")
    ap.add_argument("--out", type=Path, default=None, help="write metrics.json here")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.time()

    synth = SynthConfig(seed=args.seed, num_videos=args.videos, frames=(60, 240), entities=(2, 4), min_run=16,
                        clip_dim=args.clip_dim)
    world = World(synth)
    videos = list(generate(synth))
    train = [v for v in videos if v.split == "train"]
    test = [v for v in videos if v.split == "test"]
    predicates = list(world.vocab.predicates)
    index = {p: i + 1 for i, p in enumerate(predicates)}
    cfg = VrdONEConfig.synthetic(max_seq_len=64, feat_stride=4, num_classes=len(predicates), num_queries=16,
                                 max_preds=16, pred_min_frames=4, proposal_min_frames=4, clip_dim=args.clip_dim)
    feats = {v.annotation.video_id: entity_features(v.features, v.annotation) for v in videos}
    clip = {v.annotation.video_id: entity_features(v.features, v.annotation, "tracklet_clip") if args.clip_dim else None
            for v in videos}
    model_name = "VrdONE-X" if args.clip_dim else "VrdONE"
    print(f"world: {len(train)} train / {len(test)} test videos, {sum(len(v.annotation.relations) for v in videos)} "
          f"relations ({time.time() - t0:.0f} s)")

    model = build_vrdone(cfg)
    criterion = SetCriterion(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1 and "query_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() > 1 and "query_embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr)
    rng = np.random.default_rng(args.seed)
    budget, warmup = args.minutes * 60, 60
    step, epoch, t_train = 0, 0, time.time()
    est_steps = None
    while time.time() - t_train < budget:
        samples = [s for v in train for s in pair_samples(v.annotation, feats[v.annotation.video_id], cfg, index, rng,
                                                          clip=clip[v.annotation.video_id])]
        order = rng.permutation(len(samples))
        losses = []
        for i in range(0, len(order) - args.batch + 1, args.batch):
            elapsed = time.time() - t_train
            if elapsed >= budget:
                break
            if step == 20:  # estimate the schedule length from the first steps' speed
                est_steps = int(budget / (elapsed / 20))
            total = est_steps or 10 ** 9
            lr = args.lr * (step + 1) / warmup if step < warmup else \
                args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
            for g in opt.param_groups:
                g["lr"] = lr
            batch = [samples[j] for j in order[i: i + args.batch]]
            x, mask = pad_batch([b[0] for b in batch], cfg.max_seq_len, cfg.max_div_factor)
            out = criterion(model(x, mask), [b[1] for b in batch], mask)
            opt.zero_grad()
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(out["loss"].item())
            step += 1
        epoch += 1
        print(f"epoch {epoch}: {len(samples)} pairs, mean loss {np.mean(losses):.3f}, step {step}, "
              f"{time.time() - t_train:.0f} s")
    train_s = time.time() - t_train

    gt = {v.annotation.video_id: v.annotation.relation_view() for v in test}
    prior = FrequencyPrior(topk=cfg.topk, min_frames=cfg.proposal_min_frames, n_max=cfg.n_max_pair)
    prior.fit(v.annotation for v in train)
    results = {}
    t_inf = time.time()
    for mode in ("detected", "oracle"):
        preds: dict[str, dict] = {model_name: {}, "frequency prior": {}}
        for v in test:
            vid = v.annotation.video_id
            if mode == "detected":
                tracks = deduplicate(detected_tracklets(v.features, list(world.vocab.objects)), cfg.dedup_threshold)
            else:
                tracks = oracle_tracklets(v.annotation, feats[vid], clip[vid])
            preds[model_name][vid] = predict_video(model, cfg, tracks, predicates, v.annotation.width,
                                                 v.annotation.height, dedup=False)
            preds["frequency prior"][vid] = prior.predict_video(tracks)
        for name, p in preds.items():
            results[f"{name} ({mode})"] = evaluate_relations(gt, p)
    inf_s = time.time() - t_inf

    print(f"\ntrained {step} steps ({epoch} epochs) in {train_s:.0f} s; inference + evaluation {inf_s:.0f} s\n")
    print("| model (tracklets) | RelDet mAP | R@50 | R@100 | RelTag P@1 | P@5 | P@10 |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        d, t = r["RelDet"], r["RelTag"]
        print(f"| {name} | {100 * d['mAP']:.2f} | {100 * d['R@50']:.2f} | {100 * d['R@100']:.2f} | "
              f"{100 * t['P@1']:.2f} | {100 * t['P@5']:.2f} | {100 * t['P@10']:.2f} |")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"args": {k: str(v) for k, v in vars(args).items()}, "steps": step, "epochs": epoch,
                "train_seconds": train_s, "inference_seconds": inf_s, "results": results}
        (args.out / "metrics.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
