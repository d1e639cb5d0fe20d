"""Train vRGV and the co-occurrence baseline on the synthetic world on the CPU (weak labels only), ground
every ground-truth triplet of the held-out videos, and report AccS / AccO / AccR.

    # pyvrel's corrections on (docs/models.md, "vRGV"), one process per model
    python scripts/train_vrgv_synthetic.py --models vRGV --set 'attention="bilinear"' --set 'decoder_state="zeros"' \
        --set 'frame_values="inputs"'
    python scripts/train_vrgv_synthetic.py --videos 20 --epochs 1 1         # seconds: a smoke run
    python scripts/train_vrgv_synthetic.py --world pair_relations=1 ...     # the grounding world: one label per pair
    # the twins world of docs/models.md where vRGV is above Co-occur ("Thresholding the frame attention alone")
    python scripts/train_vrgv_synthetic.py --models vRGV --seed 0 --videos 500 --epochs 0 200 --world train_fraction=0.48 \
        --world twins=1 --world twins_trace=0 --world pair_relations=1 --world 'entities=[2,3]' --world grounding_clutter=0 \
        --set feature_dim=128 --set feature_scale=11.313708 --set 'attention="bilinear"' --set 'decoder_state="zeros"' \
        --set 'frame_values="inputs"' --set 'temporal_score="frame"' --select-threshold   # read the rows 'σ=train'
    # the same models grounded on a larger test split (the same 240 training videos), no training
    python scripts/train_vrgv_synthetic.py ... --videos 500 --world train_fraction=0.48 --trained RUN_OUT --out OUT

Each model is trained through ``pyvrel.engine.run.prepare_run``, as ``pyvrel train --model vrgv`` does:
stage 1 of the public code (no relation attention; skipped when its epoch count is 0, the default)
then stage 2 (vRGV), which starts from the stage-1 decoder only. ``--set KEY=JSON`` overrides a
``model:`` key of both models (e.g. the corrections ``attention``, ``decoder_state``). The
co-occurrence baseline (paper Table 2, "Co-occur") is the same model whose captions leave the
predicate out. Grounding variants: exact linking (every link used), ``legacy`` (the public code's
scoring: last link dropped), ``*`` (greedy linking, λ = 0), and ``σ=uniform`` (temporal threshold
at the score of uniform attention, ``VRGVConfig.uniform_score``, instead of the preset's). Columns: the
paper's spatial IoU thresholds 0.3 / 0.5 / 0.7 and the code's tIoU averaged over the three
("avg"). Training is on video-level relation triplets only; boxes are never read. Also printed
(``proposal_tid``, a diagnostic only the synthetic world has; :func:`attention_hits`): how often the
best-attended box of the queried subject/object is an entity of that category, how often the
best-attended boxes are a ground-truth instance's own two entities on its frames (a same-category
twin does not count), and the share of the frame attention on the instance's frames; and where the
grounded tubes fail (:func:`tube_hits`: the grounded span against the instance's, and the boxes on the
frames both cover). ``OUT/metrics.json`` holds every row's per-video accuracies (``per_video``;
``scripts/vrgv_paired.py`` compares runs over seeds), ``attention`` and ``tubes``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from pyvrel.data.boxes import box_ious
from pyvrel.engine.run import prepare_run
from pyvrel.data.dataset import open_dataset
from pyvrel.data.synthetic import SynthConfig
from pyvrel.engine.checkpoint import load_checkpoint
from pyvrel.models.vrgv.task import evaluate_grounding, ground, load_regions, model_from_checkpoint, select_threshold
from pyvrel.ops import temporal_iou


GROUNDING_KEYS = ("temporal_score", "temporal_threshold", "min_segment", "pairwise_weight")


def train(name: str, model: dict, epochs: tuple[int, int], args: argparse.Namespace) -> tuple[torch.nn.Module, dict]:
    """Stage 1 then stage 2 (decoder from stage 1); returns the stage-2 grounder and its resolved config."""
    t0 = time.time()
    out = args.out / name
    grounder = resolved = None
    for stage, n in ((1, epochs[0]), (2, epochs[1])):
        if n == 0:
            continue
        section = {**model, **args.model, "stage": stage, "eval_split": None,
                   "world": {"seed": args.seed, "num_videos": args.videos, **args.world}}
        if stage == 2 and epochs[0]:
            section["init"] = str(out / "stage1" / "checkpoints" / "last.pt")
        train = {"epochs": n, "batch_size": args.batch, "lr": args.lr, "warmup_epochs": 0.2, "clip_grad_norm": 5.0,
                 "progress": False, "eval_every": 0, "best_metric": None, "seed": args.seed, "log_every": 50,
                 "checkpoint_every": 0}  # only last.pt: a checkpoint per epoch was 4.8 GB per 800-epoch model
        run = prepare_run("vrgv", "synthetic", {"model": section, "train": train}, out / f"stage{stage}")
        summary = run.fit()
        task = run.task
        print(f"{name} stage {stage}: {len(task.train_set)} samples, {n} epochs, loss {summary['train']['loss']:.3f}, "
              f"token acc {summary['train']['token_acc']:.3f} ({time.time() - t0:.0f} s)", flush=True)
        grounder, resolved = task.model.grounder.eval(), task.model_config
    return grounder, resolved


def trained(name: str, args: argparse.Namespace) -> tuple[torch.nn.Module, dict]:
    """The stage-2 model ``name`` of the earlier run ``args.trained`` and its resolved config, its world
    replaced by this run's, which may differ only in ``num_videos`` and ``train_fraction``, with the same
    training videos (the first ``round(train_fraction * num_videos)``): a larger test split."""
    path = args.trained / name / "stage2" / "checkpoints" / "last.pt"
    grounder, _, resolved = model_from_checkpoint(load_checkpoint(path))
    world = {**resolved["world"], "seed": args.seed, "num_videos": args.videos, **args.world}
    then, now = (json.loads(json.dumps(asdict(SynthConfig(**w)))) for w in (resolved["world"], world))
    n_train = {round(w.pop("train_fraction") * w.pop("num_videos")) for w in (then, now)}
    if then != now or len(n_train) != 1:
        raise SystemExit(f"{path}: trained on the world {resolved['world']}, not on this run's training videos "
                         f"({world}: only num_videos and train_fraction may differ, with the same training count)")
    return grounder, {**resolved, "world": world}


@torch.no_grad()
def attention_hits(grounder: torch.nn.Module, objects: list[str], dataset, twins: int = 0) -> dict[str, float]:
    """Where the attention of the test queries lies (the stream's ``proposal_tid``, read only here), in %:

    * ``subject`` / ``object``: the best-attended box of the queried subject (object) is a box of an
      entity of its category, over the test frames that show one; ``chance``: such boxes / proposals;
    * ``entity``: per ground-truth instance, the best-attended subject and object boxes are the boxes
      of its own two entities, over its frames (a twin of the same category does not count);
    * ``temporal``: the share of the frame attention β1 on the instance's frames, and ``span``: the
      share of the sampled frames it covers (what uniform attention gives);
    * with ``twins`` (the world's ``SynthConfig.twins``): ``related`` / ``twin``: the spatial attention's
      mass on the instance's subject and object boxes / on their twins' boxes, on its frames."""
    index = {c: i for i, c in enumerate(objects)}
    hits: dict[str, list[torch.Tensor]] = {k: [] for k in ("subject", "object", "chance", "entity", "temporal", "span",
                                                           "related", "twin")}
    regions = load_regions(dataset, "test", grounder.cfg)
    for (anno, video), (_, arrays, _) in zip(regions, dataset.arrays("test", lambda k: k == "proposal_tid")):
        cat = anno.category_of()
        tid = torch.from_numpy(arrays["proposal_tid"])
        cats = torch.tensor([[index[cat[int(t)]] if t >= 0 else -1 for t in row] for row in tid.tolist()])
        pairs = sorted({(index[t[0]], index[t[2]]) for t in anno.triplets()})
        if not pairs:
            continue
        s, o = (torch.tensor(x) for x in zip(*pairs))
        out = grounder(video.regions[None].expand(len(pairs), -1, -1, -1), s, o)
        for key, alpha, ids in (("subject", out.alpha_s, s), ("object", out.alpha_o, o)):
            for a, c in zip(alpha, ids.tolist()):
                present = (cats == c).any(-1)
                best = cats.gather(1, a.argmax(-1, keepdim=True)).squeeze(1) == c
                hits[key].append(best[present].float())
                hits["chance"].append((cats == c).float().mean(-1)[present])
        for r in anno.relations:
            i = pairs.index((index[cat[r.subject_tid]], index[cat[r.object_tid]]))
            inside = (video.frames >= r.begin_fid) & (video.frames < r.end_fid)
            best_s = tid.gather(1, out.alpha_s[i].argmax(-1, keepdim=True)).squeeze(1) == r.subject_tid
            best_o = tid.gather(1, out.alpha_o[i].argmax(-1, keepdim=True)).squeeze(1) == r.object_tid
            hits["entity"].append((best_s & best_o)[inside].float())
            hits["temporal"].append(out.beta_frame[i][inside].sum()[None])
            hits["span"].append(inside.float().mean()[None])
            n = len(anno.objects) // (1 + twins)  # the twins of entity e: n + e * twins + (0 .. twins - 1)
            for alpha, e in ((out.alpha_s[i], r.subject_tid), (out.alpha_o[i], r.object_tid)) if twins else ():
                hits["related"].append((alpha * (tid == e)).sum(-1)[inside])
                hits["twin"].append((alpha * ((tid >= n + e * twins) & (tid < n + (e + 1) * twins))).sum(-1)[inside])
    return {k: 100 * float(torch.cat(v).mean()) if v else float("nan") for k, v in hits.items()}


def tube_hits(groundtruth: dict, groundings: dict) -> dict[str, float]:
    """Where the grounded tubes of the test queries fail, in %: per ground-truth instance with a grounding of
    its triplet, ``temporal``: the frame IoU of the grounded span with the instance's (mean) and
    ``temporal_half``: the share of instances where it is >= 0.5; ``subject`` / ``object`` / ``both``: the
    share of the frames both cover where the grounded box has IoU >= 0.5 with the instance's (mean)."""
    pairs = []  # (grounding, instance)
    for vid, instances in groundtruth.items():
        first = {}
        for r in groundings.get(vid, []):
            first.setdefault(tuple(r.triplet), r)
        pairs += [(first[tuple(g.triplet)], g) for g in instances if tuple(g.triplet) in first]
    if not pairs:
        return {k: float("nan") for k in ("temporal", "temporal_half", "subject", "object", "both")}
    spans = torch.tensor([[*p.duration, *g.duration] for p, g in pairs], dtype=torch.float64)
    tiou = temporal_iou(spans[:, :2], spans[:, 2:]).diagonal().numpy()
    hits: dict[str, list[float]] = {"subject": [], "object": [], "both": []}
    for p, g in pairs:
        (ps, pe), (gs, ge) = p.duration, g.duration
        lo, hi = max(ps, gs), min(pe, ge)
        if hi <= lo:
            continue
        s, o = (box_ious(np.asarray(a, np.float64)[lo - ps: hi - ps], np.asarray(b, np.float64)[lo - gs: hi - gs])
                >= 0.5 for a, b in ((p.sub_traj, g.sub_traj), (p.obj_traj, g.obj_traj)))
        hits["subject"].append(s.mean())
        hits["object"].append(o.mean())
        hits["both"].append((s & o).mean())
    return {"temporal": 100 * float(tiou.mean()), "temporal_half": 100 * float((tiou >= 0.5).mean()),
            **{k: 100 * float(np.mean(v)) if v else float("nan") for k, v in hits.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=150, help="videos in the world (80%% train)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, nargs=2, default=(0, 20), metavar=("STAGE1", "STAGE2"),
                    help="epochs of stage 1 (0: none, stage 2 from scratch) and of stage 2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=Path("runs/vrgv_synthetic"), help="runs and metrics.json")
    ap.add_argument("--set", dest="model", action="append", default=[], metavar="KEY=JSON",
                    help="a model: override of both models, e.g. attention='\"bilinear\"' (repeatable)")
    ap.add_argument("--world", action="append", default=[], metavar="KEY=JSON",
                    help="a SynthConfig override of the world, e.g. pair_relations=1 (repeatable)")
    ap.add_argument("--trained", type=Path, help="ground the models of this earlier run's --out instead of "
                    "training (a larger test split: --videos and train_fraction with the same training videos)")
    ap.add_argument("--select-threshold", action="store_true", help="also ground with the temporal threshold that "
                    "grounds the training videos best (pyvrel.models.vrgv.task.select_threshold): rows 'σ=train'")
    ap.add_argument("--models", nargs="+", default=["vRGV", "Co-occur"], choices=["vRGV", "Co-occur"])
    args = ap.parse_args()
    args.model, args.world = ({k: json.loads(v) for k, _, v in (kv.partition("=") for kv in kvs)}
                              for kvs in (args.model, args.world))
    torch.set_num_threads(args.threads)
    rows, attention, tubes, thresholds = {}, {}, {}, {}
    for name, model in (("vRGV", {}), ("Co-occur", {"cooccurrence": True})):
        if name not in args.models:
            continue
        grounder, resolved = trained(name, args) if args.trained else train(name, model, tuple(args.epochs), args)
        dataset = open_dataset("synthetic", resolved["world"])
        gt = {v: a.relation_view() for v, a in dataset.annotations("test").items()}
        # --set's grounding keys apply to a --trained model too (they change no weights)
        cfg = replace(grounder.cfg, **{k: v for k, v in args.model.items() if k in GROUNDING_KEYS})
        attention[name] = h = attention_hits(grounder, resolved["objects"], dataset, resolved["world"].get("twins", 0))
        print(f"{name}: best-attended box of the queried category in {h['subject']:.1f} % (subject) / {h['object']:.1f} % "
              f"(object) of the test frames showing one (chance {h['chance']:.1f} %); of the instance's own subject "
              f"and object in {h['entity']:.1f} % of its frames; frame attention on the instance's frames "
              f"{h['temporal']:.1f} % (uniform: {h['span']:.1f} %)" + (f"; attention mass on the instance's own "
              f"entities {h['related']:.1f} %, on their twins {h['twin']:.1f} %" if h["related"] == h["related"] else ""),
              flush=True)
        uniform = replace(cfg, temporal_threshold=cfg.uniform_score())
        variants = [("", cfg, {}), ("*", cfg, {"pairwise_weight": 0.0})]
        if name == "vRGV":
            variants.append((" legacy", cfg, {"legacy": True}))
        variants += [(" σ=uniform", uniform, {}), ("* σ=uniform", uniform, {"pairwise_weight": 0.0})]
        if args.select_threshold:
            sigma, scores = select_threshold(grounder, cfg, resolved["objects"], dataset)
            thresholds[name] = {"selected": sigma, "train_AccR": {f"{k:.4f}": v for k, v in scores.items()}}
            print(f"{name}: temporal threshold {sigma:.4f} grounds the training videos best (AccR "
                  + ", ".join(f"{k:.3f}: {100 * v:.2f}" for k, v in scores.items()) + ")", flush=True)
            picked = replace(cfg, temporal_threshold=sigma)
            variants += [(" σ=train", picked, {}), ("* σ=train", picked, {"pairwise_weight": 0.0})]
        for suffix, c, kw in variants:
            t0 = time.time()
            grounded = ground(grounder, c, resolved["objects"], dataset, "test", **kw)
            res = evaluate_grounding(gt, grounded, per_video=True)
            rows[name + suffix] = res
            if not suffix:
                tubes[name] = t = tube_hits(gt, grounded)
                print(f"{name}: grounded span's frame IoU with the instance {t['temporal']:.1f} % (>= 0.5 for "
                      f"{t['temporal_half']:.1f} % of the instances); box IoU >= 0.5 on the shared frames: subject "
                      f"{t['subject']:.1f} %, object {t['object']:.1f} %, both {t['both']:.1f} %", flush=True)
            print(f"{name + suffix}: grounded {res['avg']['queries']} queries in {time.time() - t0:.0f} s", flush=True)
    cols = [(t, k) for t in ("0.3", "0.5", "0.7", "avg") for k in ("AccS", "AccO", "AccR")]
    print("\n" + f"{'':>20}" + "".join(f"{k + '@' + t:>11}" for t, k in cols))
    for name, res in rows.items():
        print(f"{name:>20}" + "".join(f"{100 * res[t][k]:>11.2f}" for t, k in cols))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps({"grounding": rows, "attention": attention, "tubes": tubes,
                                                          "thresholds": thresholds}, indent=2) + "\n")


if __name__ == "__main__":
    main()
